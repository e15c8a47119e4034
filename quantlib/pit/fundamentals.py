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

from quantlib.pit import kernels as K
from quantlib.pit.grid import Grid, make_grid, to_ns
from quantlib.pit.prices import finish

__all__ = ["asof_values", "build_fundamentals", "build_universe", "statement_asof",
           "STATEMENT_FIELDS"]

STATEMENT_FIELDS = ("revenue", "net_income", "total_equity", "total_assets",
                    "shares_outstanding", "operating_cash_flow")


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
    col = grid.assets.index.get_indexer(events["asset_id"].astype(str))
    ok = col >= 0
    known = to_ns(events["known_at"])[ok]
    per = to_ns(events[period])[ok] if period else known
    pos = K.asof_index(col[ok], known, per, grid.decision_times, grid.asset_clock)
    vals = K.take_or_nan(events[value].to_numpy(dtype=np.float64)[ok], pos)
    return vals, K.take_or_nan(per, pos, fill=K.NAT)


def build_fundamentals(statements: pd.DataFrame, assets: pd.DataFrame, *,
                       symbols: pd.DataFrame | None = None, fields=None,
                       markets=("KR", "US", "EU"), start=None, end=None,
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
    field_col = statements["field"].astype(str).to_numpy()
    for f in fields:
        vals, per = asof_values(statements[field_col == f], grid, period="period_end")
        data[f] = vals
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
                   markets=("KR", "US", "EU"), start=None, end=None,
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
