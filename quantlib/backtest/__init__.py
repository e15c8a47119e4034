"""Backtests: signals, strategies, simulation, costs, metrics, factor analysis, sweeps."""

from quantlib.backtest.result import Result

__all__ = ["Result"]
