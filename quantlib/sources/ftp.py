"""FTP vendor files with ``.sha256`` sidecars (KR daily, EU monthly).

How :meth:`FtpSource.fetch` works:

1. list the fixed files plus the files in each listed folder (sidecars excluded), keep
   price files whose date (from the name: ``YYYYMMDD`` or ``YYYYMM``) is in the window.
   The folders are listed with ``MLSD`` (``NLST`` where unsupported) and a dated file
   *before* the window (an incremental refresh) is kept too if it (or its sidecar) changed since the
   last listing (modify time or size differ from the listing state kept in the raw zone,
   :func:`quantlib.raw.index.ManifestIndex.listing`), or if a delivery of it was fetched
   but never published: a vendor re-delivering an old file is never missed, and
   unchanged history is neither re-read nor even its sidecar fetched. A listing entry
   whose modify time is within :data:`RACY_S` seconds of the listing (by this machine's
   clock) is saved as *unsettled* (as git treats a racily clean index entry): ``modify``
   has one-second resolution, so a file rewritten within that second with the same size
   would list the same; an unsettled file the raw zone holds has its sidecar read
   again on the next run (an unchanged one is then skipped by its sha256);
2. for each file, on one of a few parallel FTP connections: read the sidecar
   ``<sha256> <rows>``; if the raw zone already holds ``(source, file, sha256)`` skip it;
3. otherwise download it, check its sha256 and row count against the sidecar (a mismatch
   is a truncated transfer: transient, retried), and store it in the raw zone.
"""

from __future__ import annotations

import ftplib
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from quantlib.errors import ConfigError, PermanentSourceError, TransientSourceError
from quantlib.raw import sha256_hex
from quantlib.sources.base import FetchContext, in_window
from quantlib.sources.connection import ConnectionLike

__all__ = ["FtpSource", "FtpClient", "count_rows"]

_BLOCK = 1 << 18
#: seconds (this machine's clock against the server's ``modify`` facts, skew included)
#: within which a listed file may still be rewritten in the same second: saved unsettled
RACY_S = 10.0
_UNSETTLED = "unsettled "
_TRANSIENT = (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, EOFError,
              ConnectionError, TimeoutError, socket.timeout, OSError)


def count_rows(data: bytes) -> int:
    """Data rows of a CSV file: its lines minus the header line.

    Examples
    --------
    >>> count_rows(b"a,b\\n1,2\\n3,4\\n"), count_rows(b"a,b\\n"), count_rows(b"a,b\\n1,2")
    (2, 0, 1)
    """
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    return max(lines - 1, 0)


class FtpClient:
    """One FTP connection per thread, reopened after any transient failure."""

    def __init__(self, source: str, connection: ConnectionLike, timeout: float = 30.0) -> None:
        self.source = source
        self.conn = connection
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open_conns: list[ftplib.FTP] = []

    def _open(self) -> ftplib.FTP:
        c = self.conn
        ftp = ftplib.FTP(timeout=self.timeout)
        try:
            ftp.connect(c.ftp_host, int(c.ftp_port))
            ftp.login(c.ftp_user, c.ftp_password)
        except ftplib.error_perm as exc:
            ftp.close()
            raise PermanentSourceError(
                "FTP login must succeed", found=str(exc).strip(),
                fix="check ftp_user/ftp_password (sandbox state file or QUANTLIB_FTP_URL)",
                source=self.source, file=f"ftp://{c.ftp_host}:{c.ftp_port}") from None
        except _TRANSIENT as exc:
            ftp.close()
            raise TransientSourceError("FTP server must accept connections",
                                       found=f"{type(exc).__name__}: {exc}",
                                       fix="retrying; check the server if it persists",
                                       source=self.source,
                                       file=f"ftp://{c.ftp_host}:{c.ftp_port}") from None
        return ftp

    def _ftp(self) -> ftplib.FTP:
        ftp = getattr(self._local, "ftp", None)
        if ftp is None:
            ftp = self._open()
            self._local.ftp = ftp
            self._local.binary = False
            with self._lock:
                self._open_conns.append(ftp)
        return ftp

    def _drop(self) -> None:
        ftp = getattr(self._local, "ftp", None)
        self._local.ftp = None
        if ftp is not None:
            with self._lock:
                if ftp in self._open_conns:
                    self._open_conns.remove(ftp)
            _close(ftp)

    def close_all(self) -> None:
        """Close every connection this client opened (any thread)."""
        with self._lock:
            conns, self._open_conns = self._open_conns, []
        for ftp in conns:
            _close(ftp)

    def _run(self, path: str, action: str, fn):  # type: ignore[no-untyped-def]
        try:
            return fn(self._ftp())
        except ftplib.error_perm as exc:
            self._drop()
            code = str(exc)[:3]
            what = "vendor file must exist" if code == "550" else f"FTP {action} must be allowed"
            raise PermanentSourceError(what, found=str(exc).strip(),
                                       fix="check the source definition in quantlib.sources "
                                           "(file names) or the vendor's delivery",
                                       source=self.source, file=path) from None
        except _TRANSIENT as exc:
            self._drop()
            raise TransientSourceError(f"FTP {action} must complete",
                                       found=f"{type(exc).__name__}: {exc}",
                                       fix="retrying; check the server if it persists",
                                       source=self.source, file=path) from None

    def retrieve(self, path: str) -> bytes:
        """Bytes of a remote file (``path`` relative to the FTP root).

        ``ftplib``'s ``retrbinary`` without its ``TYPE I`` round trip on every file: the
        connection is switched to binary once (again after a listing, which switches it
        to ASCII), and the data read in 256 KiB blocks.
        """
        def get(ftp: ftplib.FTP) -> bytes:
            if not getattr(self._local, "binary", False):
                ftp.voidcmd("TYPE I")
                self._local.binary = True
            parts: list[bytes] = []
            with ftp.transfercmd(f"RETR /{path}") as conn:
                while chunk := conn.recv(_BLOCK):
                    parts.append(chunk)
            ftp.voidresp()
            return b"".join(parts)
        return self._run(path, "download", get)

    def facts(self, folder: str) -> dict[str, str] | None:
        """``name -> "<modify>:<size>"`` of a remote folder's files (``MLSD``); None when
        the server does not support ``MLSD``."""
        def mlsd(ftp: ftplib.FTP) -> dict[str, str] | None:
            self._local.binary = False   # retrlines sends TYPE A
            try:
                entries = list(ftp.mlsd(f"/{folder}", facts=["type", "modify", "size"]))
            except ftplib.error_perm as exc:
                if str(exc)[:3] in ("500", "501", "502", "504"):
                    return None
                raise
            return {name.rsplit("/", 1)[-1]: f"{f.get('modify', '')}:{f.get('size', '')}"
                    for name, f in entries if f.get("type", "file") == "file"}
        return self._run(folder, "listing", mlsd)

    def listdir(self, folder: str) -> list[str]:
        """Names of the entries of a remote folder."""
        def nlst(ftp: ftplib.FTP) -> list[str]:
            self._local.binary = False   # retrlines sends TYPE A
            return [n.rsplit("/", 1)[-1] for n in ftp.nlst(f"/{folder}")]
        return self._run(folder, "listing", nlst)


def _close(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (*_TRANSIENT, ftplib.Error):
        ftp.close()


_DATE_IN_NAME = re.compile(r"(\d{8}|\d{6})(?=\.[^.]+$)")


def _period_of(name: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    m = _DATE_IN_NAME.search(name)
    if m is None:
        return None
    digits = m.group(1)
    if len(digits) == 8:
        day = pd.Timestamp(f"{digits[:4]}-{digits[4:6]}-{digits[6:]}")
        return day, day
    first = pd.Timestamp(f"{digits[:4]}-{digits[4:]}-01")
    return first, first + pd.offsets.MonthEnd(0)


def _settled(facts: str, listed_at: pd.Timestamp) -> bool:
    """Whether a listing entry (``<modify>:<size>|<sidecar modify>:<size>``) is older
    than :data:`RACY_S` at ``listed_at`` (naive UTC); an unreadable modify is unsettled.

    Examples
    --------
    >>> at = pd.Timestamp("2024-03-28 12:00:30")
    >>> _settled("20240328115900:812|20240328115900:68", at)
    True
    >>> _settled("20240328120025:812|20240328115900:68", at)
    False
    >>> _settled(":812|None", at)
    False
    """
    for part in facts.split("|"):
        if part == "None":            # no sidecar listed: nothing to rewrite
            continue
        modify = part.rsplit(":", 1)[0]
        try:
            when = pd.Timestamp(f"{modify[:8]}T{modify[8:14]}")
        except ValueError:
            return False
        if len(modify) < 14 or when > listed_at - pd.Timedelta(seconds=RACY_S):
            return False
    return True


@dataclass(frozen=True)
class FtpSource:
    """A vendor publishing CSV files with ``.sha256`` sidecars over FTP.

    Attributes
    ----------
    name, market, fmt : str
        Source name (provenance), market code and reader format of its files.
    files : tuple of str
        Fixed files, relative to the FTP root (``kr/master.csv``).
    folders : tuple of str
        Folders whose files are all fetched (``kr/prices``); dated names are filtered by
        the fetch window.
    """

    name: str
    market: str
    fmt: str
    files: tuple[str, ...]
    folders: tuple[str, ...] = ()
    sidecar_suffix: str = ".sha256"
    kind: ClassVar[str] = "ftp"

    def list_files(self, client: FtpClient, ctx: FetchContext) -> list[str]:
        """Every file this source would fetch for the context's window (and, polling,
        the changed files before it; see the module docstring)."""
        out = list(self.files)
        listing: dict[str, str] = {}
        for folder in self.folders:
            facts = ctx.retry.call(client.facts, folder)
            names = list(facts) if facts is not None else ctx.retry.call(client.listdir, folder)
            for name in sorted(names):
                if name.endswith(self.sidecar_suffix) or name.startswith("."):
                    continue
                period = _period_of(name)
                path = f"{folder}/{name}"
                if facts is not None:
                    listing[path] = f"{facts[name]}|{facts.get(name + self.sidecar_suffix)}"
                if period is None or in_window(*period, ctx.start, ctx.end):
                    out.append(path)
        if listing:
            out += self._changed_before_window(ctx, listing, set(out))
        return out

    def _changed_before_window(self, ctx: FetchContext, listing: dict[str, str],
                               listed: set[str]) -> list[str]:
        """Files before the window that changed since the last listing or were fetched
        but never published; the new listing is saved once the fetch completes."""
        before = ctx.raw.index.listing(self.name)
        listed_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
        changed: list[str] = []
        if len(listed) < len(listing) + len(self.files):   # some files are before the window
            pending = ctx.raw.unpublished_files(self.name)
            fetched = set(ctx.raw.index.read(self.name)["file"].astype(str))

            def moved(f: str, facts: str) -> bool:
                was = before.get(f)
                if was is None:
                    return False
                if was.startswith(_UNSETTLED):   # re-checked (by its sidecar) if held
                    return f in fetched or was[len(_UNSETTLED):] != facts
                return was != facts
            changed = [f for f, facts in listing.items() if f not in listed
                       and (moved(f, facts) or f in pending)]
        settled = {f: facts if _settled(facts, listed_at) else _UNSETTLED + facts
                   for f, facts in listing.items()}
        ctx.on_success(lambda: ctx.raw.index.save_listing(self.name, {**before, **settled}))
        return sorted(changed)

    def sidecar(self, client: FtpClient, file: str) -> tuple[str, int]:
        """The ``(sha256, rows)`` the vendor announces for a file."""
        text = client.retrieve(file + self.sidecar_suffix).decode("ascii", "replace").split()
        if len(text) < 2 or not re.fullmatch(r"[0-9a-f]{64}", text[0]) or not text[1].isdigit():
            raise TransientSourceError("sidecar must read '<sha256> <rows>'",
                                       found=repr(" ".join(text)[:80]),
                                       fix="retrying; the sidecar transfer may be truncated",
                                       source=self.name, file=file + self.sidecar_suffix)
        return text[0], int(text[1])

    def download(self, client: FtpClient, file: str, sha: str, rows: int) -> bytes:
        """Download a file and check it against its sidecar (mismatch: transient)."""
        data = client.retrieve(file)
        got_sha, got_rows = sha256_hex(data), count_rows(data)
        if got_sha != sha or got_rows != rows:
            raise TransientSourceError(
                "download must match its sidecar sha256 and row count",
                found=f"sha256 {got_sha[:12]}... rows {got_rows} vs sidecar {sha[:12]}... "
                      f"rows {rows} ({len(data)} bytes: truncated transfer?)",
                fix="retrying; if it persists the vendor's file or sidecar is wrong",
                source=self.name, file=file)
        return data

    def _fetch_one(self, client: FtpClient, ctx: FetchContext, file: str) -> None:
        sha, rows = ctx.retry.call(self.sidecar, client, file)
        old = ctx.known(self.name, file, sha)
        if old is not None:
            ctx.keep(old)
            return
        data = ctx.retry.call(self.download, client, file, sha, rows)
        ctx.add(ctx.raw.put(data, source=self.name, market=self.market, file=file,
                            fetch_id=ctx.fetch_id, fmt=self.fmt, rows=rows, record=False))

    def fetch(self, ctx: FetchContext) -> None:
        """Fetch every new file into the raw zone (see the module docstring)."""
        if ctx.connection is None or not getattr(ctx.connection, "ftp_host", ""):
            raise ConfigError("FTP connection info must be given", found="no ftp_host",
                              fix="pass connection= or start the sandbox", source=self.name)
        client = FtpClient(self.name, ctx.connection)
        try:
            files = self.list_files(client, ctx)
            bar = _progress(ctx, len(files), self.name)

            def work(file: str) -> None:
                self._fetch_one(client, ctx, file)
                if bar is not None:
                    bar.update(1)

            with ThreadPoolExecutor(max_workers=max(ctx.workers, 1)) as pool:
                futures = [pool.submit(work, f) for f in files]
                try:
                    for fut in futures:
                        fut.result()
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
            if bar is not None:
                bar.close()
        finally:
            client.close_all()
        ctx.flush()
        ctx.succeeded()


def _progress(ctx: FetchContext, total: int, desc: str):  # type: ignore[no-untyped-def]
    if not ctx.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="file")
