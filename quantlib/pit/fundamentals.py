"""PIT financial statements and universe membership on the global session grid.

:func:`build_fundamentals` shows, on each date and for each asset and field, the latest
fiscal period announced by the decision time, in its latest revision known by then
(:func:`~quantlib.pit.kernels.asof_index`). A late restatement of an older period does
not displace a newer period here; use :func:`statement_asof` for period-indexed access.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from quantlib.markets import DEFAULT_MARKETS, STATEMENT_FIELDS
from quantlib.pit import kernels as K
from quantlib.pit.grid import Grid, make_grid, to_ns
from quantlib.pit.prices import finish

__all__ = ["asof_values", "asof_fields", "build_fundamentals", "build_universe", "statement_asof",
           "STATEMENT_FIELDS"]

# the canonical statement fields, defined once in quantlib/markets.yaml


def asof_values(events: pd.DataFrame, grid: Grid, *, value: str = "value",
                period: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """As-of materialize one value column of an event frame onto ``grid``.

    Parameters
    ----------
    events : DataFrame
        Columns ``asset_id``, ``known_at``, ``value`` and optionally ``period``.
    grid : Grid
        The target grid (:func:`quantlib.pit.grid.make_grid`).
    value : str
        Column to materialize.
    period : str, optional
        Period column (e.g. ``period_end``): the latest period wins, each in its latest
        revision. Without it, the latest known value wins.

    Returns
    -------
    values, periods : ndarray, shape (n_dates, n_assets)
        float64 values (NaN: nothing known yet) and int64 ns periods (``NAT``), including
        the grid's lookback rows.

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["US1"], "market": ["US"], "currency": ["USD"],
    ...     "sector": ["x"], "listed": pd.to_datetime(["2000-01-03"]), "delisted": pd.NaT})
    >>> g = make_grid(a, markets=["US"], start="2024-03-04", end="2024-03-06")
    >>> ev = pd.DataFrame({"asset_id": ["US1"] * 2, "value": [1.0, 2.0],
    ...     "known_at": pd.to_datetime(["2024-03-04 20:00", "2024-03-06 00:00"], utc=True)})
    >>> asof_values(ev, g)[0][g.start_row:, 0].tolist()
    [1.0, 1.0, 2.0]
    """
    vals, per = _materialize(_encode(events, grid, value, period), grid)
    return vals, per if per is not None else np.full(vals.shape, K.NAT, dtype=np.int64)


def _codes(column: pd.Series, labels: pd.Index) -> np.ndarray:
    """Position of each value of ``column`` in ``labels`` (-1 if absent); hashes once."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    where = labels.get_indexer(pd.Index(np.asarray(uniques, dtype=object).astype(str)))
    return np.append(where, -1)[codes]


def _encode(events: pd.DataFrame, grid: Grid, value: str, period: str | None
            ) -> dict[str, np.ndarray]:
    col = _codes(events["asset_id"], grid.assets.index)
    ok = col >= 0
    known = to_ns(events["known_at"])
    return {"asset": col[ok], "known": known[ok],
            "period": to_ns(events[period])[ok] if period else known[ok],
            "value": events[value].to_numpy(dtype=np.float64)[ok]}


def _materialize(enc: dict[str, np.ndarray], grid: Grid, with_period: bool = True
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    cols, fills = [enc["value"]], [np.nan]
    if with_period:
        cols.append(enc["period"])
        fills.append(K.NAT)
    out = K.asof_take(enc["asset"], enc["known"], enc["period"], grid.decision_times,
                      grid.asset_clock, cols, fills)
    return out[0], (out[1] if with_period else None)


def asof_fields(statements: pd.DataFrame, grid: Grid, fields, *, with_period: bool = True
                ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """:func:`asof_values` of each statement field (latest period, latest revision).

    Encodes the frame once, then runs the kernel on each field's contiguous slice.

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["US1"], "market": ["US"], "currency": ["USD"],
    ...     "sector": ["x"], "listed": pd.to_datetime(["2000-01-03"]), "delisted": pd.NaT})
    >>> g = make_grid(a, markets=["US"], start="2024-03-04", end="2024-03-05")
    >>> st = pd.DataFrame({"asset_id": "US1", "field": ["revenue", "net_income"],
    ...     "period_end": pd.to_datetime(["2023-12-31"] * 2), "value": [5.0, 1.0],
    ...     "known_at": pd.to_datetime(["2024-03-04 22:00"] * 2, utc=True)})
    >>> out = asof_fields(st, g, ["revenue", "net_income", "total_assets"])
    >>> [out[f][0][g.start_row:, 0].tolist() for f in out]
    [[nan, 5.0], [nan, 1.0], [nan, nan]]
    """
    enc = _encode(statements, grid, "value", "period_end")
    codes = _codes(statements["field"], pd.Index(list(fields)))[
        _codes(statements["asset_id"], grid.assets.index) >= 0]
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(fields) + 1))
    out = {}
    for i, f in enumerate(fields):
        idx = order[bounds[i]:bounds[i + 1]]
        out[f] = _materialize({k: v[idx] for k, v in enc.items()}, grid, with_period)
    return out


def build_fundamentals(statements: pd.DataFrame, assets: pd.DataFrame, *,
                       symbols: pd.DataFrame | None = None, fields=None,
                       markets=DEFAULT_MARKETS, start=None, end=None,
                       decision_clock: str = "own", offset_minutes: int | None = None
                       ) -> xr.Dataset:
    """PIT statement fields on the global session grid, dims ``(date, asset)``.

    One float64 variable per field plus ``period_end`` (the latest fiscal period shown
    for any field, ``datetime64[ns]``). Each cell holds the latest ``period_end`` among
    the rows with ``known_at`` at or before the decision time, in its latest revision
    known by then.

    Examples
    --------
    Q4 is announced on 03-05 (US close is 21:00 UTC, decision 21:30); a restatement of
    Q3 on 03-06 does not displace it:

    >>> a = pd.DataFrame({"asset_id": ["US1"], "market": ["US"], "currency": ["USD"],
    ...     "sector": ["x"], "listed": pd.to_datetime(["2000-01-03"]), "delisted": pd.NaT})
    >>> st = pd.DataFrame({"asset_id": "US1", "field": "revenue",
    ...     "period_end": pd.to_datetime(["2023-09-30", "2023-12-31", "2023-09-30"]),
    ...     "value": [10.0, 12.0, 11.0],
    ...     "known_at": pd.to_datetime(["2023-11-01 00:00", "2024-03-05 12:00", "2024-03-06 00:00"],
    ...                                utc=True)})
    >>> ds = build_fundamentals(st, a, markets=["US"], start="2024-03-04", end="2024-03-06")
    >>> ds["revenue"].values[:, 0].tolist()
    [10.0, 12.0, 12.0]
    """
    grid = make_grid(assets, symbols, markets=markets, start=start, end=end,
                     decision_clock=decision_clock, offset_minutes=offset_minutes)
    fields = tuple(fields) if fields is not None else STATEMENT_FIELDS
    data: dict[str, np.ndarray] = {}
    latest = np.full((len(grid.dates), len(grid.assets)), K.NAT, dtype=np.int64)
    for f, (vals, per) in asof_fields(statements, grid, fields).items():
        data[f] = vals
        if per is not None:
            np.maximum(latest, per, out=latest)
    ds = finish(data, grid, decision_clock=decision_clock)
    ds["period_end"] = (("date", "asset"), latest[grid.start_row:].view("datetime64[ns]"))
    return ds


def statement_asof(statements: pd.DataFrame, at, *, asset: str | None = None,
                   field: str | None = None) -> pd.DataFrame:
    """Period-indexed view: every period's latest revision known at instant ``at`` (UTC).

    Examples
    --------
    >>> st = pd.DataFrame({"asset_id": "A", "field": "revenue",
    ...     "period_end": pd.to_datetime(["2023-09-30", "2023-12-31", "2023-09-30"]),
    ...     "value": [10.0, 12.0, 11.0],
    ...     "known_at": pd.to_datetime(["2023-11-01", "2024-03-05", "2024-03-06"], utc=True)})
    >>> statement_asof(st, "2024-03-07T00:00Z")["value"].tolist()
    [11.0, 12.0]
    """
    at_ts = pd.Timestamp(at)
    at_ts = at_ts.tz_localize("UTC") if at_ts.tzinfo is None else at_ts.tz_convert("UTC")
    s = statements[pd.DatetimeIndex(statements["known_at"]) <= at_ts]
    if asset is not None:
        s = s[s["asset_id"] == asset]
    if field is not None:
        s = s[s["field"] == field]
    s = s.sort_values(["asset_id", "field", "period_end", "known_at"])
    return s.drop_duplicates(["asset_id", "field", "period_end"], keep="last").reset_index(
        drop=True)


def build_universe(assets: pd.DataFrame, *, symbols: pd.DataFrame | None = None,
                   markets=DEFAULT_MARKETS, start=None, end=None,
                   decision_clock: str = "own", offset_minutes: int | None = None
                   ) -> xr.Dataset:
    """PIT universe membership: ``in_universe`` = listed on or before d, not yet delisted.

    ``delisted`` is the asset's last trading day (it is in the universe that day).

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["A", "B"], "market": "US", "currency": "USD",
    ...     "sector": "x", "listed": pd.to_datetime(["2024-03-05", "2000-01-03"]),
    ...     "delisted": pd.to_datetime([None, "2024-03-05"])})
    >>> u = build_universe(a, markets=["US"], start="2024-03-04", end="2024-03-06")
    >>> u["in_universe"].values.astype(int).tolist()
    [[0, 1], [1, 1], [1, 0]]
    """
    grid = make_grid(assets, symbols, markets=markets, start=start, end=end,
                     decision_clock=decision_clock, offset_minutes=offset_minutes)
    mask = K.listed_mask(grid.dates.to_numpy().view("int64"),
                         to_ns(grid.assets["listed"]), to_ns(grid.assets["delisted"]))
    return finish({"in_universe": mask}, grid, decision_clock=decision_clock)
