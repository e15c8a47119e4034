"""The vendor HTTP JSON API: paged list endpoints behind an ``X-API-Key`` header.

Each page is stored as its own delivery, ``file`` naming the endpoint, query and page
(``api/v1/prices?market=US&page=3``). Pages are followed through ``next_page``. An API
page has no sidecar, so it is always downloaded; an unchanged page hashes the same and
adds nothing to the raw zone or the manifest.

Polling (``ctx.poll``, an incremental refresh): ``prices``, ``fundamentals`` and
``corporate_actions`` are asked with ``updated_since`` = one millisecond after the
newest vendor time of the source's *published* pages of that endpoint
(:meth:`~quantlib.raw.RawZone.high_water`), so the vendor answers only rows it published
since (new sessions, corrections of any age, new filings, actions announced) and nothing
already stored is fetched again. A page's vendor time (its largest ``updated_ms`` /
``announced_ms`` / ``published_ms``) is kept as the delivery's ``known_at`` in the manifest
index. Without a high-water mark (a store built before the index kept it) prices fall
back to the ``start``/``end`` window and fundamentals and actions to the whole table.

Failures: connection errors, timeouts, 5xx, 429 (waiting at least ``Retry-After``), a
page that is not complete JSON, and a page with fewer rows than ``page_size`` and
``total_rows`` imply (a truncated page) are transient (extra rows pass: validation
quarantines duplicates); 401/403 (key), 404 and other 4xx are
permanent.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from operator import attrgetter, is_not
from typing import Any, ClassVar
from urllib.parse import urlencode

import msgspec
import pandas as pd
import requests

from quantlib.errors import ConfigError, PermanentSourceError, TransientSourceError
from quantlib.sources.base import FetchContext

__all__ = ["HttpApiSource", "api_file", "DATED_ENDPOINTS", "PAGE_SIZE", "POLLED", "page_known_at",
           "PageFacts", "page_facts"]

PAGE_SIZE = 5000
"""Rows per page requested (``page_size``); the page files omit it."""
DATED_ENDPOINTS = ("prices", "fx")
"""Endpoints that take ``start``/``end`` (YYYY-MM-DD)."""
POLLED = {"prices": "updated_ms", "fundamentals": "updated_ms",
          "corporate_actions": "announced_ms"}
"""Endpoints polled with ``updated_since`` and the row field that says when the row
entered the vendor's feed, what ``updated_since`` filters on (a filing published before
its asset listed enters the feed at the listing; a page without the field falls back
to ``published_ms``). A polled actions page holds only the actions announced since, not
an asset's whole table: its rows are upserted by action key (asset, ex date, kind;
:func:`quantlib.pipeline.incremental.upsert_keyed`) where a whole table replaces the
assets it names."""
_VENDOR_TIME = {**POLLED, "fx": "published_ms"}
_FALLBACK_TIME = {"fundamentals": "published_ms"}
_FIXES = {
    401: "check the API key (sandbox state file or QUANTLIB_API_KEY)",
    403: "check the API key's permissions (sandbox state file or QUANTLIB_API_KEY)",
    404: "check the endpoint name in the source definition (quantlib.sources.SOURCES)",
}


def api_file(endpoint: str, params: dict[str, str]) -> str:
    """The ``file`` name of one API page delivery.

    Examples
    --------
    >>> api_file("prices", {"market": "US", "page": "3"})
    'api/v1/prices?market=US&page=3'
    """
    return f"api/v1/{endpoint}" + (f"?{urlencode(params)}" if params else "")


@dataclass(frozen=True)
class HttpApiSource:
    """Some endpoints of the vendor JSON API for one market (or ``FX``).

    Attributes
    ----------
    name, market : str
        Source name (provenance) and market code (``FX`` for rates).
    endpoints : tuple of str
        Endpoints under ``/v1/`` fetched in order.
    fmt : str
        Reader format of the pages (``api-json``).
    """

    name: str
    market: str
    endpoints: tuple[str, ...]
    fmt: str = "api-json"
    timeout: float = 30.0
    page_size: int = PAGE_SIZE
    kind: ClassVar[str] = "http"

    def _params(self, endpoint: str, ctx: FetchContext) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.market != "FX":
            params["market"] = self.market
        since = ctx.raw.high_water(self.name, f"api/v1/{endpoint}?") \
            if ctx.poll and endpoint in POLLED else None
        if since is not None:
            after = since + pd.Timedelta(milliseconds=1)
            params["updated_since"] = f"{after:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"
            if endpoint in DATED_ENDPOINTS and ctx.end is not None:
                params["end"] = f"{pd.Timestamp(ctx.end):%Y-%m-%d}"
        elif endpoint in DATED_ENDPOINTS:
            if ctx.start is not None:
                params["start"] = f"{pd.Timestamp(ctx.start):%Y-%m-%d}"
            if ctx.end is not None:
                params["end"] = f"{pd.Timestamp(ctx.end):%Y-%m-%d}"
        return params

    def get_page(self, session: requests.Session, base: str, endpoint: str,
                 params: dict[str, str]) -> tuple[bytes, PageFacts]:
        """One page: its raw bytes and :class:`PageFacts` (errors classified, see module
        doc)."""
        file = api_file(endpoint, params)
        query = {**params, "page_size": str(self.page_size)}
        try:
            resp = session.get(f"{base}/v1/{endpoint}", params=query, timeout=self.timeout)
            data = resp.content
        except requests.RequestException as exc:
            raise TransientSourceError("API request must complete",
                                       found=f"{type(exc).__name__}: {exc}"[:300],
                                       fix="retrying; check the API server if it persists",
                                       source=self.name, file=file) from None
        status = resp.status_code
        if status == 429 or status >= 500:
            after = resp.headers.get("Retry-After")
            raise TransientSourceError(
                "API must answer 200", found=f"HTTP {status}",
                fix="retrying after a backoff" + (f" (Retry-After {after}s)" if after else ""),
                source=self.name, file=file,
                retry_after=float(after) if after and after.replace(".", "").isdigit() else None)
        if status != 200:
            raise PermanentSourceError("API must answer 200", found=f"HTTP {status}",
                                       fix=_FIXES.get(status, "check the request and the key"),
                                       source=self.name, file=file)
        try:
            page = page_facts(data, file)
        except ValueError as exc:
            raise TransientSourceError("API page must be complete JSON with a 'data' list",
                                       found=f"{exc} ({len(data)} bytes: truncated?)",
                                       fix="retrying; check the API server if it persists",
                                       source=self.name, file=file) from None
        self._check_rows(page, int(params.get("page", 1)), file)
        return data, page

    def _check_rows(self, page: PageFacts, page_no: int, file: str) -> None:
        total = page.total_rows
        if not isinstance(total, int):
            return
        expected = max(0, min(self.page_size, total - (page_no - 1) * self.page_size))
        if page.rows < expected:
            raise TransientSourceError(
                "API page must hold at least min(page_size, rows left) rows",
                found=f"{page.rows} rows, expected {expected} (total_rows {total}, "
                      f"page_size {self.page_size}): truncated page",
                fix="retrying; check the API server if it persists",
                source=self.name, file=file)

    def fetch(self, ctx: FetchContext) -> None:
        """Fetch every page of every endpoint into the raw zone.

        Page 1 tells ``total_rows``; the remaining pages are then fetched by up to
        ``ctx.workers`` threads (one HTTP session each). Without ``total_rows`` the pages
        are followed one by one through ``next_page``.
        """
        conn = ctx.connection
        if conn is None or not getattr(conn, "http_url", ""):
            raise ConfigError("API connection info must be given", found="no http_url",
                              fix="pass connection= or start the sandbox", source=self.name)
        sessions = _Sessions(str(conn.api_key))
        try:
            for endpoint in self.endpoints:
                self._fetch_endpoint(sessions, str(conn.http_url).rstrip("/"), endpoint, ctx)
        finally:
            sessions.close()

    def _store(self, ctx: FetchContext, file: str, data: bytes, page: PageFacts) -> None:
        d = ctx.raw.put(data, source=self.name, market=self.market, file=file,
                        fetch_id=ctx.fetch_id, fmt=self.fmt, rows=page.rows,
                        record=False, known_at=page.known_at)
        old = ctx.known(self.name, file, d.sha256)
        if old is not None:
            ctx.keep(old)
        else:
            ctx.add(d)

    def _one(self, sessions: _Sessions, base: str, endpoint: str, params: dict[str, str],
             page_no: int, ctx: FetchContext) -> PageFacts:
        query = {**params, "page": str(page_no)}
        data, page = ctx.retry.call(self.get_page, sessions.get(), base, endpoint, query)
        self._store(ctx, api_file(endpoint, query), data, page)
        return page

    def _fetch_endpoint(self, sessions: _Sessions, base: str, endpoint: str,
                        ctx: FetchContext) -> None:
        params = self._params(endpoint, ctx)
        page = self._one(sessions, base, endpoint, params, 1, ctx)
        total = page.total_rows
        if isinstance(total, int) and page.next_page == 2:
            n_pages = -(-total // self.page_size)
            with ThreadPoolExecutor(max_workers=max(1, ctx.workers)) as pool:
                futures = [pool.submit(self._one, sessions, base, endpoint, params, k, ctx)
                           for k in range(2, n_pages + 1)]
                for fut in futures:
                    fut.result()
            return
        seen = {1}
        nxt = page.next_page
        while nxt is not None and int(nxt) not in seen:
            seen.add(int(nxt))
            nxt = self._one(sessions, base, endpoint, params, int(nxt), ctx).next_page


@dataclass(frozen=True)
class PageFacts:
    """What the fetch needs from an API page: its row count, ``total_rows`` and
    ``next_page`` as sent (None when absent) and its vendor time
    (:func:`page_known_at`)."""

    rows: int
    total_rows: Any
    next_page: Any
    known_at: pd.Timestamp | None


class _Row(msgspec.Struct, gc=False):
    updated_ms: int | None = None
    published_ms: int | None = None
    announced_ms: int | None = None


class _Page(msgspec.Struct):
    data: list[_Row]
    total_rows: int | None = None
    next_page: int | None = None


_PAGE = msgspec.json.Decoder(_Page)


def page_facts(data: bytes, file: str) -> PageFacts:
    """Read an API page's :class:`PageFacts` from its bytes.

    A typed decode that skips every field the fetch does not use (about 6x faster than
    ``json.loads`` on a 5,000-row prices page; bench/bench_fetch.py); a page it does
    not accept (a row that is not an object, a time that is not an integer, ...) is read
    by ``json.loads`` and :func:`page_known_at`, with the same result.

    Raises
    ------
    ValueError
        The bytes are not complete JSON or hold no ``data`` list.

    Examples
    --------
    >>> f = page_facts(b'{"data": [{"t": 1, "updated_ms": 1704230400000}], "total_rows": 1}',
    ...                "api/v1/prices?market=US&page=1")
    >>> f.rows, f.total_rows, f.next_page, str(f.known_at)
    (1, 1, None, '2024-01-02 21:20:00+00:00')
    >>> page_facts(b'{"data": [[1], {"updated_ms": true}]}', "api/v1/prices?page=1").rows
    2
    >>> page_facts(b'{"data": [', "api/v1/prices?page=1")
    Traceback (most recent call last):
    ...
    json.decoder.JSONDecodeError: Expecting value: line 1 column 11 (char 10)
    """
    try:
        page = _PAGE.decode(data)
    except msgspec.DecodeError:
        return _page_facts_slow(data, file)
    name = file.split("?", 1)[0].rsplit("/", 1)[-1]
    newest = None
    for key in (_VENDOR_TIME.get(name), _FALLBACK_TIME.get(name)):
        if key and newest is None:   # map/filter: no Python frame per row
            newest = max(filter(_NOT_NONE, map(attrgetter(key), page.data)), default=None)
    return PageFacts(len(page.data), page.total_rows, page.next_page,
                     pd.Timestamp(newest, unit="ms", tz="UTC") if newest is not None else None)


_NOT_NONE = partial(is_not, None)


def _page_facts_slow(data: bytes, file: str) -> PageFacts:
    page = json.loads(data)
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise ValueError("no 'data' list")
    return PageFacts(len(page["data"]), page.get("total_rows"), page.get("next_page"),
                     page_known_at(file, page))


def page_known_at(file: str, page: dict) -> pd.Timestamp | None:
    """The newest vendor publication time (UTC) among a page's rows, if its endpoint
    sends one (``updated_ms``, ``published_ms``, ``announced_ms``).

    Examples
    --------
    >>> page = {"data": [{"t": 0, "updated_ms": 1704230400000}, {"t": 0, "updated_ms": 5}]}
    >>> str(page_known_at("api/v1/prices?market=US&page=1", page))
    '2024-01-02 21:20:00+00:00'
    >>> page_known_at("api/v1/securities?market=US&page=1", page) is None
    True
    """
    name = file.split("?", 1)[0].rsplit("/", 1)[-1]
    times: list[int] = []
    for key in (_VENDOR_TIME.get(name), _FALLBACK_TIME.get(name)):
        if key and not times:
            times = [t for r in page["data"] if isinstance(r, dict) for t in (r.get(key),)
                     if isinstance(t, int) and not isinstance(t, bool)]
    return pd.Timestamp(max(times), unit="ms", tz="UTC") if times else None


class _Sessions:
    """One ``requests.Session`` per thread, all closed at the end."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self._local = threading.local()
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["X-API-Key"] = self.api_key
            self._local.session = s
            with self._lock:
                self._all.append(s)
        return s

    def close(self) -> None:
        with self._lock:
            for s in self._all:
                s.close()
            self._all.clear()
