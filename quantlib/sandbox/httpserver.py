"""A real HTTP server for the sandbox JSON API: auth, pagination, rate limit, faults.

Built on the standard library's :class:`http.server.ThreadingHTTPServer` (HTTP/1.1,
keep-alive). Routes:

- ``GET /v1/health`` (no key) -> ``{"ok": true}``
- ``GET /v1/<endpoint>?...`` (``X-API-Key``) -> one page, see :mod:`quantlib.sandbox.api`
- ``GET|POST|DELETE /_sandbox/faults`` (``X-API-Key``) -> list, arm, clear faults
- ``GET /_sandbox/clock`` (``X-API-Key``) -> ``{"start", "end"}``: the vendor's clock
- ``POST /_sandbox/clock`` (``X-API-Key``) with ``{"end": "YYYY-MM-DD"}`` -> move the
  clock forward: ``{"start", "end", "files": [{"path", "rows", "sha256"}, ...]}`` (the FTP
  files written: new days, the re-delivered month, changed reference files)

Every keyed request spends one token of its key's bucket; an empty bucket answers
``429`` with ``Retry-After`` (whole seconds).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from quantlib.errors import QuantlibError, SourceError
from quantlib.sandbox.api import ApiData, ApiRequestError, page_json
from quantlib.sandbox.faults import CONTENT_KINDS, FaultRegistry, corrupt_records

__all__ = ["HttpServer", "TokenBucket"]


class TokenBucket:
    """Token bucket per key: ``rate`` tokens/s, at most ``burst`` stored.

    Examples
    --------
    >>> b = TokenBucket(rate=1.0, burst=2)
    >>> b.take("k"), b.take("k"), b.take("k") > 0
    (0.0, 0.0, True)
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend a token; returns 0.0 if allowed, else seconds until one is available."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "quantlib-sandbox/1"
    # set per server by HttpServer
    api: ApiData
    api_key: str
    bucket: TokenBucket
    faults: FaultRegistry
    clock: Callable[[str | None], dict[str, Any]] | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the sandbox does not log each request."""

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None,
                   drop: bool = False) -> None:
        self._send_body(status, page_json(obj), headers, drop)

    def _send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                   drop: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if drop:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _error(self, status: int, err: QuantlibError | str,
               headers: dict[str, str] | None = None) -> None:
        self._send_json(status, {"error": str(err)}, headers)

    def _guard(self) -> bool:
        """Auth and rate limit; answers and returns False when the request must stop."""
        key = self.headers.get("X-API-Key")
        if key != self.api_key:
            self._error(401, "an X-API-Key header with the sandbox key is required; found "
                             + ("none" if key is None else "a wrong key")
                             + ". Fix: read api_key from the sandbox state file")
            return False
        wait = self.bucket.take(key)
        if wait > 0:
            self._error(429, f"rate limit exceeded; retry after {wait:.2f}s",
                        {"Retry-After": str(max(1, math.ceil(wait)))})
            return False
        return True

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/v1/health":
            self._send_json(200, {"ok": True})
            return
        if not self._guard():
            return
        if url.path == "/_sandbox/faults":
            self._send_json(200, {"faults": [f.to_dict() for f in self.faults.list()]})
            return
        if url.path == "/_sandbox/clock":
            self._clock(None)
            return
        if not url.path.startswith("/v1/"):
            self._error(404, f"no such path {url.path}")
            return
        self._serve_page(url.path, dict(parse_qsl(url.query)))

    def _serve_page(self, path: str, params: dict[str, str]) -> None:
        fault = self.faults.take(path, "http")
        if fault is not None and fault.kind == "http_5xx":
            self._error(503, "sandbox fault: service unavailable")
            return
        if fault is not None and fault.kind == "http_429":
            self._error(429, "sandbox fault: too many requests", {"Retry-After": "1"})
            return
        endpoint = path.removeprefix("/v1/")
        try:
            if fault is not None and fault.kind in CONTENT_KINDS:
                page = self.api.page(endpoint, params)
                page["data"] = corrupt_records(page["data"], fault)
                body = page_json(page)
            else:
                body = self.api.page_body(endpoint, params)
        except ApiRequestError as exc:
            self._error(exc.status, exc)
            return
        self._send_body(200, body, drop=fault is not None and fault.kind == "drop_connection")

    def _clock(self, end: str | None) -> None:
        if self.clock is None:
            self._error(404, "this server has no vendor clock; start it with start_sandbox")
            return
        try:
            self._send_json(200, self.clock(end))
        except QuantlibError as exc:
            self._error(400, exc)

    def do_POST(self) -> None:  # noqa: N802
        if not self._guard():
            return
        if urlsplit(self.path).path == "/_sandbox/clock":
            try:
                end = json.loads(self._read_body() or b"{}")["end"]
            except (ValueError, KeyError, TypeError) as exc:
                self._error(400, f"clock request must be JSON like {{\"end\": \"2026-01-05\"}}; "
                                 f"found {exc!r}")
                return
            self._clock(str(end))
            return
        if urlsplit(self.path).path != "/_sandbox/faults":
            self._error(404, f"no such path {self.path}")
            return
        try:
            spec = json.loads(self._read_body() or b"{}")
            fault = self.faults.add(
                kind=spec.get("kind"), match=spec.get("match", "*"),
                times=spec.get("times", 1), column=spec.get("column"),
                protocol=spec.get("protocol"))
        except (QuantlibError, ValueError, AttributeError) as exc:
            self._error(400, f"fault spec must be JSON like {{\"kind\": \"http_5xx\", "
                             f"\"match\": \"/v1/*\", \"times\": 1}}; {exc}")
            return
        self._send_json(201, fault.to_dict())

    def do_DELETE(self) -> None:  # noqa: N802
        if not self._guard():
            return
        if urlsplit(self.path).path != "/_sandbox/faults":
            self._error(404, f"no such path {self.path}")
            return
        self._send_json(200, {"cleared": self.faults.clear()})


class HttpServer:
    """The sandbox JSON API on ``host:port`` (port 0: ephemeral), in a background thread.

    Examples
    --------
    >>> import json, urllib.request
    >>> from quantlib.sandbox import generate
    >>> srv = HttpServer(ApiData(generate(n_assets=5, years=0.25, markets=("US",))),
    ...                  api_key="k").start()
    >>> json.load(urllib.request.urlopen(srv.url + "/v1/health"))
    {'ok': True}
    >>> srv.stop()
    """

    def __init__(self, api: ApiData, *, api_key: str, faults: FaultRegistry | None = None,
                 rate_limit: tuple[float, float] = (50.0, 100.0), host: str = "127.0.0.1",
                 port: int = 0,
                 clock: Callable[[str | None], dict[str, Any]] | None = None) -> None:
        self.faults = faults if faults is not None else FaultRegistry()
        handler = type("SandboxHTTPHandler", (_Handler,), {
            "api": api, "api_key": api_key, "faults": self.faults,
            "bucket": TokenBucket(*rate_limit), "clock": staticmethod(clock) if clock
            else None})
        self._handler: type[_Handler] = handler
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise SourceError("the sandbox HTTP server must bind its address",
                              found=str(exc), fix="pick another --http-port or 0",
                              source="sandbox-http") from exc
        self._server.daemon_threads = True
        self.host: str = host
        self.port: int = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="sandbox-http", daemon=True)

    def set_api(self, api: ApiData) -> None:
        """Serve ``api`` from the next request on (requests in flight finish on the old)."""
        self._handler.api = api

    def start(self) -> HttpServer:
        """Start serving in a background thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
