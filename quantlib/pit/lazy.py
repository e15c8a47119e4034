"""Lazy PIT prices: each variable a dask array, one task per block of assets.

Every step of :func:`quantlib.pit.build_prices` works down each asset's own column:
total returns from the previous bar, the back-adjustment factor, the re-stamping of a
bar onto the first decision time at or after its ``known_at``, the FX change between
an asset's bars. So a block of assets (all dates) depends only on the same assets'
stored columns, and :func:`build_prices_lazy` builds the same panel as a graph:

1. The grid (dates, decision times, asset coordinates) and the FX rates known at each
   decision time are computed now: they come from the ``assets``/``symbols`` tables and
   the small FX panel, never from the price panels.
2. Each output variable is a dask array chunked ``(all dates, BLOCK_ASSETS assets)``,
   never spanning two markets. A block's task reads, for its assets only and rows up to
   ``end``, just the stored variables its output needs (:data:`INPUTS`): ``close``
   needs ``close`` and ``known_at``; ``returns`` adds ``split`` and ``dividend``;
   ``open`` adds ``open``; ``fx_rate`` reads no price panel at all.
3. Nothing is read until a variable is computed, so a backtest that uses ``close`` and
   ``returns`` never reads ``open``, ``high``, ``low`` or ``volume``.
4. A computed block is kept by the dataset (up to :data:`CACHE_BYTES`, the first blocks
   computed; nothing evicted), so a backtest that reads ``close`` several times reads the
   store once. Each use gets its own copy.

Values equal :func:`~quantlib.pit.build_prices` cell for cell (tests/catalog).
Graph names derive from the panels' snapshot id (or their content) and the parameters,
so a result's data fingerprint is stable across reads of the same version.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np
import pandas as pd
import xarray as xr

from quantlib.config import load_config
from quantlib.markets import DEFAULT_MARKETS
from quantlib.pit import kernels as K
from quantlib.pit.frames import as_panels
from quantlib.pit.grid import Grid, make_grid
from quantlib.pit.prices import finish, fx_asof

__all__ = ["build_prices_lazy", "INPUTS", "BLOCK_ASSETS", "CACHE_BYTES", "ColumnReader",
           "panel_reader", "Placement"]

#: assets per dask block (the store's panel chunk width, so a block reads whole chunks)
BLOCK_ASSETS = 512
#: bytes of computed blocks one lazy dataset keeps (about one US variable at full size:
#: 14,000 assets x 20 years is 564 MB); a backtest that ``.load()``s its variables first
#: pays this much memory on top of them for nothing
CACHE_BYTES = 512 << 20
#: stored variables each output reads besides ``close`` and ``known_at``
INPUTS: dict[str, tuple[str, ...]] = {
    "open": ("open",), "high": ("high",), "low": ("low",), "close": (), "volume": ("volume",),
    "adj_close": ("split", "dividend"), "returns": ("split", "dividend"),
    "returns_base": ("split", "dividend"), "fx_rate": ()}
#: ``reader(market, variable, n_rows, first_col, stop_col)`` -> stored values
#: ``[:n_rows, first_col:stop_col]`` of that market's panel as a numpy array
ColumnReader = Callable[[str, str, int, int, int], np.ndarray]


def panel_reader(panels: Mapping[str, xr.Dataset]) -> ColumnReader:
    """A :data:`ColumnReader` over per-market Datasets (numpy, dask or lazily indexed).

    Examples
    --------
    >>> ds = xr.Dataset({"close": (("date", "asset"), np.arange(6.0).reshape(3, 2))})
    >>> panel_reader({"US": ds})("US", "close", 2, 1, 2).tolist()
    [[1.0], [3.0]]
    """
    def read(market: str, var: str, n_rows: int, c0: int, c1: int) -> np.ndarray:
        part = panels[market][var].isel(date=slice(0, n_rows), asset=slice(c0, c1))
        return np.asarray(part.values)
    return read


class Placement:
    """Where a block's stored bars land on the grid: :func:`~quantlib.pit.kernels.restamp_index`
    then :func:`~quantlib.pit.kernels.scatter_rows`, the same cells, faster when a bar is
    known by the decision time of its own session (most bars): those are placed row by
    row, and only the others are searched for and placed one by one (a later stored row
    still wins a cell, as in ``scatter_rows``).

    Examples
    --------
    >>> dec = np.array([10, 20, 30])
    >>> known = np.array([[9, K.NAT], [19, 21], [25, 31]])
    >>> Placement(known, np.array([0, 1, 2]), dec).scatter(np.array([[1.0, 2.0], [3.0, 4.0],
    ...                                                               [5.0, 6.0]])).tolist()
    [[1.0, nan], [3.0, nan], [5.0, 4.0]]
    """

    def __init__(self, known: np.ndarray, hint: np.ndarray, dec: np.ndarray) -> None:
        n = self.n = len(dec)
        self.hint = h = np.minimum(hint, n - 1)
        lo = np.concatenate([[np.iinfo(np.int64).min], dec[:-1]])[h]
        self.ok = ok = (known <= dec[h][:, None]) & (known > lo[:, None])
        r, c = np.nonzero(~ok & (known != K.NAT))
        t = np.searchsorted(dec, known[r, c], side="left")
        r, c, t = r[t < n], c[t < n], t[t < n]
        src = np.full(n, -1)
        src[h] = np.arange(len(h))          # the stored row placed on each grid row
        taken = (src[t] >= 0) & ok[np.maximum(src[t], 0), c]
        win = ~taken | (r > src[t])
        self.r, self.c, self.t = r[win], c[win], t[win]

    def scatter(self, values: np.ndarray) -> np.ndarray:
        """``values`` (stored rows x block columns) on the grid rows; NaN elsewhere."""
        out = np.full((self.n, values.shape[1]), np.nan)
        out[self.hint] = np.where(self.ok, values, np.nan)
        out[self.t, self.c] = values[self.r, self.c]
        return out


class _General:
    """The kernels' own re-stamping (blocks on mixed clocks, repeated grid rows)."""

    def __init__(self, known: np.ndarray, dec: np.ndarray, clock: np.ndarray) -> None:
        self.n, self.target = len(dec), K.restamp_index(known, dec, clock)

    def scatter(self, values: np.ndarray) -> np.ndarray:
        return K.scatter_rows(values, self.target, self.n)


class _BlockCache:
    """Computed blocks of one dataset, up to ``limit`` bytes (the first ones kept)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.blocks: dict[tuple[str, str, int, int], np.ndarray] = {}
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"limit": self.limit}          # a dask worker starts with an empty cache

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limit"])  # type: ignore[misc]

    def get(self, key: tuple[str, str, int, int]) -> np.ndarray | None:
        hit = self.blocks.get(key)
        return None if hit is None else hit.copy()

    def put(self, key: tuple[str, str, int, int], value: np.ndarray) -> None:
        with self.lock:
            if key not in self.blocks and self.used + value.nbytes <= self.limit:
                self.blocks[key] = value.copy()
                self.used += value.nbytes


class _Job:
    """What every block task of one build shares (a plain class: dask does not walk it)."""

    def __init__(self, grid: Grid, reader: ColumnReader, hints: dict[str, np.ndarray],
                 store_col: np.ndarray, fx_cols: np.ndarray, rates: np.ndarray,
                 convention: str, cache_bytes: int = CACHE_BYTES) -> None:
        self.grid, self.reader, self.hints = grid, reader, hints
        self.store_col, self.fx_cols, self.rates = store_col, fx_cols, rates
        self.convention = convention
        self.cache = _BlockCache(cache_bytes)

    def block(self, var: str, market: str, b0: int, b1: int) -> np.ndarray:
        """Output ``var`` for grid columns ``[b0, b1)`` (all grid rows, lookback
        included), from the dataset's cache when computed before."""
        if var == "fx_rate":
            return self._block(var, market, b0, b1)
        key = (var, market, b0, b1)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        out = self._block(var, market, b0, b1)
        self.cache.put(key, out)
        return out

    def _block(self, var: str, market: str, b0: int, b1: int) -> np.ndarray:
        n = len(self.grid.dates)
        fx = self.rates[:, self.fx_cols[b0:b1]]
        if var == "fx_rate":
            return fx.astype(float)
        out = np.full((n, b1 - b0), np.nan)
        idx = self.store_col[b0:b1]
        have = idx >= 0
        if not have.any():
            return out
        cols = idx[have]
        c0, c1 = int(cols.min()), int(cols.max()) + 1

        def read(name: str) -> np.ndarray:
            return self.reader(market, name, len(hint), c0, c1)[:, cols - c0]

        hint = self.hints[market]
        close = np.asarray(read("close"), dtype=np.float64)
        known = np.where(np.isfinite(close), np.asarray(read("known_at"), dtype=np.int64),
                         K.NAT)
        clock = self.grid.asset_clock[b0:b1][have]
        dec = self.grid.decision_times
        place: Placement | _General = _General(known, dec, clock) \
            if (clock != clock[0]).any() or len(np.unique(hint)) < len(hint) \
            else Placement(known, hint, dec[:, clock[0]])
        if var in ("close", "open", "high", "low", "volume"):
            out[:, have] = place.scatter(close if var == "close" else read(var))
            return out
        split, dividend = read("split"), read("dividend")
        if var == "adj_close":
            out[:, have] = place.scatter(close * K.adjustment_factor(close, split, dividend))
            return out
        r = place.scatter(K.total_returns(close, split, dividend, self.convention))
        if var == "returns_base":
            has_bar = np.isfinite(place.scatter(close))
            r = K.base_returns(r, fx[:, have], has_bar)
        out[:, have] = r
        return out


def _blocks(grid: Grid, width: int) -> list[tuple[str, int, int]]:
    """``(market, b0, b1)`` column blocks of at most ``width``, none across two markets."""
    market = grid.assets["market"].astype(str).to_numpy()
    out: list[tuple[str, int, int]] = []
    for m in grid.markets:
        cols = np.flatnonzero(market == m)
        if len(cols) == 0:
            continue
        first, stop = int(cols[0]), int(cols[-1]) + 1
        out += [(m, b, min(b + width, stop)) for b in range(first, stop, width)]
    return out


def _token(panels: Mapping[str, xr.Dataset], markets: tuple[str, ...], *args: object) -> str:
    """Content-derived name of a build: the panels' snapshot id when they come from the
    store (one per market), else a hash of their values."""
    from dask.base import tokenize

    snaps = [panels[m].attrs.get("snapshot_id") for m in markets]
    source = snaps if all(snaps) else [panels[m] for m in markets]
    return tokenize(source, markets, *args)


def _store_columns(panels: Mapping[str, xr.Dataset], grid: Grid) -> np.ndarray:
    """Column of each grid asset in its market's stored panel (-1: not stored)."""
    out = np.full(len(grid.assets), -1, dtype=np.intp)
    market = grid.assets["market"].astype(str).to_numpy()
    for m in grid.markets:
        sel = np.flatnonzero(market == m)
        ids = pd.Index([str(a) for a in panels[m]["asset"].values])
        out[sel] = ids.get_indexer(grid.assets.index[sel])
    return out


def build_prices_lazy(panels: Mapping[str, xr.Dataset], assets: pd.DataFrame,
                      fx: pd.DataFrame | xr.Dataset, *, symbols: pd.DataFrame | None = None,
                      markets=DEFAULT_MARKETS, start=None, end=None,
                      decision_clock: str = "own", offset_minutes: int | None = None,
                      base_currency: str | None = None,
                      returns_convention: str = "total_return",
                      reader: ColumnReader | None = None,
                      block_assets: int = BLOCK_ASSETS,
                      cache_bytes: int = CACHE_BYTES) -> xr.Dataset:
    """:func:`~quantlib.pit.build_prices` on the store's panels, as dask arrays read on demand.

    Parameters
    ----------
    panels : mapping of market -> Dataset
        The store's per-market panels (lazy: only ``date`` and ``asset`` are read here).
    assets, fx, symbols, markets, start, end, decision_clock, offset_minutes, base_currency,
    returns_convention
        As for :func:`~quantlib.pit.build_prices`.
    reader : ColumnReader, optional
        Reads a block of stored columns (default :func:`panel_reader` over ``panels``;
        the catalog passes one reading the pinned snapshot's zarr arrays directly).
    block_assets : int
        Assets per dask block.
    cache_bytes : int
        Bytes of computed blocks the dataset keeps (0: recompute on every use).

    Returns
    -------
    xarray.Dataset
        The variables, coordinates and attributes of
        :func:`~quantlib.pit.build_prices`, each variable dask-backed with chunks
        ``(all dates, <= block_assets)``; nothing of the price panels is read yet.

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["US1"], "market": ["US"], "currency": ["USD"],
    ...     "sector": "x", "listed": pd.to_datetime(["2000-01-03"]), "delisted": pd.NaT})
    >>> dates = pd.to_datetime(["2024-03-04", "2024-03-05"])
    >>> known = pd.to_datetime(["2024-03-04 21:15", "2024-03-05 21:15"]).as_unit("ns")
    >>> panel = xr.Dataset({v: (("date", "asset"), [[10.0], [11.0]]) for v in
    ...     ("open", "high", "low", "close", "volume")}, coords={"date": dates, "asset": ["US1"]})
    >>> panel["split"], panel["dividend"] = panel["close"] * 0 + 1, panel["close"] * 0
    >>> panel["known_at"] = (("date", "asset"), known.to_numpy().view("int64")[:, None])
    >>> fx = pd.DataFrame({"date": [], "currency": [], "rate": [], "known_at": []})
    >>> ds = build_prices_lazy({"US": panel}, a, fx, markets=["US"], start="2024-03-04",
    ...                        end="2024-03-05")
    >>> type(ds["returns"].data).__name__, ds["returns"].values.round(2).tolist()
    ('Array', [[nan], [0.1]])
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    base_currency = base_currency or load_config()["base_currency"]
    grid = make_grid(assets, symbols, markets=markets, start=start, end=end,
                     decision_clock=decision_clock, offset_minutes=offset_minutes)
    panels = as_panels(panels, assets, None, grid.markets)
    end_ts = grid.dates[-1] if len(grid.dates) else pd.Timestamp(end)
    grid_dates = grid.dates.to_numpy()
    hints = {}                   # grid row of each stored date up to end, per market
    for m in grid.markets:
        stored = np.asarray(panels[m]["date"].values, dtype="datetime64[ns]")
        stored = stored[:np.searchsorted(stored, np.datetime64(end_ts, "ns"), side="right")]
        hints[m] = np.searchsorted(grid_dates, stored, side="left")
    cur = grid.assets["currency"].astype(str).to_numpy()
    pairs = sorted({(c, k) for c, k in zip(cur, grid.asset_clock, strict=True)})
    rates = fx_asof(fx, grid, [c for c, _ in pairs], np.array([k for _, k in pairs]),
                    base_currency) if pairs else np.zeros((len(grid.dates), 0))
    col_of = {p: i for i, p in enumerate(pairs)}
    fx_cols = np.array([col_of[(c, k)] for c, k in zip(cur, grid.asset_clock, strict=True)],
                       dtype=np.intp)
    job = _Job(grid, reader or panel_reader(panels), hints, _store_columns(panels, grid),
               fx_cols, rates, returns_convention, cache_bytes)
    token = _token(panels, grid.markets, grid.assets.index.tolist(), str(grid.dates[0])
                   if len(grid.dates) else "", str(end_ts), decision_clock, offset_minutes,
                   base_currency, returns_convention, block_assets)
    n, blocks = len(grid.dates), _blocks(grid, block_assets)
    widths = tuple(b1 - b0 for _, b0, b1 in blocks)
    data: dict[str, da.Array] = {}
    for var in INPUTS:
        name = f"pit-{var}-{token}"
        layer: dict[Any, Any] = {(name, 0, j): (job.block, var, m, b0, b1)
                 for j, (m, b0, b1) in enumerate(blocks)}
        graph = HighLevelGraph.from_collections(name, layer, dependencies=())
        data[var] = da.Array(graph, name, ((n,), widths), dtype=np.float64,
                             meta=np.empty((0, 0))) if blocks else \
            da.zeros((n, 0), dtype=np.float64)
    ds = finish(cast(dict[str, np.ndarray], data), grid, decision_clock=decision_clock, base_currency=base_currency)
    ds["returns"].attrs.update(
        convention=returns_convention, formula=K.RETURNS_CONVENTIONS[returns_convention],
        description="total return in local currency from the asset's previous bar; splits "
                    "and cash dividends on the ex date (docs/conventions.md)")
    return ds[["open", "high", "low", "close", "volume", "adj_close", "returns",
               "returns_base", "fx_rate"]]
