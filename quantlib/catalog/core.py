"""The Intake catalog of PIT datasets: the catalog file and :func:`open_catalog`.

``catalogs/quantlib.yaml`` is the catalog as data, written by hand by the data team (an
Intake 2 catalog: one entry per reader of :data:`quantlib.catalog.readers.READERS`, the
parameters of :data:`quantlib.catalog.params.PARAMETERS`); tests/catalog checks what the
code relies on against it. :func:`build_catalog` builds an equivalent catalog in code,
used only where the file is absent (an installed package without the repository).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from quantlib.catalog.params import PARAMETERS, check_store_url, validate_params
from quantlib.errors import CatalogError
from quantlib.markets import STATEMENT_FIELDS

__all__ = ["CATALOG_FILE", "ENTRIES", "build_catalog", "catalog_dict", "open_catalog"]

#: the catalog file shipped in the repository (``catalogs/quantlib.yaml``)
CATALOG_FILE = Path(__file__).resolve().parents[2] / "catalogs" / "quantlib.yaml"

_ASSET_COORDS = ["market", "currency", "sector", "symbol"]

#: entry name -> (reader class, description, variables, dims)
ENTRIES: dict[str, tuple[str, str, list[str], list[str]]] = {
    "prices": ("quantlib.catalog.readers:PricesReader",
               "PIT prices on the global session grid: a bar sits on the first date whose "
               "decision time is at or after its known_at; never forward-filled. returns: "
               "total return in local currency from the previous bar (splits, cash "
               "dividends); returns_base adds the FX change; fx_rate is the rate (base "
               "currency per unit) known at each decision time; adj_close is back-adjusted "
               "as of the panel's end (backtest on returns)",
               ["open", "high", "low", "close", "volume", "adj_close", "returns",
                "returns_base", "fx_rate"], ["date", "asset"]),
    "fundamentals": ("quantlib.catalog.readers:FundamentalsReader",
                     "PIT financial statements: the latest fiscal period announced by the "
                     "decision time, in its latest revision known by then",
                     [*STATEMENT_FIELDS, "period_end"],
                     ["date", "asset"]),
    "universe": ("quantlib.catalog.readers:UniverseReader",
                 "PIT universe: listed on or before the date and not yet delisted",
                 ["in_universe"], ["date", "asset"]),
    "fx": ("quantlib.catalog.readers:FxReader",
           "FX rates (base currency per unit) known at each decision time",
           ["rate"], ["date", "currency"]),
}


def catalog_dict() -> dict[str, Any]:
    """The catalog as plain data: the fallback when ``catalogs/quantlib.yaml`` is absent.

    Examples
    --------
    >>> sorted(catalog_dict()["entries"])
    ['fundamentals', 'fx', 'prices', 'universe']
    """
    # nested under "params": Intake pops top-level kwargs named like a user parameter
    kwargs = {"params": {name: "{" + name + "}" for name in PARAMETERS}}
    entries = {
        name: {"reader": reader, "kwargs": copy.deepcopy(kwargs), "output_instance": "xarray:Dataset",
               "user_parameters": {},
               "metadata": {"description": desc, "dims": dims, "variables": variables,
                            "coords": _ASSET_COORDS if "asset" in dims else []}}
        for name, (reader, desc, variables, dims) in ENTRIES.items()}
    params = {name: {"default": default, "description": desc}
              for name, (default, desc) in PARAMETERS.items()}
    return {"version": 2, "data": {}, "aliases": {name: name for name in ENTRIES},
            "metadata": {"description": "quantlib point-in-time datasets (dask-backed "
                         "xarray, dims (date, asset)); open with quantlib.open_catalog()"},
            "user_parameters": params, "entries": entries}


def build_catalog():
    """The Intake catalog built from :func:`catalog_dict` (no file needed).

    Examples
    --------
    >>> cat = build_catalog()
    >>> sorted(cat.entries), cat.user_parameters["decision_clock"].default
    (['fundamentals', 'fx', 'prices', 'universe'], 'own')
    """
    from intake.readers.entry import Catalog

    return Catalog.from_dict(catalog_dict())


def _load():
    from intake.readers.entry import Catalog

    if CATALOG_FILE.exists():
        return Catalog.from_yaml_file(str(CATALOG_FILE))
    return build_catalog()


def open_catalog(store: str | None = None, **params: Any):
    """Open the PIT catalog for a store.

    Parameters
    ----------
    store : str, optional
        Store URL (local folder or ``s3://bucket/prefix``). ``None`` uses
        ``quantlib.config.load_config().store_url``. Never put credentials in it: S3 keys
        come from the standard AWS environment variables.
    **params
        Catalog parameters: ``markets`` (list, default all), ``start`` / ``end``
        (``YYYY-MM-DD``, default the store's range), ``decision_clock`` (``"own"`` or a
        market code of ``quantlib/markets.yaml``), ``snapshot`` (tag, id or ``"latest"``).

    Returns
    -------
    intake.readers.entry.Catalog
        Entries ``prices``, ``fundamentals``, ``universe``, ``fx``; each ``.read()``
        returns a dask-backed ``xarray.Dataset``.

    Raises
    ------
    CatalogError
        For an unknown or invalid parameter (the message names it and the fix).

    Examples
    --------
    >>> cat = open_catalog("/tmp/store", markets=["US"], decision_clock="US")
    >>> sorted(cat)
    ['fundamentals', 'fx', 'prices', 'universe']
    >>> open_catalog(decision_clok="US")
    Traceback (most recent call last):
    ...
    quantlib.errors.CatalogError: catalog parameters must be among markets, start, end, decision_clock, snapshot; found 'decision_clok' [field=decision_clok]. Fix: check the spelling (see quantlib.catalog.PARAMETERS)
    """
    from quantlib.config import load_config

    names = [n for n in PARAMETERS if n != "store"]
    unknown = [k for k in params if k not in names]
    if unknown:
        raise CatalogError(f"catalog parameters must be among {', '.join(names)}",
                           found=repr(unknown[0]),
                           fix="check the spelling (see quantlib.catalog.PARAMETERS)",
                           field=unknown[0])
    url = check_store_url(str(store) if store is not None else load_config().store_url)
    validate_params(url, **params)
    if "markets" in params and not isinstance(params["markets"], str):
        params["markets"] = list(params["markets"])
    return _load()(store=url, **params)
