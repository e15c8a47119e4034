"""Start the whole sandbox (FTP + HTTP on loopback) and publish its connection info.

:func:`start_sandbox` generates (or takes) a universe, writes the vendor tree, starts both
servers with fresh random credentials and writes ``$QUANTLIB_HOME/run/sandbox.json``
(mode 0600). Sources read it back with :meth:`SandboxConnection.load`.

The vendor clock: :meth:`Sandbox.advance` (or ``POST /_sandbox/clock``, or
:meth:`SandboxConnection.advance` from another process, or ``quantlib data sandbox
--advance DATE``) moves the running vendor to a later ``end``. The universe is
regenerated with the same start (generation is prefix-stable, see
:mod:`quantlib.sandbox.universe`), the FTP tree is rewritten where a file changed (a new
daily KR file per new session, the EU current month's file re-delivered with the new days
and a new sidecar, master/ticker/action files when they changed; unchanged files keep
their bytes and sidecars) and the API serves the new rows (``updated_since`` finds them).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from quantlib.config import quantlib_home
from quantlib.errors import ConfigError, PermanentSourceError, SourceError
from quantlib.markets import DEFAULT_MARKETS
from quantlib.sandbox.api import ApiData
from quantlib.sandbox.faults import FaultRegistry
from quantlib.sandbox.ftpserver import FtpServer
from quantlib.sandbox.httpserver import HttpServer
from quantlib.sandbox.served import ServedVendor
from quantlib.sandbox.universe import SandboxUniverse, generate
from quantlib.sandbox.writers import WrittenFile, write_ftp_tree

__all__ = ["Sandbox", "SandboxConnection", "start_sandbox", "state_file_path"]


def state_file_path() -> Path:
    """``$QUANTLIB_HOME/run/sandbox.json``.

    Examples
    --------
    >>> state_file_path().name
    'sandbox.json'
    """
    return quantlib_home() / "run" / "sandbox.json"


@dataclass(frozen=True)
class SandboxConnection:
    """Connection info of a running sandbox (the state file's content).

    Examples
    --------
    >>> c = SandboxConnection("127.0.0.1", 2121, "u", "pw", "http://127.0.0.1:8080", "k", 1)
    >>> c.ftp_url
    'ftp://u:pw@127.0.0.1:2121'
    >>> "pw" in repr(c)
    False
    """

    ftp_host: str
    ftp_port: int
    ftp_user: str
    ftp_password: str = field(repr=False)
    http_url: str
    api_key: str = field(repr=False)
    pid: int

    @property
    def ftp_url(self) -> str:
        """``ftp://user:password@host:port``."""
        return f"ftp://{self.ftp_user}:{self.ftp_password}@{self.ftp_host}:{self.ftp_port}"

    def advance(self, end: str | pd.Timestamp, timeout: float = 600.0) -> dict[str, Any]:
        """Move the running sandbox's vendor clock to ``end`` (``POST /_sandbox/clock``).

        Returns the server's answer: ``{"start", "end", "files": [...]}`` (the FTP files
        written by the move).
        """
        body = json.dumps({"end": str(pd.Timestamp(end).date())}).encode()
        req = urllib.request.Request(self.http_url + "/_sandbox/clock", data=body,
                                     method="POST", headers={"X-API-Key": self.api_key,
                                                             "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                out: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise SourceError("the sandbox must accept the clock move",
                              found=f"HTTP {exc.code}: {exc.read().decode(errors='replace')}",
                              fix="pass a date on or after the clock's end",
                              source="sandbox", file="/_sandbox/clock") from None
        return out

    def to_env(self) -> dict[str, str]:
        """The ``QUANTLIB_FTP_URL``, ``QUANTLIB_API_URL``, ``QUANTLIB_API_KEY`` variables."""
        return {"QUANTLIB_FTP_URL": self.ftp_url, "QUANTLIB_API_URL": self.http_url,
                "QUANTLIB_API_KEY": self.api_key}

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the state file with mode 0600 (atomic replace)."""
        target = Path(path) if path is not None else state_file_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> SandboxConnection:
        """Read the state file (default ``$QUANTLIB_HOME/run/sandbox.json``).

        Raises
        ------
        PermanentSourceError
            If no sandbox state file exists or it is not valid.
        """
        target = Path(path) if path is not None else state_file_path()
        try:
            raw: dict[str, Any] = json.loads(target.read_text())
            return cls(**{k: raw[k] for k in ("ftp_host", "ftp_port", "ftp_user",
                                              "ftp_password", "http_url", "api_key", "pid")})
        except FileNotFoundError:
            raise PermanentSourceError(
                "a running sandbox must have written its state file", found="no such file",
                fix="start one with `quantlib data sandbox` or quantlib.sandbox.start_sandbox()",
                source="sandbox", file=str(target)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentSourceError(
                "the sandbox state file must be JSON with ftp_host, ftp_port, ftp_user, "
                "ftp_password, http_url, api_key, pid", found=repr(exc),
                fix="restart the sandbox", source="sandbox", file=str(target)) from None


class Sandbox:
    """A running sandbox; use as a context manager or call :meth:`stop`.

    Attributes: ``universe`` (in memory only), ``reference`` (the small frames: assets,
    symbols, actions, FX), ``vendor`` (the :class:`~quantlib.sandbox.served.ServedVendor`
    of a streamed sandbox, else None), ``root`` (the FTP tree), ``files`` (written vendor
    files), ``ftp_host``, ``ftp_port``, ``ftp_user``, ``ftp_password``, ``http_url``,
    ``api_key``, ``faults`` (a :class:`~quantlib.sandbox.faults.FaultRegistry` shared by
    both servers), ``state_file``.
    """

    def __init__(self, universe: SandboxUniverse, root: Path, files: list[WrittenFile],
                 ftp: FtpServer, http: HttpServer, password: str, api_key: str,
                 faults: FaultRegistry, owns_root: bool, state_file: Path | None,
                 vendor: ServedVendor | None = None) -> None:
        self._universe, self.root, self.files = universe, root, files
        self.vendor = vendor
        self._ftp, self._http = ftp, http
        self.ftp_host, self.ftp_port, self.ftp_user = ftp.host, ftp.port, ftp.user
        self.ftp_password, self.http_url, self.api_key = password, http.url, api_key
        self.faults = faults
        self.state_file = state_file
        self._owns_root = owns_root
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def universe(self) -> SandboxUniverse:
        """The whole truth (an in-memory sandbox only)."""
        if self.vendor is not None:
            raise ConfigError(
                "a streamed sandbox holds no universe in memory", found="start_sandbox("
                "streamed=True)", fix="read sandbox.reference for assets, symbols, actions "
                "and FX, or call quantlib.sandbox.generate(...) with the same arguments for "
                "the whole truth", field="streamed")
        return self._universe

    @property
    def reference(self) -> SandboxUniverse:
        """The clock, parameters and small frames (``prices`` and ``statements`` empty
        in a streamed sandbox)."""
        return self._universe

    def advance(self, end: str | pd.Timestamp) -> list[WrittenFile]:
        """Move the vendor clock forward to ``end``; returns the FTP files written.

        The universe is regenerated with the same parameters and start (prefix-stable:
        the history served so far does not change, except where the vendor corrects it),
        changed files are rewritten atomically with new sidecars, and the API serves
        the new universe from the next request on.

        Raises
        ------
        ConfigError
            If ``end`` is before the current clock or past the calendars' span.
        """
        end_ts = pd.Timestamp(end).normalize()
        with self._lock:
            u = self._universe
            if end_ts < u.end:
                raise ConfigError("the vendor clock only moves forward",
                                  found=f"{end_ts.date()} before the clock {u.end.date()}",
                                  fix="start a new sandbox for an earlier end", field="end")
            if end_ts == u.end:
                return []
            if self.vendor is not None:
                written = self.vendor.build(end_ts)
                api = self.vendor.api()
                self._http.set_api(api)
                self._universe = api.universe
            else:
                new = generate(n_assets=u.n_assets, years=u.years, seed=u.seed, end=str(
                    end_ts.date()), markets=u.markets, start=u.start)
                written = write_ftp_tree(new, self.root, only_changed=True)
                self._http.set_api(ApiData(new))
                self._universe = new
            paths = {f.path for f in written}
            self.files = [f for f in self.files if f.path not in paths] + written
            return written

    def clock(self, end: str | None = None) -> dict[str, Any]:
        """``{"start", "end"}`` of the clock, after advancing it to ``end`` if given (plus
        ``"files"``: the FTP files written); the HTTP ``/_sandbox/clock`` answer."""
        written = self.advance(end) if end is not None else None
        out: dict[str, Any] = {"start": str(self._universe.start.date()),
                               "end": str(self._universe.end.date())}
        if written is not None:
            out["files"] = [{"path": f.path, "rows": f.rows, "sha256": f.sha256}
                            for f in written]
        return out

    def connection(self) -> SandboxConnection:
        """Connection info as written to the state file."""
        return SandboxConnection(self.ftp_host, self.ftp_port, self.ftp_user, self.ftp_password,
                                 self.http_url, self.api_key, os.getpid())

    def stop(self) -> None:
        """Stop both servers, remove the state file (and the temporary tree, if ours)."""
        if self._stopped:
            return
        self._stopped = True
        self._ftp.stop()
        self._http.stop()
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
            if self.vendor is not None:
                shutil.rmtree(self.vendor.store.root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"Sandbox(ftp={self.ftp_host}:{self.ftp_port}, http={self.http_url}, "
                f"markets={','.join(self._universe.markets)}, root={self.root})")


def start_sandbox(universe: SandboxUniverse | None = None, *, root: str | os.PathLike[str] |
                  None = None, n_assets: int | Mapping[str, int] = 300, years: float = 10,
                  seed: int = 42, end: str = "2025-12-31",
                  markets: tuple[str, ...] = DEFAULT_MARKETS, start: str | None = None,
                  rate_limit: tuple[float, float] = (50.0, 100.0), ftp_port: int = 0,
                  http_port: int = 0, write_state: bool = True,
                  progress: bool = False, streamed: bool = False,
                  api_root: str | os.PathLike[str] | None = None) -> Sandbox:
    """Generate (or take) a universe, write its vendor tree and serve it on loopback.

    Parameters
    ----------
    universe : SandboxUniverse, optional
        The truth to serve; generated from ``n_assets, years, seed, end, markets, start``
        if None. :meth:`Sandbox.advance` regenerates from the universe's parameters.
    root : path, optional
        Where to write the FTP tree; a temporary folder (removed on stop) if None.
    n_assets : int or mapping
        Assets per market: one number, or one per market (e.g. ``{"KR": 5000, "US":
        14000, "EU": 6000}``).
    streamed : bool
        Serve out of core (:class:`~quantlib.sandbox.served.ServedVendor`, the real-size
        vendor): files written month by month, API prices and fundamentals read from
        Arrow IPC partitions under ``api_root``; nothing holds the whole history. Same
        files and pages as in memory; ``Sandbox.universe`` is then unavailable (use
        ``Sandbox.reference``). Not with ``universe``.
    api_root : path, optional
        Where a streamed sandbox writes its API partitions (default: beside ``root``,
        ``<root>-api``, or a temporary folder).
    rate_limit : (float, float)
        Token bucket ``(tokens per second, burst)`` per API key.
    ftp_port, http_port : int
        Ports to bind on 127.0.0.1; 0 picks free ones.
    write_state : bool
        Write ``$QUANTLIB_HOME/run/sandbox.json`` (0600).
    progress : bool
        Show a progress bar while writing files.

    Returns
    -------
    Sandbox

    Examples
    --------
    >>> import json, urllib.request
    >>> with start_sandbox(n_assets=5, years=0.25, markets=("US", "EU"), write_state=False) as sb:
    ...     req = urllib.request.Request(sb.http_url + "/v1/securities?market=US",
    ...                                  headers={"X-API-Key": sb.api_key})
    ...     n = json.load(urllib.request.urlopen(req))["total_rows"]
    ...     later = sb.advance("2026-01-07")
    >>> n, len(sb.universe.market_assets("US")), [f.path for f in later]
    (3, 3, ['eu/prices/prices_202601.csv'])
    """
    owns_root = root is None
    tree = Path(tempfile.mkdtemp(prefix="quantlib-sandbox-")) if root is None else Path(root)
    vendor = None
    if streamed:
        if universe is not None:
            raise ConfigError("a streamed sandbox generates its own universe",
                              found="universe= and streamed=True", fix="pass the "
                              "generation arguments (n_assets, years, ...) instead",
                              field="streamed")
        vendor = _streamed_vendor(tree, api_root, owns_root, n_assets, years, seed, end,
                                  markets, start)
        files = vendor.build(end, progress=progress)
        api: ApiData = vendor.api()
        universe = api.universe
    else:
        if universe is None:
            universe = generate(n_assets=n_assets, years=years, seed=seed, end=end,
                                markets=markets, start=start)
        files = write_ftp_tree(universe, tree, progress=progress)
        api = ApiData(universe)
    faults = FaultRegistry()
    password, api_key = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
    user = "vendor"
    ftp = FtpServer(tree, user=user, password=password, faults=faults, port=ftp_port).start()
    holder: list[Sandbox] = []
    try:
        http = HttpServer(api, api_key=api_key, faults=faults,
                          rate_limit=rate_limit, port=http_port,
                          clock=lambda end: holder[0].clock(end)).start()
    except BaseException:
        ftp.stop()
        raise
    sandbox = Sandbox(universe, tree, files, ftp, http, password, api_key, faults, owns_root,
                      None, vendor)
    holder.append(sandbox)
    if write_state:
        sandbox.state_file = sandbox.connection().save()
    return sandbox


def _streamed_vendor(tree: Path, api_root: str | os.PathLike[str] | None, owns_root: bool,
                     n_assets: int | Mapping[str, int], years: float, seed: int, end: str,
                     markets: tuple[str, ...], start: str | None) -> ServedVendor:
    """The out-of-core vendor of :func:`start_sandbox` (its start fixed from ``years``)."""
    from quantlib.sandbox.universe import _check_args, _check_period, _period

    _check_args(n_assets, years, tuple(markets))
    start_ts, end_ts = _period(years, end, start)
    _check_period(start_ts, end_ts)
    if api_root is None:
        api_root = (tempfile.mkdtemp(prefix="quantlib-sandbox-api-") if owns_root
                    else tree.with_name(tree.name + "-api"))
    return ServedVendor(tree, api_root, n_assets, years, seed, start_ts, tuple(markets))
