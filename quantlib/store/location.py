"""The store's location: :mod:`quantlib.storage` (kept so ``quantlib.store.location`` imports work).

:mod:`quantlib.storage` is a leaf module (config and errors only), so the raw zone,
sources and results can resolve URLs without importing the curated store.
"""

from quantlib.storage import StoreLocation, resolve_location

__all__ = ["StoreLocation", "resolve_location"]
