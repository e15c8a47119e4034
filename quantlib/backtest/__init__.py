"""Backtests: signals, strategies, simulation, costs, metrics, factor analysis, sweeps.

Typical use::

    from quantlib.backtest import run, sweep
    res = run("xs_momentum", data, window=252, skip=21, costs="default")
    res.metrics["sharpe"]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# no numba here: the kernels run from their native artifacts, or import numba (the lean
# way, with jitload's cache loader) on first need (quantlib.backtest.native; start-up)
from quantlib.backtest import signals
from quantlib.backtest.constraints import Constraints
from quantlib.backtest.costs import DEFAULT_COSTS, CostModel
from quantlib.backtest.engine import run, simulate
from quantlib.backtest.result import Result
from quantlib.backtest.strategies import (
    Param,
    Strategy,
    get_strategy,
    list_strategies,
    register_strategy,
)
from quantlib.backtest.sweep import sweep  # eager: the submodule has the function's name

#: loaded on first use: ``run`` in a fresh process does not pay for them (start-up)
_LAZY = {"walk_forward": "quantlib.backtest.walkforward",
         "WalkForward": "quantlib.backtest.walkforward",
         "factor_analysis": "quantlib.backtest.factor",
         "check_lookahead": "quantlib.backtest.lookahead"}

if TYPE_CHECKING:  # pragma: no cover
    from quantlib.backtest.factor import factor_analysis
    from quantlib.backtest.lookahead import check_lookahead
    from quantlib.backtest.walkforward import WalkForward, walk_forward

__all__ = ["Result", "simulate", "run", "signals", "Constraints", "CostModel", "DEFAULT_COSTS",
           "Param", "Strategy", "register_strategy", "get_strategy", "list_strategies",
           "check_lookahead", "factor_analysis", "sweep", "walk_forward",
           "WalkForward"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'quantlib.backtest' has no attribute {name!r}")
