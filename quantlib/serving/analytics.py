"""Tear-sheet series computed from a result's daily returns (pure pandas/numpy).

These are display helpers for the dashboards; the headline metrics shown in the
dashboards are the stored ones (``meta["metrics"]``), never recomputed here.
Conventions: 252 sessions a year, zero risk-free rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["equity_curve", "drawdown", "monthly_returns", "yearly_returns",
           "rolling_sharpe", "rolling_volatility", "summary_metrics", "top_holdings",
           "fmt_pct", "fmt_bps", "fmt_num", "PERIODS_PER_YEAR"]

PERIODS_PER_YEAR = 252


def equity_curve(returns: pd.Series) -> pd.Series:
    """Growth of 1 from simple daily returns.

    Examples
    --------
    >>> equity_curve(pd.Series([0.1, -0.5])).round(3).tolist()
    [1.1, 0.55]
    """
    return (1.0 + returns.fillna(0.0)).cumprod()


def drawdown(returns: pd.Series) -> pd.Series:
    """Underwater curve: equity over its running peak, minus 1 (<= 0).

    Examples
    --------
    >>> drawdown(pd.Series([0.1, -0.5, 0.2])).round(3).tolist()
    [0.0, -0.5, -0.4]
    """
    eq = equity_curve(returns)
    return eq / np.maximum.accumulate(np.maximum(eq, 1.0)) - 1.0


def monthly_returns(returns: pd.Series) -> pd.DataFrame:
    """Compounded return per (year, month): years as rows, months 1..12 as columns.

    Examples
    --------
    >>> r = pd.Series([0.1, 0.1], index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    >>> round(float(monthly_returns(r).loc[2024, 1]), 4)
    0.21
    """
    r = returns.fillna(0.0)
    grouped = (1.0 + r).groupby([r.index.year, r.index.month]).prod() - 1.0
    table = grouped.unstack()
    table.index.name, table.columns.name = "year", "month"
    return table.reindex(columns=range(1, 13))


def yearly_returns(returns: pd.Series) -> pd.Series:
    """Compounded return per calendar year.

    Examples
    --------
    >>> r = pd.Series([0.1, 0.1], index=pd.to_datetime(["2023-12-29", "2024-01-02"]))
    >>> yearly_returns(r).round(2).to_dict()
    {2023: 0.1, 2024: 0.1}
    """
    r = returns.fillna(0.0)
    out = (1.0 + r).groupby(r.index.year).prod() - 1.0
    out.index.name = "year"
    return out


def rolling_volatility(returns: pd.Series, window: int = 126) -> pd.Series:
    """Annualized rolling standard deviation of daily returns.

    Examples
    --------
    >>> rolling_volatility(pd.Series([0.01, -0.01] * 10), window=4).iloc[-1].round(4)
    np.float64(0.1833)
    """
    return returns.rolling(window).std() * np.sqrt(PERIODS_PER_YEAR)


def rolling_sharpe(returns: pd.Series, window: int = 126) -> pd.Series:
    """Annualized rolling Sharpe ratio (zero risk-free rate).

    Examples
    --------
    >>> s = rolling_sharpe(pd.Series([0.02, 0.0] * 10), window=4)
    >>> round(float(s.iloc[-1]), 3)
    13.748
    """
    mean = returns.rolling(window).mean()
    std = returns.rolling(window).std()
    return (mean / std.where(std > 0)) * np.sqrt(PERIODS_PER_YEAR)


def summary_metrics(returns: pd.Series) -> dict[str, float]:
    """CAGR, annual volatility, Sharpe, max drawdown and total return of daily returns.

    Examples
    --------
    >>> r = pd.Series([0.01] * 252)
    >>> m = summary_metrics(r)
    >>> round(m["cagr"], 4), m["max_drawdown"]
    (11.274, 0.0)
    """
    r = returns.fillna(0.0).to_numpy(dtype=float)
    n = len(r)
    if n == 0:
        return {"cagr": float("nan"), "annual_volatility": float("nan"),
                "sharpe": float("nan"), "max_drawdown": float("nan"), "total_return": 0.0}
    growth = float(np.prod(1.0 + r))
    std = float(r.std(ddof=1)) if n > 1 else 0.0
    return {
        "cagr": growth ** (PERIODS_PER_YEAR / n) - 1.0,
        "annual_volatility": std * np.sqrt(PERIODS_PER_YEAR),
        "sharpe": float(r.mean() / std * np.sqrt(PERIODS_PER_YEAR)) if std > 0 else float("nan"),
        "max_drawdown": float(drawdown(pd.Series(r)).min()),
        "total_return": growth - 1.0,
    }


def top_holdings(weights: pd.DataFrame, n: int = 10, freq: str = "ME") -> pd.DataFrame:
    """Weights of the ``n`` assets with the largest mean absolute weight, sampled per ``freq``.

    Examples
    --------
    >>> w = pd.DataFrame({"A": [0.5, 0.5], "B": [0.1, 0.0]},
    ...                  index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    >>> list(top_holdings(w, n=1).columns)
    ['A']
    """
    w = weights.fillna(0.0)
    names = w.abs().mean().sort_values(ascending=False).index[:n]
    return w[names].resample(freq).last()


def fmt_pct(x: float | None, digits: int = 2) -> str:
    """Format a fraction as a percentage.

    Examples
    --------
    >>> fmt_pct(0.12345), fmt_pct(None), fmt_pct(float("nan"))
    ('12.35%', '—', '—')
    """
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x * 100:.{digits}f}%"


def fmt_bps(x: float | None, digits: int = 1) -> str:
    """Format a fraction in basis points.

    Examples
    --------
    >>> fmt_bps(0.00123)
    '12.3 bps'
    """
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x * 1e4:.{digits}f} bps"


def fmt_num(x: float | None, digits: int = 2) -> str:
    """Format a plain number (ratios such as Sharpe).

    Examples
    --------
    >>> fmt_num(1.23456)
    '1.23'
    """
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:.{digits}f}"
