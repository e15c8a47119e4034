"""A real, read-only FTP server (pyftpdlib) serving the vendor tree, with fault injection.

The server runs its IO loop in a background thread on loopback; :meth:`FtpServer.stop`
ends the loop and closes every connection from that same thread.
"""

from __future__ import annotations

import errno
import io
import logging
import threading
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.handlers.ftp.producers import FileProducer
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from quantlib.errors import SourceError
from quantlib.markets import FORMATS, MARKETS
from quantlib.sandbox.faults import CONTENT_KINDS, FaultRegistry, corrupt_csv

__all__ = ["FtpServer"]

_log = logging.getLogger("pyftpdlib")
if not _log.handlers:  # keeps pyftpdlib from installing its own stderr handler
    _log.addHandler(logging.NullHandler())
_log.setLevel(logging.ERROR)


class _NamedBytes(io.BytesIO):
    """In-memory file with a ``name`` (pyftpdlib logs it); no fileno, so no sendfile."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


class _DroppingFile(_NamedBytes):
    """Gives the first half of the bytes, then fails like a reset connection."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data[: max(1, len(data) // 2)], name)

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "connection reset by sandbox fault")
        return chunk


def _dialect(ftp_path: str) -> tuple[str, str]:
    """Encoding and separator of the FTP source whose root holds ``ftp_path``."""
    return _DIALECTS.get(ftp_path.lstrip("/").split("/", 1)[0], ("utf-8", ","))


_DIALECTS = {src.root: (FORMATS[src.format].encoding, FORMATS[src.format].separator)
             for m in MARKETS.values() for src in m.sources
             if src.root is not None and src.format is not None}


class _FaultyHandler(FTPHandler):
    """FTPHandler whose RETR consults the fault registry first."""

    faults: FaultRegistry = FaultRegistry()

    def ftp_RETR(self, file: str) -> str | None:  # noqa: N802 (pyftpdlib's naming)
        ftp_path = self.fs.fs2ftp(file)
        fault = self.faults.take(ftp_path, "ftp")
        if fault is None:
            return super().ftp_RETR(file)
        if fault.kind == "http_5xx":
            self.respond("451 Sandbox fault: local error in processing.")
            return None
        if fault.kind == "http_429":
            self.respond("421 Sandbox fault: too many requests, try again later.")
            self.close_when_done()
            return None
        data = Path(file).read_bytes()
        fd: _NamedBytes
        if fault.kind in CONTENT_KINDS:
            encoding, sep = _dialect(ftp_path)
            fd = _NamedBytes(corrupt_csv(data, fault, encoding, sep), file)
        else:  # drop_connection
            fd = _DroppingFile(data, file)
        self._restart_position = 0
        producer = FileProducer(fd, self._current_type)
        self.push_dtp_data(producer, isproducer=True, file=fd, cmd="RETR")
        return file


class FtpServer:
    """Read-only FTP server for ``root`` on ``host:port`` (port 0: ephemeral).

    Examples
    --------
    >>> import ftplib, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); _ = (root / "a.txt").write_text("hi")
    >>> srv = FtpServer(root, user="u", password="p").start()
    >>> ftp = ftplib.FTP(); _ = ftp.connect(srv.host, srv.port); _ = ftp.login("u", "p")
    >>> ftp.nlst()
    ['a.txt']
    >>> ftp.quit()[:3]; srv.stop()
    '221'
    """

    def __init__(self, root: str | Path, *, user: str, password: str,
                 faults: FaultRegistry | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.root = Path(root)
        self.user = user
        self.faults = faults if faults is not None else FaultRegistry()
        authorizer = DummyAuthorizer()
        authorizer.add_user(user, password, str(self.root), perm="elr")
        handler = type("SandboxFTPHandler", (_FaultyHandler,), {
            "authorizer": authorizer, "faults": self.faults,
            "banner": "quantlib vendor sandbox FTP ready.", "permit_foreign_addresses": False,
            "auth_failed_timeout": 0.5,
        })
        try:
            # its own IO loop: pyftpdlib's default one is a process-wide singleton
            self._server = FTPServer((host, port), handler, ioloop=IOLoop())
        except OSError as exc:
            raise SourceError("the sandbox FTP server must bind its address",
                              found=str(exc), fix="pick another --ftp-port or 0",
                              source="sandbox-ftp") from exc
        self.host, self.port = self._server.address[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-ftp", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._server.ioloop.loop(timeout=0.05, blocking=False)
        self._server.close_all()

    def start(self) -> FtpServer:
        """Start serving in a background thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
