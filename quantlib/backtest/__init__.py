"""Backtests: signals, strategies, simulation, costs, metrics, factor analysis, sweeps.

Typical use::

    from quantlib.backtest import run, sweep
    res = run("xs_momentum", data, window=252, skip=21, costs="default")
    res.metrics["sharpe"]
"""

from quantlib.backtest import signals
from quantlib.backtest.constraints import Constraints
from quantlib.backtest.costs import DEFAULT_COSTS, CostModel
from quantlib.backtest.engine import run, simulate
from quantlib.backtest.factor import factor_analysis
from quantlib.backtest.lookahead import check_lookahead
from quantlib.backtest.result import Result
from quantlib.backtest.strategies import (
    Param,
    Strategy,
    get_strategy,
    list_strategies,
    register_strategy,
)
from quantlib.backtest.sweep import sweep
from quantlib.backtest.walkforward import WalkForward, walk_forward

__all__ = ["Result", "simulate", "run", "signals", "Constraints", "CostModel", "DEFAULT_COSTS",
           "Param", "Strategy", "register_strategy", "get_strategy", "list_strategies",
           "check_lookahead", "factor_analysis", "sweep", "walk_forward",
           "WalkForward"]
