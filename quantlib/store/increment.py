"""Incremental writes: merge a delta of bars into the stored panels by region.

A delta commit (:meth:`quantlib.store.CuratedStore.commit_delta`) carries only the bars a
refresh fetched (new sessions, corrected bars), not the market's history. For each
market panel, step by step:

1. read the stored coordinates (``date``, ``asset``), never the whole panel;
2. the new date axis is the stored one plus the market's sessions after its last date
   up to the last new bar (plus any new bar date off the calendar); the new asset axis
   is the stored one (in stored order) with the market's new assets appended at its
   end (:mod:`quantlib.store.assetgrid`: no stored column moves; readers present the
   sorted order);
3. the first affected row ``r0`` is the earliest of: a delivered bar, an ex date of a
   corporate action that was added, changed or removed, the first appended session;
4. rows ``[r0, end)`` of every column are recomputed one date chunk at a time: the
   stored values, the delivered bars laid over them (a corrected bar replaces the
   stored one: the last delivery wins), ``split``/``dividend`` rebuilt from the
   actions, and ``returns`` seeded with the last stored close before ``r0`` of each
   asset (continuity); a new column's rows before ``r0`` are never written and read as
   the arrays' fill values, the values of a column without bars;
5. the arrays are resized along ``date`` (append: each new date gets its own 1-date
   chunk, :mod:`quantlib.store.dategrid`, so no stored chunk is rewritten) and
   ``asset``, and only that region is written: a listing costs its own cells in the
   rows written anyway, whatever the history and wherever its id sorts.

Cases the region path cannot express (a bar before the panel's first date, an
off-calendar date inside the stored range, a stored asset missing from the new assets
table, a new id longer than the stored width, a new asset in a panel stored before
the fill values of :mod:`quantlib.store.assetgrid`) fall back to rewriting that market's
panel from its stored bars plus the delta; the fallback is counted
(``rows["rewrites"]``). Either way the panel equals, cell for cell, the panel of a full
build of the same bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from quantlib.store import assetgrid, dategrid
from quantlib.store.panels import (
    NAT_INT,
    PRICE_VARS,
    actions_grid,
    market_dates,
    ns_values,
    panel_to_prices,
    previous_valid,
    prices_to_panels,
)

__all__ = ["write_prices_delta", "write_fx_delta", "last_closes", "upsert_bars",
           "last_stored_date", "DeltaActions"]

_SEED_WINDOW = 64


def upsert_bars(stored: pd.DataFrame, delta: pd.DataFrame) -> pd.DataFrame:
    """Stored bars with the delta's bars laid over them (same ``(asset_id, date)``: the
    delta's row wins).

    Examples
    --------
    >>> t = pd.Timestamp
    >>> old = pd.DataFrame({"asset_id": ["A", "A"], "date": [t("2024-01-02"), t("2024-01-03")],
    ...                     "close": [1.0, 2.0]})
    >>> new = pd.DataFrame({"asset_id": ["A"], "date": [t("2024-01-03")], "close": [2.5]})
    >>> upsert_bars(old, new)["close"].tolist()
    [1.0, 2.5]
    """
    both = pd.concat([stored, delta], ignore_index=True)
    both = both.drop_duplicates(["asset_id", "date"], keep="last")
    return both.sort_values(["asset_id", "date"], kind="stable").reset_index(drop=True)


def last_closes(close: zarr.Array, before: int, cols: np.ndarray) -> np.ndarray:
    """Last non-NaN ``close`` strictly before row ``before`` of each column in ``cols``.

    Reads backwards in growing windows and stops as soon as every column has one (or
    the first row is reached), so the cost follows the gap, not the history; each
    window reads only the columns still without one (the chunks holding them: a column
    with no earlier close, an asset listed in the region, does not drag the whole
    width back to the first row).
    """
    seed = np.full(len(cols), np.nan)
    todo = np.ones(len(cols), dtype=bool)
    hi, width = before, _SEED_WINDOW
    while hi > 0 and todo.any() and len(cols):
        lo = max(0, hi - width)
        idx = np.flatnonzero(todo)
        block = np.asarray(close.get_orthogonal_selection((slice(lo, hi), cols[idx])))
        valid = ~np.isnan(block)
        has = valid.any(axis=0)
        if has.any():
            last = block.shape[0] - 1 - np.argmax(valid[::-1], axis=0)
            seed[idx[has]] = block[last[has], np.flatnonzero(has)]
            todo[idx[has]] = False
        hi, width = lo, width * 4
    return seed


def _live(close: zarr.Array, rows: tuple[int, int], stored_cols: np.ndarray,
          bar_cols: np.ndarray, have: np.ndarray) -> np.ndarray:
    """Which of the stored columns ``have`` (at ``stored_cols``) need a seed close for
    a region from row ``rows[0]``: those with a delta bar (``bar_cols``) or a stored
    close in rows ``[rows[0], rows[1])``. A column with neither has no return to
    compute (its closes are NaN), so an asset delisted years ago is not searched back
    to the first row of the history (that search grew with the history)."""
    live = np.isin(have, bar_cols)
    r0, old_n = rows
    if r0 < old_n and len(have):
        lo, hi = int(stored_cols.min()), int(stored_cols.max()) + 1
        block = np.asarray(close[r0:old_n, lo:hi])[:, stored_cols - lo]
        live |= ~np.isnan(block).all(axis=0)
    return live


class _Fallback(Exception):
    """The delta cannot be written as a region: rewrite the market's panel."""


@dataclass(frozen=True)
class DeltaActions:
    """The corporate actions a delta's price regions need, read no further back than
    they must.

    ``after(t)`` returns the actions of the new version with an ex date after ``t``
    (``None``: all of them, for a panel rewritten whole): a region from row ``r0`` on
    needs only those after the session before ``r0``. ``changed`` holds the actions
    added, changed or removed since the base version (``asset_id, ex_date, kind,
    value``): they move ``r0`` back to their ex date.
    """

    after: Callable[[np.datetime64 | None], pd.DataFrame]
    changed: pd.DataFrame

    @classmethod
    def of_table(cls, actions: pd.DataFrame, stored: pd.DataFrame | None = None,
                 added: int | None = None) -> DeltaActions:
        """Actions held whole in memory: the new version's table; what changed is the
        diff with the ``stored`` table, or (``added``) its last ``added`` rows when the
        new table is the stored one plus rows appended."""
        changed = actions.iloc[len(actions) - added:] if added is not None else \
            _diff_actions(actions, stored if stored is not None else actions.iloc[:0])

        def after(t: np.datetime64 | None) -> pd.DataFrame:
            return actions if t is None else actions[ns_values(actions["ex_date"]) > t]
        return cls(after, changed.loc[:, list(_ACTION_KEY)].reset_index(drop=True))


_ACTION_KEY = ("asset_id", "ex_date", "kind", "value")


def write_prices_delta(session: icechunk.Session, prices: pd.DataFrame,
                       assets: pd.DataFrame, actions: DeltaActions,
                       write_panel: Any) -> dict[str, int]:
    """Merge delta bars into every market panel they touch (see the module docstring).

    ``assets`` is the full table of the new version; ``actions`` the corporate actions
    the regions need (:class:`DeltaActions`: each market reads only those after the
    session before its first rewritten row). ``write_panel(session, group, ds)`` writes
    a whole panel (new markets and fallbacks).

    Returns rows written per kind: ``region_cells`` (cells rewritten), ``appended_dates``,
    ``rewrites`` (markets rewritten whole).
    """
    root = zarr.open_group(session.store, mode="a")
    market_of = assets.drop_duplicates("asset_id", keep="last").set_index("asset_id")["market"]
    bar_market = market_of.reindex(prices["asset_id"].astype(str)).to_numpy()
    touched = set(pd.unique(bar_market[pd.notna(bar_market)]).astype(str))
    changed = actions.changed.assign(
        market=market_of.reindex(actions.changed["asset_id"].astype(str)).to_numpy())
    changed = changed[changed["market"].notna()]
    touched |= set(changed["market"].astype(str))
    stats = {"region_cells": 0, "appended_dates": 0, "rewrites": 0}
    for market in sorted(touched):
        bars = prices[bar_market == market]
        ids = pd.Index(sorted(market_of.index[market_of.to_numpy() == market].astype(str)))
        group = f"prices/{market}"
        try:
            if "prices" not in root or market not in cast(zarr.Group, root["prices"]):
                raise _Fallback
            _write_region(cast(zarr.Group, root[group]), market, bars, ids, actions,
                          changed[changed["market"] == market], stats)
        except _Fallback:
            stored = _stored_bars(session, group)
            merged = upsert_bars(stored, bars.loc[:, stored.columns]) if len(stored) else bars
            panel = prices_to_panels(merged, assets[assets["asset_id"].isin(ids)],
                                     _of_assets(actions.after(None), ids))[market]
            write_panel(session, group, panel)
            stats["rewrites"] += 1
    return stats


def _of_assets(actions: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """The rows of ``actions`` of the assets ``ids``."""
    return actions[np.isin(actions["asset_id"].to_numpy(dtype=str), ids.to_numpy(dtype=str))]


def _stored_bars(session: icechunk.Session, group: str) -> pd.DataFrame:
    if group not in zarr.open_group(session.store, mode="r"):
        return pd.DataFrame()
    ds = xr.open_zarr(session.store, group=group, consolidated=False, zarr_format=3)
    return panel_to_prices(ds.load())


def _diff_actions(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """Actions added, changed or removed between two versions."""
    cols = list(_ACTION_KEY)
    a = new.loc[:, cols].astype({"value": "float64"})
    b = old.loc[:, cols].astype({"value": "float64"}) if len(old) else a.iloc[:0]
    both = pd.concat([a.assign(_v=1), b.assign(_v=2)], ignore_index=True)
    return both.drop_duplicates(cols, keep=False).loc[:, cols].reset_index(drop=True)


def _decode_dates(g: zarr.Group) -> np.ndarray:
    arr = cast(zarr.Array, g["date"])
    units, calendar = _time_units(arr)
    return np.asarray(xr.coding.times.decode_cf_datetime(np.asarray(arr[:]), units, calendar),
                      dtype="datetime64[ns]")


def last_stored_date(g: zarr.Group) -> pd.Timestamp | None:
    """The last value of a panel group's ``date`` coordinate (``None`` if it has none).

    Reads one element of ``date`` and no other array: what a refresh needs to place its
    fetch window, at the same cost whatever the history or the width.

    Examples
    --------
    >>> root = zarr.group(store=zarr.storage.MemoryStore())
    >>> d = root.create_array("date", data=np.array([0, 1, 4]), attributes={
    ...     "units": "days since 2024-01-01"})
    >>> last_stored_date(root)
    Timestamp('2024-01-05 00:00:00')
    """
    arr = cast(zarr.Array, g["date"])
    n = int(arr.shape[0])
    if n == 0:
        return None
    units, calendar = _time_units(arr)
    last = xr.coding.times.decode_cf_datetime(np.asarray(arr[n - 1:n]), units, calendar)
    return pd.Timestamp(np.asarray(last, dtype="datetime64[ns]")[0])


def _time_units(arr: zarr.Array) -> tuple[str, str | None]:
    """CF ``units`` and ``calendar`` of a stored time coordinate."""
    calendar = arr.attrs.get("calendar")
    return str(arr.attrs["units"]), None if calendar is None else str(calendar)


def _new_axes(g: zarr.Group, market: str, bar_dates: np.ndarray, ids: pd.Index
              ) -> tuple[np.ndarray, pd.Index, int, int]:
    """(new dates, new asset axis in stored order, stored rows, stored columns), or
    :class:`_Fallback` where a region write cannot express the delta: a stored asset
    gone from the assets table, a new id longer than the stored width or in a panel
    without the no-bar fill values, a bar before the panel's first date or off the
    calendar inside the stored range, an empty panel."""
    dates = _decode_dates(g)
    asset = cast(zarr.Array, g["asset"])
    old_ids = assetgrid.stored_ids(g)
    old_n = len(dates)
    stored = set(old_ids.tolist())
    if not stored.issubset(ids.tolist()):
        raise _Fallback
    new = sorted(set(ids.tolist()) - stored)   # (Python sets: pandas' Arrow isin is slow)
    if len(new) and (max(len(s) for s in new) > asset.dtype.itemsize // 4
                     or not assetgrid.has_no_bar_fills(g)):
        raise _Fallback
    if len(bar_dates) and old_n:
        if bar_dates.min() < dates[0]:
            raise _Fallback
        inside = bar_dates[bar_dates <= dates[-1]]
        if len(inside) and not np.isin(inside, dates).all():
            raise _Fallback
    if old_n == 0:
        raise _Fallback
    later = bar_dates[bar_dates > dates[-1]]
    if len(later):
        tail = market_dates(market, np.concatenate([dates[-1:], later])).to_numpy()
        dates = np.concatenate([dates, tail[tail > dates[-1]]])
    return dates, pd.Index(np.concatenate([old_ids, np.asarray(new, dtype=str)])), old_n, \
        len(old_ids)


def _write_region(g: zarr.Group, market: str, bars: pd.DataFrame, ids: pd.Index,
                  delta_actions: DeltaActions, changed: pd.DataFrame, stats: dict[str, int]
                  ) -> None:
    """Rows ``[r0, end)`` of every column; new assets appended at the end of the asset
    axis (no stored column moves, see :mod:`quantlib.store.assetgrid`). Of the
    actions, only the market's with an ex date after the session before ``r0`` are
    read."""
    bar_dates = ns_values(bars["date"])
    dates, phys, old_n, old_m = _new_axes(g, market, bar_dates, ids)
    n, m = len(dates), len(phys)
    starts = [old_n] if n > old_n else []
    if len(bars):
        starts.append(int(np.searchsorted(dates, bar_dates.min())))
    if len(changed):
        starts.append(int(np.searchsorted(dates, ns_values(changed["ex_date"]).min())))
    r0 = max(0, min(starts, default=n))
    actions = _of_assets(delta_actions.after(dates[r0 - 1] if r0 > 0 else None), ids) \
        if r0 < n else delta_actions.changed.iloc[:0]
    _resize(g, dates, old_n, phys, old_m)
    col = phys.get_indexer(bars["asset_id"].astype(str))
    row = np.searchsorted(dates, bar_dates)
    src = np.where(np.arange(m) < old_m, np.arange(m), -1)
    if r0 < n:
        _write_block(g, (dates, phys, src, old_n, row, col, bars, actions), (r0, 0, m), stats)
    stats["appended_dates"] += n - old_n


def _resize(g: zarr.Group, dates: np.ndarray, old_n: int, ids: pd.Index, old_m: int, *,
            sealed: bool = False) -> None:
    """Grow a panel group to ``dates`` x ``ids`` (the first ``old_n`` dates and
    ``old_m`` ids stored already): metadata, plus the new coordinate values. New dates
    get 1-date chunks, or (``sealed``) the grid of a panel written whole
    (:func:`~quantlib.store.dategrid.sealed_edges`; the stored chunks from the first
    changed edge on are rewritten: the partly filled last block)."""
    n, m = len(dates), len(ids)
    if n == old_n and m == old_m:
        return
    for name in g.array_keys():
        arr = cast(zarr.Array, g[name])
        if arr.ndim == 2:
            if sealed:
                dategrid.retile(arr, dategrid.sealed_edges(n), (n, m))
            else:
                dategrid.resize(arr, (n, m))
    date = cast(zarr.Array, g["date"])
    if n > old_n:
        units, calendar = _time_units(date)
        num, _, _ = xr.coding.times.encode_cf_datetime(dates[old_n:], units, calendar,
                                                      dtype=date.dtype)
        date = dategrid.retile(date, [n], (n,)) if sealed else dategrid.resize(date, (n,))
        date[old_n:] = np.asarray(num, dtype=date.dtype)
    if m > old_m:
        asset = cast(zarr.Array, g["asset"])
        asset.resize((m,))
        asset[old_m:] = np.asarray(ids[old_m:], dtype=asset.dtype)


_Context = tuple[np.ndarray, pd.Index, np.ndarray, int, np.ndarray, np.ndarray,
                 pd.DataFrame, pd.DataFrame]


def _write_block(g: zarr.Group, ctx: _Context, block: tuple[int, int, int],
                 stats: dict[str, int]) -> None:
    """Recompute and write rows ``[r0, end)`` x columns ``[c0, c1)`` (``block``) of the
    resized panel, one date chunk of rows at a time (memory bounded by a chunk row).

    ``ctx``: new dates, new ids, stored column of each new column (-1: none), stored
    rows, each delta bar's row and column, the bars, the market's actions. A stored
    column's values are read at its stored position, rows before the slab written."""
    dates, ids, src, old_n, row, col, bars, actions = ctx
    r0, c0, c1 = block
    cols = src[c0:c1]
    have = np.flatnonzero(cols >= 0)
    lo_s = int(cols[have].min()) if len(have) else 0
    hi_s = int(cols[have].max()) + 1 if len(have) else 0
    seed = np.full(c1 - c0, np.nan)
    if r0 > 0 and len(have):
        need = have[_live(cast(zarr.Array, g["close"]), (r0, old_n), cols[have],
                          col[(col >= c0) & (col < c1)] - c0, have)]
        seed[need] = last_closes(cast(zarr.Array, g["close"]), r0, cols[need])
    edges = np.cumsum([0, *dategrid.date_edges(cast(zarr.Array, g["close"]))])
    cuts = [r0, *[int(e) for e in edges if r0 < e < len(dates)], len(dates)]
    lo, hi = (min(c0, lo_s), max(c1, hi_s)) if len(have) else (c0, c1)
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        grids: dict[str, np.ndarray] = {}
        stored: dict[str, np.ndarray] = {}   # rows [a, min(b, old_n)) x [c0, c1) as stored
        for var in (*PRICE_VARS, "known_at", "returns", "split", "dividend"):
            if a < old_n:
                span = np.asarray(cast(zarr.Array, g[var])[a:min(b, old_n), lo:hi])
                stored[var] = span[:, c0 - lo:c1 - lo]
            if var in ("returns", "split", "dividend"):
                continue
            fill = NAT_INT if var == "known_at" else np.nan
            grid = np.full((b - a, c1 - c0), fill,
                           dtype="int64" if var == "known_at" else "float64")
            if a < old_n and len(have):
                grid[:span.shape[0], have] = span[:, cols[have] - lo]
            grids[var] = grid
        sel = (row >= a) & (row < b) & (col >= c0) & (col < c1)
        r, c = row[sel] - a, col[sel] - c0
        for var in PRICE_VARS:
            grids[var][r, c] = bars[var].to_numpy(dtype="float64")[sel]
        grids["known_at"][r, c] = ns_values(bars["known_at"]).view("int64")[sel]
        acts = actions
        if a > 0 and len(actions):
            acts = actions[ns_values(actions["ex_date"]) > dates[a - 1]]
        split, dividend = actions_grid(acts, pd.DatetimeIndex(dates[a:b]), ids[c0:c1])
        close = grids["close"]
        prev = previous_valid(np.vstack([seed[None, :], close]))[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            grids["returns"] = split * (close + dividend) / prev - 1.0
        seed = previous_valid(np.vstack([seed[None, :], close, np.zeros((1, c1 - c0))]))[-1]
        grids["split"], grids["dividend"] = split, dividend
        stats["region_cells"] += max(
            _write_changed(cast(zarr.Array, g[var]), grid, (a, c0), stored.get(var))
            for var, grid in grids.items())


def _write_changed(arr: zarr.Array, grid: np.ndarray, at: tuple[int, int],
                   stored: np.ndarray | None) -> int:
    """Write ``grid`` at ``at`` (row, column) of ``arr``, chunk by chunk along the asset
    axis, skipping every chunk whose stored cells (``stored``: the grid's first rows as
    stored, ``None``: none stored) already hold the grid's values (NaN equal to NaN):
    a look-back window that re-delivers unchanged bars rewrites no chunk, and a
    correction rewrites only its asset block. The rows past ``stored`` are new (a chunk
    holding them is written). Returns the cells written."""
    a, c0 = at
    k = 0 if stored is None else stored.shape[0]
    if stored is not None and k == grid.shape[0]:
        same = (grid == stored) | (np.isnan(grid) & np.isnan(stored)) \
            if grid.dtype.kind == "f" else grid == stored
        changed = ~same.all(axis=0)
    else:
        changed = np.ones(grid.shape[1], dtype=bool)
    edges = np.cumsum([0, *dategrid.chunk_edges(arr)[1]])
    cuts = [c0, *[int(e) for e in edges if c0 < e < c0 + grid.shape[1]], c0 + grid.shape[1]]
    cells = 0
    for s, e in zip(cuts[:-1], cuts[1:], strict=True):
        if changed[s - c0:e - c0].any():
            arr[a:a + grid.shape[0], s:e] = grid[:, s - c0:e - c0]
            cells += grid.shape[0] * (e - s)
    return cells


def write_fx_delta(session: icechunk.Session, fx: pd.DataFrame, *, sealed: bool = False
                   ) -> bool:
    """Lay delta FX rates over the stored ``fx`` panel by region; ``False`` (nothing
    written) when the region path cannot express it (no panel yet, a new currency, a
    date before the last stored one that the panel lacks): rewrite the panel then.

    New dates are appended (1-date chunks, :mod:`quantlib.store.dategrid`; ``sealed``,
    a catch-up's many dates: the grid of a panel written whole); rows from
    the first delivered date on are rewritten with the delivered rates laid over them
    (the last delivery of a ``(date, currency)`` wins), so the panel equals
    :func:`~quantlib.store.panels.fx_to_panel` of the stored rows plus the delta.
    """
    root = zarr.open_group(session.store, mode="a")
    if "fx" not in root:
        return False
    g = cast(zarr.Group, root["fx"])
    dates = _decode_dates(g)
    currencies = pd.Index(np.asarray(cast(zarr.Array, g["currency"])[:]).astype(str))
    fx = fx.drop_duplicates(["date", "currency"], keep="last")
    day = ns_values(fx["date"])
    col = currencies.get_indexer(fx["currency"].astype(str))
    inside = day <= dates[-1] if len(dates) else np.zeros(len(day), dtype=bool)
    if not len(dates) or (col < 0).any() or not np.isin(day[inside], dates).all():
        return False
    new = np.concatenate([dates, np.unique(day[~inside])])
    n_old, n, m = len(dates), len(new), len(currencies)
    _resize(g, new, n_old, currencies, m, sealed=sealed)
    row = np.searchsorted(new, day)
    r0 = int(row.min())
    known = ns_values(fx["known_at"]).view("int64")
    for var, values, fill in (("rate", fx["rate"].to_numpy(dtype="float64"), np.nan),
                              ("known_at", known, NAT_INT)):
        arr = cast(zarr.Array, g[var])
        grid = np.full((n - r0, m), fill, dtype=arr.dtype)
        grid[:max(0, n_old - r0)] = np.asarray(arr[r0:n_old])
        grid[row - r0, col] = values
        arr[r0:] = grid
    return True
