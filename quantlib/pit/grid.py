"""The labelled grid every PIT panel sits on: global dates, decision clocks, asset coords.

A panel for markets ``M`` between ``start`` and ``end`` has one row per date of
:func:`quantlib.calendars.global_sessions` and one column per asset of ``M`` that was
listed at some point in ``[start, end]``. Each asset is observed on one column of a
``(date x clock)`` matrix of decision instants: its own market's clock (``"own"``) or
one market clock shared by all assets (``"KR"``, ``"US"``, ``"EU"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantlib import calendars
from quantlib.config import load_config
from quantlib.errors import CatalogError
from quantlib.markets import DEFAULT_MARKETS

__all__ = ["Grid", "make_grid", "to_ns", "DEFAULT_LOOKBACK"]

#: calendar days of extra grid kept before ``start`` while building, so a bar or an FX
#: rate known just before ``start`` lands off-panel instead of on the first row
DEFAULT_LOOKBACK = pd.Timedelta(days=14)


def to_ns(values) -> np.ndarray:
    """Datetimes (naive, or aware -> UTC) as int64 ns; NaT -> ``iinfo(int64).min``.

    Examples
    --------
    >>> to_ns(pd.Series(pd.to_datetime(["1970-01-01 00:00:01", None], utc=True)))
    array([             1000000000, -9223372036854775808])
    """
    if isinstance(values, pd.Series):
        values = values.array
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").to_numpy().view("int64")


@dataclass(frozen=True)
class Grid:
    """Dates, assets and decision instants of one PIT panel.

    Attributes
    ----------
    dates : pandas.DatetimeIndex
        Global session dates, including ``lookback`` rows before ``start``.
    start_row : int
        First row at or after ``start``; builders drop the rows before it.
    assets : pandas.DataFrame
        One row per asset (index ``asset_id``): ``market``, ``currency``, ``sector``,
        ``symbol``, ``listed``, ``delisted``.
    decision_times : numpy.ndarray
        int64 ns, shape ``(n_dates, n_clocks)``.
    clocks : tuple of str
        Market whose clock each column of ``decision_times`` is.
    asset_clock : numpy.ndarray
        Column of ``decision_times`` per asset.
    """

    dates: pd.DatetimeIndex
    start_row: int
    assets: pd.DataFrame
    decision_times: np.ndarray
    clocks: tuple[str, ...]
    asset_clock: np.ndarray
    markets: tuple[str, ...]
    decision_clock: str

    def clock_of(self, market: str) -> int:
        """Column of ``decision_times`` used by assets of ``market``."""
        return self.clocks.index(market) if self.decision_clock == "own" else 0


def _check_params(markets, start, end, decision_clock) -> tuple[tuple[str, ...], pd.Timestamp,
                                                                   pd.Timestamp]:
    if isinstance(markets, str):
        markets = [markets]
    markets = tuple(markets)
    for m in markets:
        if m not in calendars.MARKETS:
            raise CatalogError(f"markets must be a list of {', '.join(calendars.MARKETS)}",
                               found=repr(m), fix="pass e.g. markets=['KR', 'US']", field="markets")
    if not markets:
        raise CatalogError("markets must name at least one market", found="[]",
                           fix="pass e.g. markets=['KR', 'US', 'EU']", field="markets")
    if decision_clock not in calendars.CLOCKS:
        raise CatalogError(f"decision_clock must be one of {', '.join(calendars.CLOCKS)}",
                           found=repr(decision_clock), fix="pass decision_clock='own' (default)"
                           " or a market code", field="decision_clock")
    try:
        start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    except (ValueError, TypeError) as exc:
        raise CatalogError("start and end must be dates", found=f"start={start!r}, end={end!r}",
                           fix="pass ISO dates like '2020-01-31'", field="start/end") from exc
    if start_ts.tzinfo is not None or end_ts.tzinfo is not None:
        raise CatalogError("start and end must be dates without a time zone",
                           found=f"start={start!r}, end={end!r}",
                           fix="pass ISO dates like '2020-01-31'", field="start/end")
    if start_ts > end_ts:
        raise CatalogError("start must be on or before end", found=f"start={start_ts.date()}, "
                           f"end={end_ts.date()}", fix="swap them or widen the range",
                           field="start")
    return markets, start_ts.normalize(), end_ts.normalize()


def latest_symbols(symbols: pd.DataFrame | None, asset_ids: pd.Index,
                   end: pd.Timestamp) -> np.ndarray:
    """Latest ticker of each asset valid on or before ``end`` (``""`` when unknown)."""
    out = pd.Series("", index=asset_ids, dtype=object)
    if symbols is None or len(symbols) == 0:
        return out.to_numpy(dtype=str)
    s = symbols[pd.DatetimeIndex(symbols["valid_from"]) <= end]
    s = s.sort_values(["asset_id", "valid_from"]).drop_duplicates("asset_id", keep="last")
    s = s.set_index("asset_id")["symbol"].astype(str)
    out.update(s.reindex(asset_ids).dropna())
    return out.to_numpy(dtype=str)


def make_grid(assets: pd.DataFrame, symbols: pd.DataFrame | None = None, *,
              markets=DEFAULT_MARKETS, start=None, end=None, decision_clock: str = "own",
              offset_minutes: int | None = None,
              lookback: pd.Timedelta = DEFAULT_LOOKBACK) -> Grid:
    """Build the grid of a PIT panel from the canonical ``assets`` (and ``symbols``) frame.

    ``start``/``end`` default to the earliest listing and the latest known date of the
    assets frame (its latest ``known_at``).

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["US1", "KR1"], "market": ["US", "KR"],
    ...     "currency": ["USD", "KRW"], "sector": ["Energy", "Energy"],
    ...     "listed": pd.to_datetime(["2000-01-01", "2000-01-01"]),
    ...     "delisted": pd.to_datetime([None, None])})
    >>> g = make_grid(a, markets=["KR", "US"], start="2024-03-04", end="2024-03-05")
    >>> list(g.assets.index), g.clocks, g.asset_clock.tolist()
    (['KR1', 'US1'], ('KR', 'US'), [0, 1])
    >>> [str(d.date()) for d in g.dates[g.start_row:]]
    ['2024-03-04', '2024-03-05']
    """
    if offset_minutes is None:
        offset_minutes = int(load_config()["decision_offset_minutes"])
    if start is None:
        start = pd.DatetimeIndex(assets["listed"]).min()
    if end is None:
        end = pd.Timestamp.now("UTC").tz_localize(None) if "known_at" not in assets else \
            pd.DatetimeIndex(assets["known_at"]).max().tz_convert("UTC").tz_localize(None)
    markets, start, end = _check_params(markets, start, end, decision_clock)
    dates = calendars.global_sessions(list(markets), start - lookback, end)
    start_row = int(np.searchsorted(dates.to_numpy(), start.to_datetime64(), side="left"))
    clocks = markets if decision_clock == "own" else (decision_clock,)
    dec = np.column_stack([to_ns(calendars.decision_time(dates, c, offset_minutes))
                           for c in clocks]) if len(dates) else np.zeros((0, len(clocks)),
                                                                         dtype=np.int64)
    sel = _assets_in_range(assets, markets, start, end)
    coords = sel[["market", "currency", "sector", "listed", "delisted"]].copy()
    coords["symbol"] = latest_symbols(symbols, coords.index, end)
    asset_clock = np.array([clocks.index(m) if decision_clock == "own" else 0
                            for m in coords["market"]], dtype=np.intp)
    return Grid(dates, start_row, coords, dec, clocks, asset_clock, markets, decision_clock)


def _assets_in_range(assets: pd.DataFrame, markets: tuple[str, ...], start: pd.Timestamp,
                     end: pd.Timestamp) -> pd.DataFrame:
    """Assets of ``markets`` listed at some point in ``[start, end]``, by market then id."""
    a = assets.drop_duplicates("asset_id", keep="last")
    listed = pd.DatetimeIndex(a["listed"])
    delisted = pd.DatetimeIndex(a["delisted"])
    keep = a["market"].isin(markets).to_numpy() & (listed <= end) & \
        (delisted.isna() | (delisted >= start))
    a = a[keep].copy()
    a["listed"], a["delisted"] = listed[keep], delisted[keep]
    a["_m"] = a["market"].map({m: i for i, m in enumerate(markets)})
    a = a.sort_values(["_m", "asset_id"]).set_index("asset_id")
    a.index = a.index.astype(str)
    return a.drop(columns="_m")
