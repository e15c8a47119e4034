"""One-line definitions of the numbers the dashboards show, for hover text (``title``).

Only words live here: every formula is in :mod:`quantlib.backtest.metrics` (stored
metrics) or :mod:`quantlib.serving.views.tearstats` (relative statistics); units and their
formatting come with the metric (``format_metric``).
"""

from __future__ import annotations

import html

__all__ = ["DEFINITIONS", "LABELS", "definition", "label", "hover_attr"]

#: display name of a metric key (the key itself where missing)
LABELS: dict[str, str] = {
    "cagr": "CAGR", "annual_return": "Annual return", "annual_volatility": "Volatility",
    "volatility": "Volatility", "sharpe": "Sharpe", "sortino": "Sortino", "calmar": "Calmar",
    "max_drawdown": "Max drawdown", "total_return": "Total return", "hit_rate": "Hit rate",
    "var_95": "VaR (95%)", "cvar_95": "CVaR (95%)", "alpha": "Alpha", "beta": "Beta",
    "information_ratio": "Information ratio", "tracking_error": "Tracking error",
    "up_capture": "Up capture", "down_capture": "Down capture", "correlation": "Correlation",
    "max_drawdown_duration": "Max drawdown duration",
    "max_drawdown_recovery": "Max drawdown recovery",
    "longest_drawdown_duration": "Longest drawdown", "turnover_annual": "Turnover (annual)",
    "avg_turnover": "Average daily turnover", "total_costs": "Total costs",
    "avg_holdings": "Average holdings", "avg_gross_exposure": "Average gross exposure",
    "n_periods": "Sessions", "warmup_periods": "Warm-up sessions", "start": "Start",
    "end": "End", "sharpe_ci_low": "Sharpe 95% CI (low)",
    "sharpe_ci_high": "Sharpe 95% CI (high)",
}

#: what a number means, in one line (unit first)
DEFINITIONS: dict[str, str] = {
    "cagr": "% per year: compound annual growth rate of the net returns (252 sessions a year)",
    "annual_return": "% per year: same as CAGR",
    "annual_volatility": "% per year: standard deviation of daily net returns x sqrt(252)",
    "volatility": "% per year: standard deviation of daily net returns x sqrt(252)",
    "sharpe": "ratio: annualized mean daily return over its standard deviation (risk-free 0)",
    "sortino": "ratio: annualized mean daily return over the downside deviation",
    "calmar": "ratio: CAGR over the absolute max drawdown",
    "max_drawdown": "%: largest fall of equity from a previous peak",
    "total_return": "%: compounded return over the whole period",
    "hit_rate": "%: share of sessions with a positive return among non-zero ones",
    "var_95": "% per day: the 5th percentile of daily returns (historical)",
    "cvar_95": "% per day: mean of the daily returns at or below the 95% VaR",
    "alpha": "% per year: return not explained by the benchmark (OLS intercept, annualized)",
    "beta": "ratio: sensitivity of daily returns to the benchmark's (OLS slope)",
    "information_ratio": "ratio: annualized mean active return over the tracking error",
    "tracking_error": "% per year: standard deviation of the active (strategy - benchmark) "
                      "daily return x sqrt(252)",
    "up_capture": "ratio: strategy CAGR over the benchmark's CAGR on the benchmark's up days",
    "down_capture": "ratio: strategy CAGR over the benchmark's CAGR on its down days "
                    "(below 1: loses less)",
    "correlation": "ratio: correlation of daily returns with the benchmark's",
    "max_drawdown_duration": "sessions: from the max drawdown's peak to its recovery",
    "max_drawdown_recovery": "sessions: from the max drawdown's trough to its recovery",
    "longest_drawdown_duration": "sessions: longest time spent below a previous peak",
    "turnover_annual": "times per year: mean daily turnover x 252 (13.0x: the capital is "
                       "traded 13 times a year)",
    "avg_turnover": "% of capital per day: mean of the traded fraction",
    "total_costs": "% of capital: sum of the daily trading costs",
    "avg_holdings": "count: mean number of positions held",
    "avg_gross_exposure": "% of capital: mean of long plus short exposure",
    "n_periods": "count: sessions in the reported period (from the first day with a position)",
    "warmup_periods": "count: sessions before the first position, left out of every metric",
    "start": "date: first day with a position, where the reported period starts",
    "end": "date: last session of the reported period",
    "depth": "%: fall from the peak to the trough",
    "sessions": "sessions: from the peak to the recovery (or to the last date while under "
                "water)",
}


def label(key: str) -> str:
    """Display name of a metric key.

    Examples
    --------
    >>> label("information_ratio"), label("custom_thing")
    ('Information ratio', 'custom_thing')
    """
    return LABELS.get(key, key)


def definition(key: str) -> str:
    """The one-line definition of ``key`` ('' if none).

    Examples
    --------
    >>> definition("beta").startswith("ratio:")
    True
    """
    return DEFINITIONS.get(key, "")


def hover_attr(key: str) -> str:
    """`` title='...'`` attribute carrying ``key``'s definition ('' if none).

    Examples
    --------
    >>> hover_attr("sharpe")[:15]
    " title='ratio: "
    >>> hover_attr("nope")
    ''
    """
    text = definition(key)
    return f" title='{html.escape(text, quote=True)}'" if text else ""
