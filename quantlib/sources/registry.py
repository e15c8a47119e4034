"""The source registry and the fetch entry points.

``SOURCES`` holds one small declarative adapter per vendor feed, built from the market
registry (``quantlib/markets.yaml``); ``MARKET_SOURCES`` says which feeds make up a
market. :func:`fetch_market` runs them in order. An FTP source fetches its delimited
format's fixed files (assets, symbols, corporate actions) and every file of its dated
price folder; an API source pages through its endpoints. For the shipped registry:

- ``KR``, ``JP``: FTP files (one price file per session), plus the API fundamentals;
- ``EU``: FTP files (one price file per month), plus the API fundamentals;
- ``US``: API securities, tickers, prices (paged), corporate actions, fundamentals;
- ``FX``: API rates (:func:`fetch_fx`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from quantlib.errors import PermanentSourceError
from quantlib.markets import FORMATS, MARKETS, SourceSpec, registry
from quantlib.raw import Delivery, RawZone
from quantlib.sources.base import FetchContext
from quantlib.sources.connection import ConnectionLike, load_connection
from quantlib.sources.filedrop import FileDropSource
from quantlib.sources.ftp import FtpSource
from quantlib.sources.http import HttpApiSource
from quantlib.sources.retry import RetryPolicy, default_retry

__all__ = ["SOURCES", "MARKET_SOURCES", "fetch_market", "fetch_fx", "ingest_files",
           "run_sources"]

Source = FtpSource | HttpApiSource | FileDropSource

def _adapter(market: str, spec: SourceSpec) -> Source:
    """The adapter of one registry source: FTP files of a delimited format, or API endpoints."""
    if spec.protocol == "ftp":
        fmt = FORMATS[str(spec.format)]
        fixed = tuple(f"{spec.root}/{p}" for p in fmt.files.values() if "%" not in p)
        folders = tuple(f"{spec.root}/{p.rsplit('/', 1)[0]}" for p in fmt.files.values()
                        if "%" in p)
        return FtpSource(spec.name, market, fmt.name, files=fixed, folders=folders)
    return HttpApiSource(spec.name, market, spec.endpoints)


_SPECS = {**{code: m.sources for code, m in MARKETS.items()}, **registry().shared_sources}
SOURCES: dict[str, Source] = {s.name: _adapter(code, s) for code, specs in _SPECS.items()
                              for s in specs}
"""Every vendor feed, built from ``quantlib/markets.yaml``."""
MARKET_SOURCES: dict[str, tuple[str, ...]] = {
    code: tuple(s.name for s in specs) for code, specs in _SPECS.items()}
"""The feeds making up each market (and ``FX``), in fetch order."""


def run_sources(sources: list[Source], *, raw: RawZone, connection: Any, fetch_id: str,
                progress: bool = False, start: Any = None, end: Any = None,
                retry: RetryPolicy | None = None, workers: int = 4,
                new_only: bool = False, poll: bool = False) -> list[Delivery]:
    """Fetch some sources into the raw zone; see :func:`fetch_market`."""
    ctx = FetchContext(raw=raw, connection=connection, fetch_id=fetch_id,
                       retry=retry or default_retry(), progress=progress,
                       start=pd.Timestamp(start) if start is not None else None,
                       end=pd.Timestamp(end) if end is not None else None, workers=workers,
                       poll=poll)
    try:
        for source in sources:
            source.fetch(ctx)
    finally:
        ctx.flush()   # what was stored before a failure is recorded: a rerun resumes
    out = ctx.new if new_only else ctx.current
    return sorted(out, key=lambda d: (d.source, d.file))


def fetch_market(market: str, *, raw: RawZone, connection: ConnectionLike | None = None,
                 fetch_id: str, progress: bool = False, start: Any = None, end: Any = None,
                 retry: RetryPolicy | None = None, workers: int = 4,
                 new_only: bool = False, poll: bool = False) -> list[Delivery]:
    """Fetch one market's vendor deliveries into the raw zone (idempotent, resumable).

    Files whose sidecar sha256 is already in the raw zone are not downloaded again; API
    pages that hash the same add nothing. After a crash, rerunning completes the fetch
    without duplicates. Manifest rows (status ``fetched``) are appended as it goes.

    Parameters
    ----------
    market : str
        A market code of the registry (or ``FX``, see :func:`fetch_fx`).
    raw : RawZone
        Where deliveries are stored.
    connection : object, optional
        Has ``ftp_host, ftp_port, ftp_user, ftp_password, http_url, api_key`` (e.g. the
        sandbox's); default :func:`~quantlib.sources.load_connection`.
    fetch_id : str
        Id of this fetch run (recorded in the manifest).
    progress : bool
        Show a progress bar per FTP source.
    start, end : date-like, optional
        Window for price files/pages and FX (whole history if omitted).
    retry : RetryPolicy, optional
        Backoff settings (default :func:`~quantlib.sources.default_retry`).
    workers : int
        Parallel FTP connections.
    new_only : bool
        Return only deliveries new to the raw zone (default: every delivery that makes
        up the market as the vendor serves it now, unchanged ones included).
    poll : bool
        Ask the API's polled endpoints (:data:`~quantlib.sources.http.POLLED`) only for
        rows published after the newest one already published (``updated_since``; an
        incremental refresh).

    Returns
    -------
    list of Delivery
        Sorted by (source, file).

    Raises
    ------
    PermanentSourceError
        Bad credentials, a missing file/endpoint, an unknown market (fails at once).
    TransientSourceError
        A transient failure that outlasted the retry policy.
    """
    if market not in MARKET_SOURCES:
        raise PermanentSourceError(f"market must be one of {', '.join(MARKET_SOURCES)}",
                                   found=repr(market), fix="pass a supported market code",
                                   market=market)
    conn = connection if connection is not None else load_connection()
    return run_sources([SOURCES[n] for n in MARKET_SOURCES[market]], raw=raw, connection=conn,
                       fetch_id=fetch_id, progress=progress, start=start, end=end, retry=retry,
                       workers=workers, new_only=new_only, poll=poll)


def fetch_fx(*, raw: RawZone, connection: ConnectionLike | None = None, fetch_id: str,
             progress: bool = False, start: Any = None, end: Any = None,
             retry: RetryPolicy | None = None, new_only: bool = False,
             poll: bool = False) -> list[Delivery]:
    """Fetch FX rates from the API (market ``FX``); see :func:`fetch_market`."""
    return fetch_market("FX", raw=raw, connection=connection, fetch_id=fetch_id,
                        progress=progress, start=start, end=end, retry=retry,
                        new_only=new_only, poll=poll)


def ingest_files(url_or_path: str, fmt: str, market: str, *, raw: RawZone, fetch_id: str,
                 source: str = "file-drop", new_only: bool = False) -> list[Delivery]:
    """Store a file drop (a file or a folder, local or fsspec URL) in the raw zone.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> drop = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (drop / "IBM.csv").write_text("Date,Open,High,Low,Close,Volume,Adj Close\\n"
    ...                                  "2013-03-01,200,202,199,201,10,190\\n")
    >>> raw = RawZone(tempfile.mkdtemp())
    >>> [(d.file, d.rows) for d in ingest_files(str(drop), "yahoo-csv", "US", raw=raw,
    ...                                         fetch_id="f1")]
    [('IBM.csv', 1)]
    >>> ingest_files(str(drop), "yahoo-csv", "US", raw=raw, fetch_id="f2", new_only=True)
    []
    """
    drop = FileDropSource(source, market, fmt, str(url_or_path))
    return run_sources([drop], raw=raw, connection=None, fetch_id=fetch_id,
                       new_only=new_only)
