"""quantlib: the quant research platform's library.

The top-level names are imported lazily, so ``import quantlib`` (and the
``quantlib`` command) stays fast; the store, catalog and backtest engine load on
first use.

Examples
--------
>>> import quantlib
>>> sorted(quantlib.__all__)
['__version__', 'load_dataset', 'open_catalog', 'publish', 'sql']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "open_catalog": "quantlib.catalog",
    "load_dataset": "quantlib.datasets",
    "publish": "quantlib.results",
    "sql": "quantlib.store",
}

__all__ = ["__version__", "load_dataset", "open_catalog", "publish", "sql"]

if TYPE_CHECKING:  # pragma: no cover
    from quantlib.catalog import open_catalog
    from quantlib.datasets import load_dataset
    from quantlib.results import publish
    from quantlib.store import sql


#: subpackages reachable as attributes after a bare ``import quantlib`` (loaded on first use)
_SUBPACKAGES = ("backtest",)


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"quantlib.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'quantlib' has no attribute {name!r}")
