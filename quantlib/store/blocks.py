"""Block writes of a large delta: a catch-up's dates in whole blocks of the date grid.

A daily delta appends each new date as its own 1-date chunk (:mod:`quantlib.store.
increment`, compacted later). A catch-up months or years behind appends hundreds of
dates: it writes them as the first build does, in whole blocks of the store's date
grid, by dask tasks in parallel. For each market panel with delta bars, step by step:

1. **plan** (driver, reads coordinates only): the new axes as a region write would
   have them (stored dates + the market's sessions up to the last new bar; new assets
   appended at the end of the asset axis, :mod:`quantlib.store.assetgrid`), and the
   first affected row ``r0`` (a delivered bar, a changed action's ex date, the first
   new date). The rewrite starts at ``R``: the stored block holding ``r0`` when ``r0``
   lies in the leading full blocks, else the first row after them (the partly filled
   last stored block, sealed in chunks of <= 16 dates, :func:`~quantlib.store.
   dategrid.sealed_edges`, is rewritten so the grid becomes that of a full build). A
   panel the region path could not express either (:func:`~quantlib.store.increment.
   write_prices_delta`'s fallbacks) is left to that path;
2. **grid**: the arrays get the date edges ``[BLOCK] * (R / BLOCK) +
   sealed_edges(n - R)`` (a full build's grid for ``n`` dates) and the new shape; no
   stored chunk before ``R`` is touched, chunk keys past the new grid are deleted;
3. **returns seeds** (tasks): each chunk's last valid close per column of the
   merged panel (stored rows with the delta's bars laid over them), folded in date
   order from the stored close before ``R``, give each chunk the close its first
   return starts from: the chunks are then independent;
4. **write** (tasks): one task per block of the new grid from ``R`` (the partly filled
   last block: one task for its small chunks) computes every variable of it (stored values read from the commit's parent snapshot, delta bars
   from ``source.read``, split/dividend from the actions, returns from the seed) and
   writes it into a forked session; the forks are merged into the commit's session.

The panel equals, cell for cell, the panel of a full build of the same bars (and that
of the region path); nothing is visible before the caller's ONE commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from quantlib.errors import StoreError
from quantlib.store import dategrid
from quantlib.store.increment import (
    DeltaActions,
    _Fallback,
    _new_axes,
    _of_assets,
    _time_units,
    last_closes,
)
from quantlib.store.panels import NAT_INT, PRICE_VARS, actions_grid, ns_values, previous_valid

__all__ = ["BlockBars", "BarArrays", "BlockPlan", "plan_blocks", "write_blocks"]

_VARS = (*PRICE_VARS, "split", "dividend", "returns", "known_at")


@dataclass
class BarArrays:
    """Delta bars as arrays: date (datetime64[ns]), panel column, values, known_at
    (int64 ns). Among bars of the same (column, date), the later one wins."""

    dates: np.ndarray
    col: np.ndarray
    values: dict[str, np.ndarray]
    known: np.ndarray


class BlockBars(Protocol):
    """A market's delta bars that chunk tasks read by date range (picklable)."""

    #: first and last bar date (datetime64[ns]), number of bars
    first: np.datetime64
    last: np.datetime64
    rows: int

    #: the same bars as frames, one per call (the region path's parts, for a panel the
    #: block path cannot express)
    parts: Sequence[Callable[[], pd.DataFrame]]

    def read(self, lo: np.datetime64, hi: np.datetime64, ids: pd.Index) -> BarArrays:
        """The bars dated ``lo..hi`` (inclusive), columns looked up in ``ids`` (an
        asset not in ``ids`` is an error)."""
        ...


@dataclass
class BlockPlan:
    """What the tasks of one market need (see the module docstring)."""

    market: str
    group: str
    dates: np.ndarray      # the new date axis
    ids: pd.Index          # the new asset axis, physical order
    src: np.ndarray        # stored column of each new column (-1: a new asset)
    old_n: int
    old_m: int
    start: int             # R: the first row rewritten
    edges: list[int]       # the new date edges
    actions: pd.DataFrame  # the market's actions with an ex date after dates[R - 1]
    source: BlockBars

    def chunks(self) -> list[tuple[int, int]]:
        """``(a, b)`` rows of every task from ``start`` on: one block of
        :data:`~quantlib.store.dategrid.BLOCK` dates each (the last one: the partly
        filled block, written in its chunks of <= 16 dates by one task)."""
        n = len(self.dates)
        return [(a, min(a + dategrid.BLOCK, n)) for a in range(self.start, n, dategrid.BLOCK)]


def plan_blocks(root: zarr.Group, sources: Mapping[str, BlockBars], assets: pd.DataFrame,
                actions: DeltaActions) -> tuple[list[BlockPlan], list[str]]:
    """Plan every market of ``sources`` (reads coordinates only, writes nothing).

    Returns the plans and the markets the block path cannot express (the caller
    merges their bars by region, :func:`~quantlib.store.increment.write_prices_delta`).
    """
    market_of = assets.drop_duplicates("asset_id", keep="last").set_index("asset_id")["market"]
    changed = actions.changed.assign(
        market=market_of.reindex(actions.changed["asset_id"].astype(str)).to_numpy())
    plans, fallback = [], []
    for market in sorted(sources):
        group = f"prices/{market}"
        ids = pd.Index(sorted(market_of.index[market_of.to_numpy() == market].astype(str)))
        try:
            if "prices" not in root or market not in cast(zarr.Group, root["prices"]):
                raise _Fallback
            plans.append(_plan(cast(zarr.Group, root[group]), group, market, sources[market],
                               ids, actions, changed[changed["market"] == market]))
        except _Fallback:
            fallback.append(market)
    return plans, fallback


def _plan(g: zarr.Group, group: str, market: str, source: BlockBars, ids: pd.Index,
          actions: DeltaActions, changed: pd.DataFrame) -> BlockPlan:
    span = np.array([source.first, source.last], dtype="datetime64[ns]")
    dates, phys, old_n, old_m = _new_axes(g, market, span, ids)
    n = len(dates)
    starts = [old_n, int(np.searchsorted(dates, span[0]))]
    if len(changed):
        starts.append(int(np.searchsorted(dates, ns_values(changed["ex_date"]).min())))
    r0 = max(0, min(starts))
    stored = dategrid.date_edges(cast(zarr.Array, g["close"]))
    full = 0      # rows of the leading full blocks
    for e in stored:
        if e != dategrid.BLOCK or full + e > old_n:
            break
        full += e
    start = min(full, r0 // dategrid.BLOCK * dategrid.BLOCK)
    edges = [dategrid.BLOCK] * (start // dategrid.BLOCK) + dategrid.sealed_edges(n - start)
    acts = _of_assets(actions.after(dates[start - 1] if start > 0 else None), ids)
    src = np.where(np.arange(len(phys)) < old_m, np.arange(len(phys)), -1)
    return BlockPlan(market, group, dates, phys, src, old_n, old_m, start, edges,
                     acts.reset_index(drop=True), source)


def write_blocks(session: icechunk.Session, base: icechunk.Session,
                 plans: Sequence[BlockPlan], client: Any = None) -> dict[str, int]:
    """Regrid each planned panel, then compute and write its chunks from ``R`` on as
    dask tasks into forks of ``session`` (merged back into it). ``base`` is the
    read-only session of the commit's parent (the stored values). Returns
    ``region_cells`` (stored cells rewritten), ``appended_dates`` and ``block_chunks``
    (tasks: date blocks written).
    """
    import dask

    stats = {"region_cells": 0, "appended_dates": 0, "block_chunks": 0}
    if not plans:
        return stats
    root = zarr.open_group(session.store, mode="a")
    for p in plans:
        _regrid(cast(zarr.Group, root[p.group]), p)
        stats["region_cells"] += (p.old_n - p.start) * len(p.ids)
        stats["appended_dates"] += len(p.dates) - p.old_n
        stats["block_chunks"] += len(p.chunks())
    # one graph: per chunk its last closes, the seeds folded from them, the writes
    lasts = {p.group: [dask.delayed(_chunk_last, pure=False)(base, p, a, b)
                       for a, b in p.chunks()] for p in plans}
    seeds = {p.group: dask.delayed(_seeds, pure=False, nout=len(p.chunks()))(
        base, p, lasts[p.group]) for p in plans}
    fork = session.fork()
    writes = [dask.delayed(_write_chunk, pure=False)(fork, base, p, a, b, seeds[p.group][j])
              for p in plans for j, (a, b) in enumerate(p.chunks())]
    with dask.config.set(scheduler=client if client is not None else "threads"):
        forks = dask.compute(*writes)
    session.merge(*{id(f): f for f in forks}.values())
    return stats


def _regrid(g: zarr.Group, p: BlockPlan) -> None:
    """The new grid and shape of every date array; the new coordinate values."""
    n, m = len(p.dates), len(p.ids)
    for _name, arr in dategrid.date_arrays(g):
        if arr.ndim != 2:
            continue
        old = dategrid.date_edges(arr)
        for i in range(len(p.edges), len(old)):      # chunk keys past the new grid
            dategrid._delete_date_chunk(arr, i)
        dategrid._set_grid(arr, p.edges, (n, m))
    date = cast(zarr.Array, g["date"])
    units, calendar = _time_units(date)
    num, _, _ = xr.coding.times.encode_cf_datetime(p.dates[p.old_n:], units, calendar,
                                                  dtype=date.dtype)
    date = dategrid.retile(date, [n], (n,))
    date[p.old_n:] = np.asarray(num, dtype=date.dtype)
    if m > p.old_m:
        asset = cast(zarr.Array, g["asset"])
        asset.resize((m,))
        asset[p.old_m:] = np.asarray(p.ids[p.old_m:], dtype=asset.dtype)


def _stored(base: icechunk.Session, p: BlockPlan, var: str, a: int, b: int
            ) -> np.ndarray | None:
    """Stored rows ``[a, min(b, old_n))`` of ``var`` in the new column order (new
    columns filled as having no bar); ``None`` when the chunk holds no stored row."""
    if a >= p.old_n:
        return None
    arr = zarr.open_array(base.store, path=f"{p.group}/{var}", mode="r")
    part = np.asarray(arr[a:min(b, p.old_n), :p.old_m])
    out = np.full((part.shape[0], len(p.ids)), arr.fill_value, dtype=part.dtype)
    out[:, :p.old_m] = part
    return out


def _close_and_bars(base: icechunk.Session, p: BlockPlan, a: int, b: int
                    ) -> tuple[np.ndarray, BarArrays, np.ndarray]:
    """The chunk's merged ``close`` rows, its delta bars and their rows."""
    bars = p.source.read(p.dates[a], p.dates[b - 1], p.ids)
    row = np.searchsorted(p.dates[a:b], bars.dates)
    if len(row) and ((row >= b - a) | (p.dates[a:b][np.minimum(row, b - a - 1)]
                                       != bars.dates)).any():
        bad = int(np.flatnonzero((row >= b - a) | (p.dates[a:b][np.minimum(row, b - a - 1)]
                                                    != bars.dates))[0])
        raise StoreError("every delta bar must fall on a date of the panel",
                         found=f"a bar dated {bars.dates[bad]} off the panel's dates",
                         fix="validate the bars (non-session check) and rerun",
                         asset=str(p.ids[bars.col[bad]]), market=p.group)
    close = _stored(base, p, "close", a, b)
    grid = np.full((b - a, len(p.ids)), np.nan)
    if close is not None:
        grid[:close.shape[0]] = close
    grid[row, bars.col] = bars.values["close"]
    return grid, bars, row


def _chunk_last(base: icechunk.Session, p: BlockPlan, a: int, b: int) -> np.ndarray:
    """Each column's last valid close in the chunk (NaN: none)."""
    close, _, _ = _close_and_bars(base, p, a, b)
    return previous_valid(np.vstack([close, np.zeros((1, close.shape[1]))]))[-1]


def _seeds(base: icechunk.Session, p: BlockPlan, lasts: list[np.ndarray]
           ) -> tuple[np.ndarray, ...]:
    """Each chunk's returns seed: the last valid close before it (the stored close
    before ``R`` for the columns with a bar in the rewritten rows)."""
    seed = np.full(len(p.ids), np.nan)
    wanted = np.flatnonzero(np.any([~np.isnan(x) for x in lasts], axis=0) & (p.src >= 0))
    if p.start > 0 and len(wanted):
        close = zarr.open_array(base.store, path=f"{p.group}/close", mode="r")
        seed[wanted] = last_closes(close, p.start, p.src[wanted])
    out = []
    for last in lasts:
        out.append(seed.copy())
        seed = np.where(np.isnan(last), seed, last)
    return tuple(out)


def _write_chunk(fork: Any, base: icechunk.Session, p: BlockPlan, a: int, b: int,
                 seed: np.ndarray) -> Any:
    """Compute every variable of rows ``[a, b)`` and write them into ``fork``."""
    close, bars, row = _close_and_bars(base, p, a, b)
    grids: dict[str, np.ndarray] = {"close": close}
    for var in (*PRICE_VARS, "known_at"):
        if var == "close":
            continue
        stored = _stored(base, p, var, a, b)
        fill = NAT_INT if var == "known_at" else np.nan
        grid = np.full((b - a, len(p.ids)), fill,
                       dtype="int64" if var == "known_at" else "float64")
        if stored is not None:
            grid[:stored.shape[0]] = stored
        grid[row, bars.col] = bars.known if var == "known_at" else bars.values[var]
        grids[var] = grid
    acts = p.actions
    if a > 0 and len(acts):
        acts = acts[ns_values(acts["ex_date"]) > p.dates[a - 1]]
    split, dividend = actions_grid(acts, pd.DatetimeIndex(p.dates[a:b]), p.ids)
    prev = previous_valid(np.vstack([seed[None, :], close]))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        grids["returns"] = split * (close + dividend) / prev - 1.0
    grids["split"], grids["dividend"] = split, dividend
    g = zarr.open_group(fork.store, path=p.group, mode="a")
    for var in _VARS:
        cast(zarr.Array, g[var])[a:b, :] = grids[var]
    return fork
