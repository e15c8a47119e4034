"""One research dataset for backtests: prices, universe and fundamentals merged.

The catalog serves each dataset on its own; a backtest wants them side by side on
the same ``(date, asset)`` grid and pinned to one data version. :func:`load_dataset`
reads the three entries from the same snapshot and records that snapshot id in
``attrs["snapshot"]``, which :mod:`quantlib.backtest` copies into every result's
provenance.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

__all__ = ["load_dataset"]


def load_dataset(store: str | None = None, *, fundamentals: bool = True,
                 compute: bool = False, **params: Any) -> xr.Dataset:
    """Prices, ``in_universe`` and (optionally) fundamentals from one store snapshot.

    Parameters
    ----------
    store : str, optional
        Store URL; ``None`` uses the configured store.
    fundamentals : bool
        Also merge the PIT fundamentals variables.
    compute : bool
        Load into memory (numpy) instead of returning dask-backed variables.
    **params
        Catalog parameters (``markets``, ``start``, ``end``, ``decision_clock``,
        ``snapshot``), see :func:`quantlib.open_catalog`.

    Returns
    -------
    xarray.Dataset
        Dims ``(date, asset)``; ``attrs["snapshot"]`` is the pinned snapshot id and
        ``attrs["read_fingerprint"]`` the content fingerprint of the read (see
        :func:`quantlib.backtest.engine.data_address`).
    """
    from quantlib.backtest.engine import data_fingerprint
    from quantlib.catalog import open_catalog
    from quantlib.store import CuratedStore

    if params.get("snapshot") in (None, "", "latest"):
        # pin the latest snapshot once so the three reads see the same version
        params["snapshot"] = CuratedStore(store).resolve(None)
    cat = open_catalog(store, **params)
    parts = [cat["prices"].read(), cat["universe"].read()]
    if fundamentals:
        parts.append(cat["fundamentals"].read())
    ds = xr.merge(parts, combine_attrs="override", join="exact", compat="override")
    ds.attrs["snapshot"] = ds.attrs.get("snapshot_id", params["snapshot"])
    if compute:
        ds = ds.load()
    # what a backtest checks to know the data is still this read (no subset, no edit)
    ds.attrs["read_fingerprint"] = data_fingerprint(ds)
    return ds
