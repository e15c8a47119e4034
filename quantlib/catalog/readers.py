"""Intake 2 readers of the curated store: PIT ``xarray.Dataset`` objects, dask-backed.

Each reader is a small declarative class: the builder it calls (a lazy
``"module:function"`` string), the store tables it needs, and how those map onto the
builder's arguments. :class:`StoreReader` does the rest: validate the catalog
parameters, pin one snapshot, load the inputs, build, chunk with dask, and stamp the
provenance (``snapshot_id``, parameters) into ``attrs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import xarray as xr
from intake.readers.readers import BaseReader

from quantlib.catalog.params import PARAMETERS, CatalogParams, validate_params
from quantlib.errors import CatalogError, SnapshotNotFoundError

__all__ = ["StoreReader", "PricesReader", "FundamentalsReader", "UniverseReader", "FxReader",
           "READERS", "StoreInputs"]

#: rows per dask chunk along ``date`` (all assets in one chunk)
DATE_CHUNK = 512


@dataclass
class StoreInputs:
    """Everything a builder may need from one pinned snapshot of the store."""

    snapshot_id: str
    store_url: str
    assets: pd.DataFrame
    symbols: pd.DataFrame
    panels: dict[str, xr.Dataset]
    start: pd.Timestamp
    end: pd.Timestamp
    statements: pd.DataFrame | None = None
    fx: xr.Dataset | None = None
    reader: Any = None

    @classmethod
    def load(cls, p: CatalogParams, need: tuple[str, ...]) -> StoreInputs:
        from quantlib.store import CuratedStore

        st = CuratedStore(p.store)
        try:
            snap = st.resolve(p.snapshot)
        except SnapshotNotFoundError as exc:
            raise CatalogError("catalog parameter snapshot must name a data version",
                               found=repr(p.snapshot or "latest") + f" ({exc.found})",
                               fix="pass snapshot='latest', a tag or a snapshot id "
                               "(see CuratedStore.snapshots())", field="snapshot",
                               file=st.url) from exc
        have = st.markets(snap)
        missing = [m for m in p.markets if m not in have]
        if missing:
            raise CatalogError("catalog parameter markets must name markets in the store",
                               found=f"{missing} (store has {have})",
                               fix=f"pass markets={have} or refresh the missing markets",
                               field="markets", snapshot=snap)
        panels = {m: st.open_prices(m, snap) for m in p.markets}
        first = min(pd.Timestamp(ds["date"].values[0]) for ds in panels.values())
        last = max(pd.Timestamp(ds["date"].values[-1]) for ds in panels.values())
        return cls(snap, st.url, st.read_table("assets", snap), st.read_table("symbols", snap),
                   panels, p.start if p.start is not None else first,
                   p.end if p.end is not None else last,
                   st.read_table("statements", snap) if "statements" in need else None,
                   st.open_fx(snap) if "fx" in need else None, zarr_reader(st, snap))


def zarr_reader(st: Any, snapshot_id: str) -> Any:
    """A :data:`quantlib.pit.lazy.ColumnReader` over one snapshot's stored arrays: a
    block of stored columns read by :class:`quantlib.store.chunkread.ChunkedArray`
    (its chunks read and decoded concurrently), no dask. Columns are numbered in
    sorted asset order, as ``open_prices`` presents them (a panel with listings
    appended since its last full write stores them at its end:
    :mod:`quantlib.store.assetgrid`)."""
    import zarr

    from quantlib.store.assetgrid import SortedColumns, sorted_order, sorted_prefix, stored_ids
    from quantlib.store.chunkread import ChunkedArray, native_chunk_dir

    store = st.repo.readonly_session(snapshot_id=snapshot_id).store
    chunk_dir = native_chunk_dir(st.location)
    arrays: dict[str, Any] = {}
    orders: dict[str, Any] = {}

    def read(market: str, var: str, n_rows: int, c0: int, c1: int) -> Any:
        path = f"prices/{market}/{var}"
        if market not in orders:
            ids = stored_ids(zarr.open_group(store, path=f"prices/{market}", mode="r"))
            orders[market] = (sorted_order(ids), sorted_prefix(ids))
        if path not in arrays:
            arr = ChunkedArray(store, path, chunk_dir)
            order, tail = orders[market]
            arrays[path] = arr if order is None else SortedColumns(arr, order, tail)
        return arrays[path][:n_rows, c0:c1]
    return read


def _dask_backed(ds: xr.Dataset) -> xr.Dataset:
    """Data variables as dask arrays chunked along ``date`` (those a builder left in
    memory; lazy ones stay as built); coordinates stay numpy."""
    import dask.array as da

    out = ds.copy()
    for name, var in ds.data_vars.items():
        if isinstance(var.data, da.Array):
            continue
        chunks = tuple(DATE_CHUNK if d == "date" else -1 for d in var.dims)
        out[name] = (var.dims, da.from_array(var.values, chunks=chunks), var.attrs)
    return out


class StoreReader(BaseReader):
    """Base of the catalog's readers: parameters -> pinned store inputs -> PIT Dataset."""

    imports: ClassVar[set[str]] = {"quantlib", "xarray", "dask", "icechunk"}
    output_instance = "xarray:Dataset"
    func = "quantlib.pit:build_prices"
    #: store inputs the builder needs besides assets, symbols and price panels
    needs: ClassVar[tuple[str, ...]] = ()

    def _read(self, params: dict[str, Any] | None = None, **overrides: Any) -> xr.Dataset:
        """Build the dataset; ``params`` come from the catalog, ``overrides`` from
        ``.read(start=..., ...)``."""
        merged = {**(params or {}), **overrides}
        bad = sorted(k for k in merged if k not in PARAMETERS)
        if bad:
            raise CatalogError(f"catalog parameters must be among {', '.join(PARAMETERS)}",
                               found=repr(bad[0]), fix="check the spelling", field=bad[0])
        merged["store"] = merged.get("store") or None
        p = validate_params(**merged)
        inputs = StoreInputs.load(p, self.needs)
        common = dict(markets=p.markets, start=inputs.start, end=inputs.end,
                      decision_clock=p.decision_clock)
        ds = self._func(**self.arguments(inputs), **common)
        ds = _dask_backed(ds)
        ds.attrs.update(snapshot_id=inputs.snapshot_id, markets=list(p.markets),
                        decision_clock=p.decision_clock, start=str(inputs.start.date()),
                        end=str(inputs.end.date()))
        return ds

    def arguments(self, inputs: StoreInputs) -> dict[str, Any]:
        """Builder arguments from the store inputs (the one method subclasses write)."""
        raise NotImplementedError


class PricesReader(StoreReader):
    """PIT prices: open high low close volume adj_close returns returns_base fx_rate,
    lazy: a block of assets is read (only the stored variables it needs) when computed."""

    func = "quantlib.pit:build_prices_lazy"
    needs = ("fx",)

    def arguments(self, inputs: StoreInputs) -> dict[str, Any]:
        return dict(panels=inputs.panels, assets=inputs.assets, fx=inputs.fx,
                    symbols=inputs.symbols, reader=inputs.reader)


class FundamentalsReader(StoreReader):
    """PIT statement fields (latest period, latest revision known) plus period_end."""

    func = "quantlib.pit:build_fundamentals"
    needs = ("statements",)

    def arguments(self, inputs: StoreInputs) -> dict[str, Any]:
        return dict(statements=inputs.statements, assets=inputs.assets, symbols=inputs.symbols)


class UniverseReader(StoreReader):
    """PIT universe membership: in_universe."""

    func = "quantlib.pit:build_universe"

    def arguments(self, inputs: StoreInputs) -> dict[str, Any]:
        return dict(assets=inputs.assets, symbols=inputs.symbols)


class FxReader(StoreReader):
    """FX rates known at each decision time, dims (date, currency)."""

    func = "quantlib.pit:build_fx"
    needs = ("fx",)

    def arguments(self, inputs: StoreInputs) -> dict[str, Any]:
        return dict(fx=inputs.fx, assets=inputs.assets)


#: catalog entry name -> reader class (the one registry the catalog file is built from)
READERS: dict[str, type[StoreReader]] = {
    "prices": PricesReader,
    "fundamentals": FundamentalsReader,
    "universe": UniverseReader,
    "fx": FxReader,
}
