"""The service supervisor, as a real process: placeholder page, back-off, signal forwarding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import requests

from quantlib.platform.hubconfig import free_port


def wait_http(url: str, timeout: float = 20.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=1)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def supervise(name: str, command: list[str], url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JUPYTERHUB_SERVICE_URL": url}
    return subprocess.Popen([sys.executable, "-m", "quantlib.platform.supervise", "--name", name,
                             "--", *command], env=env, stderr=subprocess.PIPE)


def test_failing_service_gets_a_placeholder_page_not_a_crash_loop():
    port = free_port()
    url = f"http://127.0.0.1:{port}/services/broken/"
    proc = supervise("broken", [sys.executable, "-c", "raise SystemExit(3)"], url)
    try:
        resp = wait_http(url)
        # any non-5xx answer keeps the hub from giving up on the whole platform
        assert resp.status_code == 404
        assert "service 'broken' is unavailable: its command exited with status 3" in resp.text
        assert "hub.log" in resp.text
        assert proc.poll() is None  # still supervising, waiting to retry
        children = psutil.Process(proc.pid).children()
        assert children == []  # the failed command is not respawned at once
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    log = proc.stderr.read().decode()
    assert "[supervise broken" in log and "retrying in 10 s" in log


def test_sigterm_reaches_the_running_service():
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = supervise("web", [sys.executable, "-m", "http.server", str(port),
                             "--bind", "127.0.0.1"], url)
    try:
        resp = wait_http(url)
        assert resp.status_code == 200 and "Directory listing" in resp.text
        child = psutil.Process(proc.pid).children()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
