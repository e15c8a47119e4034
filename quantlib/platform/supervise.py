"""Keep one hub-managed service running without crash loops or a blocked hub.

JupyterHub restarts a managed service the instant it exits, and at start-up it gives up
(exits) if a service with a URL never answers. A service whose code is missing or broken
would therefore either spin or take the whole hub down. This wrapper runs the service's
command and, when it exits:

1. logs the exit status (into the hub's log);
2. for an HTTP service, answers on the service's port with a plain-text page saying the
   service is unavailable, why, and where to look (status 404: the hub counts any
   non-5xx answer as "up", so the hub and the other services carry on);
3. retries after a back-off (10 s doubling to 5 minutes).

SIGTERM/SIGINT are forwarded to the command, which gets 10 s before SIGKILL.

Usage (what ``hub-config`` generates)::

    python -m quantlib.platform.supervise --name dashboards -- quantlib dashboards serve --hub
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

__all__ = ["Supervisor", "main"]

_FIRST_BACKOFF_S = 10.0
_MAX_BACKOFF_S = 300.0


class Supervisor:
    """Run ``command`` until stopped, with back-off and a placeholder page between tries."""

    def __init__(self, name: str, command: list[str], service_url: str | None) -> None:
        self.name = name
        self.command = command
        self.service_url = service_url
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.reason = "starting"

    def log(self, msg: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"[supervise {self.name} {stamp}] {msg}", file=sys.stderr, flush=True)

    def stop(self, signum: int, _frame: object = None) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def _run_child(self) -> int:
        try:
            self.child = subprocess.Popen(self.command)
        except OSError as exc:
            self.log(f"cannot start {self.command[0]!r}: {exc}")
            self.reason = f"its command could not start: {exc}"
            return 127
        started = time.monotonic()
        while True:
            try:
                code = self.child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if self.stopping.is_set():
                    code = self._terminate_child()
                    break
        ran = time.monotonic() - started
        self.reason = f"its command exited with status {code} after {ran:.1f} s"
        return int(code)

    def _terminate_child(self) -> int:
        if self.child is None:
            return 0
        try:
            return int(self.child.wait(timeout=10))
        except subprocess.TimeoutExpired:
            self.child.kill()
            return int(self.child.wait())

    def _placeholder(self) -> ThreadingHTTPServer | None:
        if not self.service_url:
            return None
        parsed = urlparse(self.service_url)
        supervisor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = (f"service {supervisor.name!r} is unavailable: {supervisor.reason}.\n"
                        f"command: {' '.join(supervisor.command)}\n"
                        "Fix: see the hub log ($QUANTLIB_HOME/platform/hub.log); "
                        "it is retried automatically.\n").encode()
                self.send_response(404)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        try:
            server = ThreadingHTTPServer((parsed.hostname or "127.0.0.1", parsed.port or 80),
                                         Handler)
        except OSError as exc:
            self.log(f"cannot serve the placeholder page on {self.service_url}: {exc}")
            return None
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; returns the exit status for the hub."""
        backoff = _FIRST_BACKOFF_S
        while not self.stopping.is_set():
            started = time.monotonic()
            self._run_child()
            if self.stopping.is_set():
                break
            if time.monotonic() - started > 2 * _MAX_BACKOFF_S:
                backoff = _FIRST_BACKOFF_S  # it ran a long while: start over gently
            self.log(f"{self.reason}; retrying in {backoff:.0f} s")
            server = self._placeholder()
            self.stopping.wait(backoff)
            if server is not None:
                server.shutdown()
                server.server_close()
            backoff = min(2 * backoff, _MAX_BACKOFF_S)
        return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``--name NAME -- COMMAND...``."""
    parser = argparse.ArgumentParser(prog="python -m quantlib.platform.supervise")
    parser.add_argument("--name", required=True)
    parser.add_argument("--umask", default=None, help="octal file-creation mask, e.g. 0077")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.umask:
        os.umask(int(args.umask, 8))
    if not command:
        parser.error("a command to run is required after --")
    sup = Supervisor(args.name, command, os.environ.get("JUPYTERHUB_SERVICE_URL"))
    signal.signal(signal.SIGTERM, sup.stop)
    signal.signal(signal.SIGINT, sup.stop)
    return sup.run()


if __name__ == "__main__":
    sys.exit(main())
