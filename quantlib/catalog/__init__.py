"""The Intake 2 catalog of point-in-time datasets.

``quantlib.open_catalog(store=None, **params)`` opens ``catalogs/quantlib.yaml`` for a
store; its entries (``prices``, ``fundamentals``, ``universe``, ``fx``) are the readers of
:mod:`quantlib.catalog.readers`, which import intake, xarray and the store lazily.
"""

from quantlib.catalog.core import CATALOG_FILE, ENTRIES, build_catalog, catalog_dict, open_catalog
from quantlib.catalog.params import PARAMETERS, CatalogParams, validate_params

__all__ = [
    "open_catalog",
    "build_catalog",
    "catalog_dict",
    "CATALOG_FILE",
    "ENTRIES",
    "PARAMETERS",
    "CatalogParams",
    "validate_params",
]
