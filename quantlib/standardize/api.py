"""Reader ``api-json``: pages of the vendor HTTP JSON API, one parser per endpoint.

A delivery's ``file`` names its endpoint (``api/v1/prices?market=US&page=3``). Every page
is ``{"data": [...], "page": n, "next_page": n+1 or null, "total_rows": N}``; times are
epoch milliseconds (UTC). ``row`` is the record's 0-based index in its page. FX comes as
units of currency per USD and is inverted to USD per unit (the base currency).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa

from quantlib.calendars import MARKETS
from quantlib.errors import StandardizeError
from quantlib.raw import Delivery
from quantlib.standardize.batch import CanonicalBatch, conform, empty_unparsed
from quantlib.standardize.common import (
    check_columns,
    epoch_ms_date,
    epoch_ms_utc,
    listed_known_at,
    price_known_at,
    repeat_text,
    to_float,
    unparsed,
)

__all__ = ["read_api", "read_api_many", "API_COLUMNS", "endpoint_of", "frame_of", "FX_KNOWN_AT_UTC"]

API_COLUMNS: dict[str, list[str]] = {
    "securities": ["isin", "ticker", "name", "sector", "currency", "listed_ms", "delisted_ms"],
    "tickers": ["isin", "ticker", "valid_from_ms", "valid_to_ms"],
    "prices": ["isin", "ticker", "t", "o", "h", "l", "c", "v"],
    "corporate_actions": ["isin", "ex_date_ms", "type", "value", "announced_ms"],
    "fundamentals": ["isin", "field", "period_end_ms", "value", "currency", "published_ms"],
    "fx": ["currency", "t", "per_usd"],
}
_PARSED = {  # canonical field -> JSON key, for values that must parse
    "securities": {"listed": "listed_ms", "delisted": "delisted_ms"},
    "tickers": {"valid_from": "valid_from_ms", "valid_to": "valid_to_ms"},
    "prices": {"date": "t", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"},
    "corporate_actions": {"ex_date": "ex_date_ms", "value": "value", "known_at": "announced_ms"},
    "fundamentals": {"period_end": "period_end_ms", "value": "value",
                     "known_at": "published_ms"},
    "fx": {"date": "t", "rate": "per_usd"},
}
# The two endpoints that carry almost every row (bars and statements) are decoded by a
# typed msgspec decoder straight into columns, every field required and of one JSON type
# (``float`` takes JSON integers too). A group of pages it does not accept (a missing
# key, a null, text in a number, malformed JSON) is read by the general path
# (``json.loads``, Arrow or pandas), which gives the same frame for the pages both accept.


class _PriceRow(msgspec.Struct):
    isin: str
    ticker: str
    t: int
    o: float
    h: float
    l: float  # noqa: E741 - the vendor's key
    c: float
    v: float


class _StatementRow(msgspec.Struct):
    isin: str
    field: str
    period_end_ms: int
    value: float
    currency: str
    published_ms: int


def _price_columns(rows: list[_PriceRow]) -> dict[str, list[Any]]:
    return {"isin": [r.isin for r in rows], "ticker": [r.ticker for r in rows],
            "t": [r.t for r in rows], "o": [r.o for r in rows], "h": [r.h for r in rows],
            "l": [r.l for r in rows], "c": [r.c for r in rows], "v": [r.v for r in rows]}


def _statement_columns(rows: list[_StatementRow]) -> dict[str, list[Any]]:
    return {"isin": [r.isin for r in rows], "field": [r.field for r in rows],
            "period_end_ms": [r.period_end_ms for r in rows],
            "value": [r.value for r in rows], "currency": [r.currency for r in rows],
            "published_ms": [r.published_ms for r in rows]}


#: dtype of each typed column (the rest are float64)
_TYPED_KINDS = {"isin": "str", "ticker": "str", "field": "str", "currency": "str",
                "t": "int64", "period_end_ms": "int64", "published_ms": "int64"}
_TYPED: dict[str, tuple[Any, Any]] = {
    "prices": (msgspec.json.Decoder(msgspec.defstruct("_PricePage",
                                                      [("data", list[_PriceRow])])),
               _price_columns),
    "fundamentals": (msgspec.json.Decoder(msgspec.defstruct(
        "_StatementPage", [("data", list[_StatementRow])])), _statement_columns),
}
FX_KNOWN_AT_UTC = pd.Timedelta(hours=21, minutes=15)
"""A date's FX rates are known at 21:15 UTC that day (unless the page sends
``published_ms``)."""


def endpoint_of(file: str) -> tuple[str, dict[str, str]]:
    """Endpoint name and query parameters of an API delivery's ``file``.

    Examples
    --------
    >>> endpoint_of("api/v1/prices?market=US&page=3")
    ('prices', {'market': 'US', 'page': '3'})
    """
    parts = urlsplit(file)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return name, {k: v[-1] for k, v in parse_qs(parts.query).items()}


def read_api(data: bytes, d: Delivery) -> CanonicalBatch:
    """Standardize one API page.

    Examples
    --------
    >>> from quantlib.raw import Delivery
    >>> page = {"data": [{"currency": "KRW", "t": 1709510400000, "per_usd": 1250.0}],
    ...         "page": 1, "next_page": None, "total_rows": 1}
    >>> d = Delivery("api", "FX", "api/v1/fx?page=1", "api-json", "0" * 64, 0, 1,
    ...              pd.Timestamp("2024-03-05", tz="UTC"), "f", "raw/00/0")
    >>> fx = read_api(json.dumps(page).encode(), d).fx
    >>> fx[["currency", "rate", "row"]].values.tolist()
    [['KRW', 0.0008, 0]]
    >>> str(fx["date"].iloc[0].date())
    '2024-03-04'
    """
    return read_api_many([(data, d)])


def _records(data: bytes, d: Delivery, endpoint: str) -> list[dict]:
    try:
        page = json.loads(data.decode("utf-8"))
        records = page["data"]
        if not isinstance(records, list):
            raise TypeError("'data' is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise StandardizeError("API page must be JSON with a 'data' list",
                               found=f"{type(exc).__name__}: {exc}",
                               fix="fetch the page again; the transfer may be corrupt",
                               source=d.source, market=d.market, file=d.file) from None
    if records:
        keys: set[str] = set()
        for rec in records:
            keys.update(rec)
        if not set(API_COLUMNS[endpoint]) <= keys:
            check_columns(sorted(keys, key=str), API_COLUMNS[endpoint], d)
    return records


def _frame(records: list[dict], expected: list[str]) -> pd.DataFrame:
    """Records as a frame: Arrow when the columns have one type each (~2.5x faster),
    pandas otherwise (mixed types, e.g. garbage text in a number column)."""
    try:
        table = pa.Table.from_pylist(records)
        if set(table.column_names) >= set(expected):   # Arrow infers from the first row
            return table.to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    return pd.DataFrame.from_records(records)


def _typed_frame(group: Sequence[tuple[bytes, Delivery]], endpoint: str
                 ) -> pd.DataFrame | None:
    """The pages of a typed endpoint as one frame (columns as the general path's, plus
    ``row``, ``source``, ``file``); ``None`` when some page does not fit the typed
    decoder (or the endpoint has none)."""
    if endpoint not in _TYPED:
        return None
    decoder, columns = _TYPED[endpoint]
    rows: list[Any] = []
    counts: list[int] = []
    try:
        for data, _d in group:
            page = decoder.decode(data).data
            rows += page
            counts.append(len(page))
    except msgspec.DecodeError:
        return None
    out: dict[str, Any] = {}
    for name, values in columns(rows).items():
        kind = _TYPED_KINDS.get(name, "float64")
        out[name] = pd.array(pa.array(values, pa.large_string()), dtype="str") \
            if kind == "str" else np.array(values, dtype=kind)
    f = pd.DataFrame(out)
    f["row"] = np.concatenate([np.arange(n, dtype="int64") for n in counts]) if counts \
        else np.zeros(0, dtype="int64")
    f["source"] = repeat_text([d.source for _, d in group], counts)
    f["file"] = repeat_text([d.file for _, d in group], counts)
    return f


def _general_frame(group: Sequence[tuple[bytes, Delivery]], endpoint: str
                   ) -> pd.DataFrame | None:
    """The pages as one frame by ``json.loads`` (any value types; ``None``: no rows)."""
    records: list[dict] = []
    rows, counts = [], []
    for data, d in group:
        recs = _records(data, d, endpoint)
        records.extend(recs)
        rows.append(np.arange(len(recs), dtype="int64"))
        counts.append(len(recs))
    if not records:
        return None
    f = _frame(records, API_COLUMNS[endpoint])
    f["row"] = np.concatenate(rows)
    f["source"] = repeat_text([d.source for _, d in group], counts)
    f["file"] = repeat_text([d.file for _, d in group], counts)
    return f


def read_api_many(items: Sequence[tuple[bytes, Delivery]]) -> CanonicalBatch:
    """Standardize many API pages at once (pages of one endpoint and market concatenated)."""
    groups: dict[tuple[str, str], list[tuple[bytes, Delivery]]] = {}
    for data, d in items:
        endpoint, query = endpoint_of(d.file)
        if endpoint not in API_COLUMNS:
            raise StandardizeError(f"API endpoint must be one of {', '.join(API_COLUMNS)}",
                                   found=endpoint,
                                   fix="register a parser in quantlib.standardize.api",
                                   source=d.source, market=d.market, file=d.file)
        groups.setdefault((endpoint, query.get("market", d.market)), []).append((data, d))
    parts: dict[str, list[pd.DataFrame]] = {}
    bad: list[pd.DataFrame] = []
    for (endpoint, market), group in groups.items():
        f = _typed_frame(group, endpoint)
        if f is None:
            f = _general_frame(group, endpoint)
        if f is None or not len(f):
            continue
        frame_name, parser = _PARSERS[endpoint]
        out = parser(f, market)
        parts.setdefault(frame_name, []).append(out)
        bad.append(unparsed(frame_name, f, out, _PARSED[endpoint]))
    return CanonicalBatch(**{k: pd.concat(v, ignore_index=True) if len(v) > 1 else v[0]
                             for k, v in parts.items()},
                          unparsed=pd.concat(bad, ignore_index=True) if bad
                          else empty_unparsed())


def _assets(f: pd.DataFrame, market: str) -> pd.DataFrame:
    m = MARKETS.get(market)
    listed = epoch_ms_date(f["listed_ms"])
    out = pd.DataFrame({
        "asset_id": f["isin"], "market": market, "mic": m.mic if m else "",
        "currency": f["currency"], "sector": f["sector"], "name": f["name"], "listed": listed,
        "delisted": epoch_ms_date(f["delisted_ms"]),
        "known_at": listed_known_at(listed),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("assets", out)


def _symbols(f: pd.DataFrame, market: str) -> pd.DataFrame:
    out = pd.DataFrame({
        "asset_id": f["isin"], "symbol": f["ticker"],
        "valid_from": epoch_ms_date(f["valid_from_ms"]),
        "valid_to": epoch_ms_date(f["valid_to_ms"]),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("symbols", out)


def _prices(f: pd.DataFrame, market: str) -> pd.DataFrame:
    dates = epoch_ms_date(f["t"])
    out = pd.DataFrame({
        "asset_id": f["isin"], "date": dates, "open": to_float(f["o"]), "high": to_float(f["h"]),
        "low": to_float(f["l"]), "close": to_float(f["c"]), "volume": to_float(f["v"]),
        "known_at": price_known_at(market, dates),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("prices", out)


def _actions(f: pd.DataFrame, market: str) -> pd.DataFrame:
    out = pd.DataFrame({
        "asset_id": f["isin"], "ex_date": epoch_ms_date(f["ex_date_ms"]),
        "kind": f["type"].astype(str).str.lower(), "value": to_float(f["value"]),
        "known_at": epoch_ms_utc(f["announced_ms"]),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("corporate_actions", out)


def _statements(f: pd.DataFrame, market: str) -> pd.DataFrame:
    out = pd.DataFrame({
        "asset_id": f["isin"], "field": f["field"],
        "period_end": epoch_ms_date(f["period_end_ms"]), "value": to_float(f["value"]),
        "known_at": epoch_ms_utc(f["published_ms"]),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("statements", out)


def _fx(f: pd.DataFrame, market: str) -> pd.DataFrame:
    dates = epoch_ms_date(f["t"])
    per_usd = to_float(f["per_usd"])
    out = pd.DataFrame({
        "date": dates, "currency": f["currency"], "rate": 1.0 / per_usd,
        "known_at": (epoch_ms_utc(f["published_ms"]) if "published_ms" in f
                     else dates.dt.tz_localize("UTC") + FX_KNOWN_AT_UTC),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("fx", out)


_PARSERS = {"securities": ("assets", _assets), "tickers": ("symbols", _symbols),
            "prices": ("prices", _prices), "corporate_actions": ("corporate_actions", _actions),
            "fundamentals": ("statements", _statements), "fx": ("fx", _fx)}


def frame_of(d: Delivery) -> str | None:
    """The canonical frame an API delivery standardizes into (``None``: not an API page,
    or an endpoint without a parser).

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-02", tz="UTC")
    >>> def d(file):
    ...     return Delivery("api-us", "US", file, "api-json", "a" * 64, 1, 1, t, "f", "")
    >>> [frame_of(d(f)) for f in ("api/v1/fundamentals?market=US&page=2",
    ...                           "api/v1/securities?market=US", "us/master.csv")]
    ['statements', 'assets', None]
    """
    if not d.file.startswith("api/"):
        return None
    parser = _PARSERS.get(endpoint_of(d.file)[0])
    return parser[0] if parser is not None else None
