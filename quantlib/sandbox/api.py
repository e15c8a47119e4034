"""The sandbox JSON API's data: column arrays per endpoint and market, sliced per page.

:class:`ApiData` precomputes, once, every endpoint's rows as numpy columns sorted the way
pages are served (time first where the endpoint filters on time), so answering a page is a
``searchsorted`` plus a slice plus ``tolist``.

Query parameters: ``market`` (all but ``fx``), ``page``, ``page_size``; ``start`` and
``end`` (``YYYY-MM-DD``, inclusive) on the dated endpoints ``prices`` and ``fx``;
``updated_since`` (``YYYY-MM-DD`` or an ISO instant, UTC when naive) on ``prices``,
``corporate_actions`` and ``fundamentals``: only rows the vendor published or
re-published at or after that instant (each price row carries its ``updated_ms``; an
action its ``announced_ms``; a filing its ``updated_ms``: its ``published_ms``, or its
asset's listing when it was published before, as the feed serves it from then on). A client that polls with
``updated_since`` = its last poll gets new sessions, corrections and late actions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from quantlib.errors import QuantlibError
from quantlib.sandbox.events import FX_DECIMALS
from quantlib.sandbox.formats import (
    codes_of,
    current_symbols,
    epoch_ms,
    symbol_index,
    with_none,
)
from quantlib.sandbox.pagejson import encode_page

if TYPE_CHECKING:
    from quantlib.sandbox.universe import SandboxUniverse

__all__ = ["ApiData", "Table", "Coded", "ApiRequestError", "DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE",
           "ENDPOINTS", "UPDATED", "updated_ms", "statement_updated_ms", "page_json"]

DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 50_000
ENDPOINTS = ("securities", "tickers", "prices", "corporate_actions", "fundamentals", "fx")
_TIMED = {"prices", "fx"}
#: the column each endpoint's ``updated_since`` filters on
UPDATED = {"prices": "updated_ms", "corporate_actions": "announced_ms",
           "fundamentals": "updated_ms"}


class ApiRequestError(QuantlibError):
    """A bad API request (answered with HTTP 400/404)."""

    def __init__(self, what: str, *, status: int = 400, **kwargs: Any) -> None:
        self.status = status
        super().__init__(what, **kwargs)


@dataclass
class Coded:
    """A text column stored as int codes into ``categories`` (``-1`` -> None)."""

    codes: np.ndarray
    categories: np.ndarray   # object array, with a trailing None for code -1
    _dictionary: pa.Array | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, values: pd.Series, categories: pd.Series | pd.Index) -> Coded:
        """Code ``values`` against ``categories`` (unknown values become None)."""
        cats = np.asarray(categories, dtype=object)
        return cls(codes_of(values, cats), with_none(cats))

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, sl: slice) -> np.ndarray:
        return self.categories[self.codes[sl]]

    def arrow(self, at: slice | np.ndarray) -> pa.DictionaryArray:
        """The values at ``at`` as an Arrow dictionary array (None -> null)."""
        if self._dictionary is None:
            self._dictionary = pa.array(self.categories[:-1])
        codes = self.codes[at]
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0),
                                              self._dictionary)


@dataclass
class Table:
    """Rows of one endpoint (and market) as columns; ``t`` is the filter time (ms)."""

    columns: dict[str, np.ndarray | Coded]
    nullable: tuple[str, ...] = ()
    t: np.ndarray | None = None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def records(self, lo: int, hi: int, rows: np.ndarray | None = None
                ) -> list[dict[str, Any]]:
        """Rows ``lo:hi`` (of ``rows``, the selected row positions, when given) as
        JSON-ready dicts (``-1`` in nullable ms columns -> None)."""
        keys = list(self.columns)
        cols = []
        for k in keys:
            col = self.columns[k]
            if rows is None:
                vals = col[lo:hi].tolist()
            elif isinstance(col, Coded):
                vals = col.categories[col.codes[rows[lo:hi]]].tolist()
            else:
                vals = col[rows[lo:hi]].tolist()
            if k in self.nullable:
                vals = [None if v == -1 else v for v in vals]
            cols.append(vals)
        return [dict(zip(keys, row, strict=True)) for row in zip(*cols, strict=True)]

    def arrays(self, lo: int, hi: int, rows: np.ndarray | None = None
               ) -> dict[str, pa.Array]:
        """Rows ``lo:hi`` (of ``rows``, as in :meth:`records`) as Arrow arrays, the
        values :meth:`records` gives (nulls where it gives None)."""
        out = {}
        for k, col in self.columns.items():
            at = slice(lo, hi) if rows is None else rows[lo:hi]
            if isinstance(col, Coded):
                out[k] = col.arrow(at)
                continue
            vals = col[at]
            out[k] = pa.array(vals, mask=vals == -1 if k in self.nullable else None)
        return out


def updated_ms(px: pd.DataFrame, fixes: pd.DataFrame | None) -> np.ndarray:
    """When each bar's served version was published (epoch ms): its ``known_at``, or
    that of its correction in ``fixes`` (rows of ``price_corrections``).

    Examples
    --------
    >>> px = pd.DataFrame({"asset_id": ["A", "B"], "date": pd.to_datetime(["2024-01-02"] * 2),
    ...                    "known_at": pd.to_datetime(["2024-01-02 21:15"] * 2, utc=True)})
    >>> fix = px.iloc[[1]].assign(known_at=pd.Timestamp("2024-01-05", tz="UTC"))
    >>> updated_ms(px, fix).tolist()
    [1704230100000, 1704412800000]
    """
    out = epoch_ms(px["known_at"])
    if fixes is None or fixes.empty or px.empty:
        return out
    keys = pd.MultiIndex.from_arrays([px["asset_id"].to_numpy(dtype=object),
                                      px["date"].to_numpy()])
    rows = keys.get_indexer(pd.MultiIndex.from_arrays(
        [fixes["asset_id"].to_numpy(dtype=object), fixes["date"].to_numpy()]))
    hit = rows >= 0
    out[rows[hit]] = epoch_ms(fixes["known_at"])[hit]
    return out


def statement_updated_ms(statements: pd.DataFrame, listed: pd.Series) -> np.ndarray:
    """When each filing entered the vendor's feed (epoch ms): its ``known_at``, or, for
    a filing published before its asset listed (a prospectus), the listing (midnight
    UTC, when the asset's master record appears): the feed serves an asset's filings
    from its listing on, so an ``updated_since`` poll after an earlier clock gets them.
    ``listed`` maps asset id -> listing date.

    Examples
    --------
    >>> st = pd.DataFrame({"asset_id": ["A", "B"],
    ...                    "known_at": pd.to_datetime(["2024-01-02", "2024-03-01"], utc=True)})
    >>> listed = pd.Series(pd.to_datetime(["2024-02-01", "2020-01-02"]), index=["A", "B"])
    >>> statement_updated_ms(st, listed).tolist()
    [1706745600000, 1709251200000]
    """
    at = pd.to_datetime(statements["asset_id"].map(listed))
    return np.maximum(epoch_ms(statements["known_at"]), epoch_ms(at))


def _obj(s: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(s, dtype=object)


class ApiData:
    """All endpoint tables of a universe.

    Examples
    --------
    >>> from quantlib.sandbox import generate
    >>> api = ApiData(generate(n_assets=5, years=0.25, seed=1, markets=("US",)))
    >>> page = api.page("securities", {"market": "US"})
    >>> page["total_rows"], page["next_page"], sorted(page["data"][0])[:3]
    (3, None, ['currency', 'delisted_ms', 'isin'])
    """

    def __init__(self, universe: SandboxUniverse) -> None:
        self.universe = universe
        self.markets = tuple(universe.markets)
        self._tables: dict[tuple[str, str], Table] = {}
        cur = current_symbols(universe.symbols)
        for m in self.markets:
            self._tables[("securities", m)] = self._securities(m, cur)
            self._tables[("tickers", m)] = self._tickers(m)
            self._tables[("prices", m)] = self._prices(m)
            self._tables[("corporate_actions", m)] = self._actions(m)
            self._tables[("fundamentals", m)] = self._fundamentals(m)
        self._tables[("fx", "")] = self._fx()

    def _securities(self, m: str, cur: pd.Series) -> Table:
        a = self.universe.market_assets(m)
        return Table({"isin": _obj(a["asset_id"]), "ticker": _obj(a["asset_id"].map(cur)),
                      "name": _obj(a["name"]), "sector": _obj(a["sector"]),
                      "currency": _obj(a["currency"]), "listed_ms": epoch_ms(a["listed"]),
                      "delisted_ms": epoch_ms(a["delisted"])}, nullable=("delisted_ms",))

    def _tickers(self, m: str) -> Table:
        s = self.universe.market_frame("symbols", m)
        return Table({"isin": _obj(s["asset_id"]), "ticker": _obj(s["symbol"]),
                      "valid_from_ms": epoch_ms(s["valid_from"]),
                      "valid_to_ms": epoch_ms(s["valid_to"])}, nullable=("valid_to_ms",))

    def _prices(self, m: str) -> Table:
        px = self.universe.market_frame("prices", m)
        t = epoch_ms(px["date"])
        if len(t) > 1 and not (t[1:] >= t[:-1]).all():
            px = px.sort_values(["date", "asset_id"], kind="stable")
            t = epoch_ms(px["date"])
        sym = self.universe.market_frame("symbols", m)
        ticker = Coded(symbol_index(sym, px["asset_id"], px["date"]).astype(np.int32),
                       with_none(sym["symbol"].to_numpy(dtype=object)))
        return Table({"isin": Coded.of(px["asset_id"], self.universe.market_assets(m)[
                          "asset_id"]),
                      "ticker": ticker, "t": t, "o": px["open"].to_numpy(), "h": px["high"].to_numpy(),
                      "l": px["low"].to_numpy(), "c": px["close"].to_numpy(),
                      "v": px["volume"].to_numpy().astype(np.int64),
                      "updated_ms": updated_ms(px, self.universe.price_corrections)}, t=t)

    def _actions(self, m: str) -> Table:
        ca = self.universe.market_frame("corporate_actions", m)
        return Table({"isin": _obj(ca["asset_id"]), "ex_date_ms": epoch_ms(ca["ex_date"]),
                      "type": _obj(ca["kind"]), "value": ca["value"].to_numpy(),
                      "announced_ms": epoch_ms(ca["known_at"])})

    def _fundamentals(self, m: str) -> Table:
        st = self.universe.market_frame("statements", m)
        currency = self.universe.market_assets(m)["currency"].iloc[0]
        return Table({"isin": Coded.of(st["asset_id"], st["asset_id"].unique()),
                      "field": Coded.of(st["field"], st["field"].unique()),
                      "period_end_ms": epoch_ms(st["period_end"]),
                      "value": st["value"].to_numpy(),
                      "currency": np.full(len(st), currency, dtype=object),
                      "published_ms": epoch_ms(st["known_at"]),
                      "updated_ms": statement_updated_ms(st, self._listed(m))})

    def _listed(self, m: str) -> pd.Series:
        a = self.universe.market_assets(m)
        return pd.Series(a["listed"].to_numpy(), index=a["asset_id"].to_numpy())

    def _fx(self) -> Table:
        fx = self.universe.fx.sort_values(["date", "currency"], kind="stable")
        dec = fx["currency"].map(FX_DECIMALS).to_numpy(dtype=np.int64)
        per_usd = np.array([round(1.0 / r, int(d)) for r, d in
                            zip(fx["rate"].to_numpy(), dec, strict=True)], dtype=np.float64)
        t = epoch_ms(fx["date"])
        return Table({"currency": _obj(fx["currency"]), "t": t, "per_usd": per_usd,
                      "published_ms": epoch_ms(fx["known_at"])}, t=t)

    def table(self, endpoint: str, params: dict[str, str]) -> Table:
        """The table behind ``GET /v1/<endpoint>`` for the query ``params``."""
        if endpoint not in ENDPOINTS:
            raise ApiRequestError("the endpoint must exist", status=404, found=endpoint,
                                  fix=f"use one of /v1/{', /v1/'.join(ENDPOINTS)}")
        if endpoint == "fx":
            return self._tables[("fx", "")]
        market = params.get("market")
        if market not in self.markets:
            raise ApiRequestError("query parameter market must name a served market",
                                  found=repr(market), market=market,
                                  fix=f"add ?market= one of {', '.join(self.markets)}")
        return self._tables[(endpoint, market)]

    def page(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        """One page: ``{"data", "page", "next_page", "total_rows"}``."""
        table, a, b, rows, head = self._select(endpoint, params)
        return {"data": table.records(a, b, rows), **head}

    def page_body(self, endpoint: str, params: dict[str, str]) -> bytes:
        """One page as the JSON the server sends: ``json.dumps(self.page(...),
        separators=(",", ":"), allow_nan=False)``, encoded from the columns
        (:mod:`quantlib.sandbox.pagejson`) where it can be."""
        table, a, b, rows, head = self._select(endpoint, params)
        try:
            body = encode_page(table.arrays(a, b, rows), **head)
        except (pa.ArrowInvalid, pa.ArrowTypeError):   # mixed types in a text column
            body = None
        return body if body is not None else page_json(
            {"data": table.records(a, b, rows), **head})

    def _select(self, endpoint: str, params: dict[str, str]
                ) -> tuple[Table, int, int, np.ndarray | None, dict[str, Any]]:
        """The table, its page's rows ``a:b`` (of the selected positions, or None) and
        the page's other keys."""
        table = self.table(endpoint, params)
        lo, hi = 0, len(table)
        if endpoint in _TIMED and table.t is not None:
            lo = int(np.searchsorted(table.t, _ms_param(params, "start", 0), side="left"))
            hi = int(np.searchsorted(table.t, _ms_param(params, "end", 2**62), side="right"))
        rows = None
        if "updated_since" in params:
            if endpoint not in UPDATED:
                raise ApiRequestError("query parameter updated_since applies to "
                                      + ", ".join(UPDATED) + " only", found=endpoint,
                                      fix="drop updated_since", field="updated_since")
            since = _ms_param(params, "updated_since", 0, instant=True)
            col = table.columns[UPDATED[endpoint]]
            rows = lo + np.flatnonzero(np.asarray(col[lo:hi]) >= since)
            lo, hi = 0, len(rows)
        page = _int_param(params, "page", 1, 1, 10**9)
        size = _int_param(params, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        total = max(hi - lo, 0)
        a = min(lo + (page - 1) * size, hi)
        b = min(a + size, hi)
        return table, a, b, rows, {"page": page, "next_page": page + 1 if b < hi else None,
                                   "total_rows": total}


def page_json(page: dict[str, Any]) -> bytes:
    """A page (or any answer) as the server writes it: compact JSON, no NaN."""
    return json.dumps(page, separators=(",", ":"), allow_nan=False).encode()


def _int_param(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiRequestError(f"query parameter {name} must be an integer in [{lo}, {hi}]",
                              found=repr(raw), fix=f"pass {name}={default}", field=name)
    return int(raw)


def _ms_param(params: dict[str, str], name: str, default: int, instant: bool = False) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        ts = pd.Timestamp(raw)
    except ValueError:
        ts = pd.NaT
    if pd.isna(ts):
        what = "a date YYYY-MM-DD or an ISO instant" if instant else "a date YYYY-MM-DD"
        raise ApiRequestError(f"query parameter {name} must be {what}",
                              found=repr(raw), fix=f"e.g. {name}=2024-01-31", field=name)
    return int(epoch_ms(pd.DatetimeIndex([ts]))[0])
