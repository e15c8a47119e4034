"""Point-in-time alignment: numpy kernels and the labelled panel builders around them.

The kernels (:mod:`quantlib.pit.kernels`) take 2-D numpy arrays only; the builders take
canonical frames or the store's per-market panels and return ``xarray.Dataset`` objects
with dims ``(date, asset)`` on the global session index.
"""

from quantlib.pit import kernels
from quantlib.pit.frames import fx_panel, market_panels
from quantlib.pit.fundamentals import (
    STATEMENT_FIELDS,
    asof_fields,
    asof_values,
    build_fundamentals,
    build_universe,
    statement_asof,
)
from quantlib.pit.grid import Grid, make_grid
from quantlib.pit.lazy import build_prices_lazy
from quantlib.pit.prices import build_fx, build_prices

__all__ = [
    "kernels",
    "Grid",
    "make_grid",
    "market_panels",
    "fx_panel",
    "asof_values",
    "asof_fields",
    "build_prices",
    "build_prices_lazy",
    "build_fundamentals",
    "build_universe",
    "build_fx",
    "statement_asof",
    "STATEMENT_FIELDS",
]
