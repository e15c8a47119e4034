"""Performance metrics on return arrays (axis 0 = date; 1-D or 2-D date x series).

Conventions (explicit parameters, documented defaults):

- ``periods_per_year=252``; ``risk_free`` is a *per-period* rate subtracted from
  each return (as empyrical's ``risk_free``).
- Volatility, Sharpe and the information ratio use the sample standard deviation
  (``ddof=1``) and are annualized with ``sqrt(periods_per_year)`` (empyrical).
- ``cagr`` = ``annual_return`` = ``(prod(1 + r)) ** (periods_per_year / n) - 1``
  (empyrical ``annual_return``, quantstats >= 0.0.8x ``cagr``; older quantstats used
  calendar days / 365).
- ``max_drawdown`` measures from the starting capital (1.0) too: a loss on the first
  period is a drawdown (as empyrical-reloaded, which the tests pin this to).
- Sortino uses the root-mean-square of the negative excess returns over *all*
  periods (empyrical ``downside_risk``, required return = risk-free).
- ``hit_rate`` = positive periods / non-zero periods (quantstats ``win_rate``).
- ``information_ratio`` = annualized mean active return / std of active returns
  (empyrical ``excess_sharpe`` times ``sqrt(periods_per_year)``; both non-annualized
  in empyrical and quantstats).
- VaR / CVaR are historical at ``cutoff=0.05``: the 5th percentile (numpy linear
  interpolation) and the mean of returns at or below it (empyrical).
- ``alpha`` / ``beta`` are empyrical's: OLS beta of excess returns on excess benchmark
  returns; alpha annualized as ``(1 + mean daily alpha) ** periods_per_year - 1``.
- Warm-up days are not performance: :func:`summary` starts every metric (and the
  reported period, ``start``) at the first day with a position (:func:`active_start`);
  the zero-exposure sessions before it only count in ``warmup_periods``.
- Every metric has a unit, declared once in :data:`METRIC_UNITS` (``fraction`` shown
  as a percentage, ``ratio``, ``days`` = sessions of the series, ``count``, ``times``
  per year, ``date``); :func:`format_metric` is the one formatter the CLI, the results
  API (which returns the units with the values) and the dashboards use.
- Display series (:func:`equity_curve`, :func:`drawdown`, :func:`rolling_volatility`,
  :func:`rolling_sharpe`, :func:`monthly_returns`, :func:`yearly_returns`,
  :func:`top_holdings`) live here too, on the same conventions as the scalars: the
  last value of :func:`drawdown`'s running minimum is :func:`max_drawdown`, the
  rolling figures are :func:`annual_volatility` and :func:`sharpe` over a window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown",
           "drawdown_stats", "calmar", "hit_rate", "alpha_beta", "information_ratio",
           "value_at_risk", "conditional_value_at_risk", "monthly_returns", "yearly_returns",
           "summary", "active_start", "sweep_metrics", "sweep_metrics_numpy", "METRIC_UNITS",
           "UNIT_FORMATS", "metric_unit", "metric_units", "format_value", "format_metric",
           "equity_curve", "drawdown", "rolling_volatility", "rolling_sharpe", "top_holdings"]

#: the unit of every metric this package reports (one place; see the module docstring)
METRIC_UNITS: dict[str, str] = {
    "total_return": "fraction", "cagr": "fraction", "annual_return": "fraction",
    "annual_volatility": "fraction", "volatility": "fraction", "max_drawdown": "fraction",
    "hit_rate": "fraction", "var_95": "fraction", "cvar_95": "fraction",
    "risk_free": "fraction", "alpha": "fraction", "avg_gross_exposure": "fraction",
    "avg_turnover": "fraction", "total_costs": "fraction",
    "sharpe": "ratio", "sortino": "ratio", "calmar": "ratio", "beta": "ratio",
    "information_ratio": "ratio", "sharpe_ci_low": "ratio", "sharpe_ci_high": "ratio",
    "max_drawdown_duration": "days", "max_drawdown_recovery": "days",
    "longest_drawdown_duration": "days",
    "n_periods": "count", "warmup_periods": "count", "periods_per_year": "count",
    "avg_holdings": "count",
    "turnover_annual": "times",
    "start": "date", "end": "date",
}

#: display of a value by its unit (``None`` and NaN show as an em dash)
UNIT_FORMATS: dict[str, Any] = {
    "fraction": lambda x: f"{x * 100:.2f}%",
    "ratio": lambda x: f"{x:.2f}",
    "days": lambda x: f"{x:.0f} days",
    "count": lambda x: f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}",
    "times": lambda x: f"{x:.1f}x",
    "number": lambda x: f"{x:.4g}",
}


def metric_unit(name: str) -> str:
    """Unit of a metric by name (``number`` if it is not in :data:`METRIC_UNITS`).

    Examples
    --------
    >>> metric_unit("max_drawdown_duration"), metric_unit("sharpe"), metric_unit("xyz")
    ('days', 'ratio', 'number')
    """
    return METRIC_UNITS.get(name, "number")


def metric_units(metrics: dict[str, Any]) -> dict[str, str]:
    """``{name: unit}`` for every key of a metrics dict (what the results API returns).

    Examples
    --------
    >>> metric_units({"cagr": 0.1, "n_periods": 10})
    {'cagr': 'fraction', 'n_periods': 'count'}
    """
    return {k: metric_unit(k) for k in metrics}


def format_value(value: Any, unit: str, digits: int | None = None) -> str:
    """Display text of ``value`` in ``unit`` (see :data:`UNIT_FORMATS`).

    ``digits`` overrides the decimals of a ``fraction`` (in percent), ``ratio`` or
    ``number``.

    Examples
    --------
    >>> format_value(0.1234, "fraction"), format_value(300, "days"), format_value(None, "ratio")
    ('12.34%', '300 days', '—')
    >>> format_value(0.01234, "ratio", digits=3), format_value(float("nan"), "fraction")
    ('0.012', '—')
    """
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    if unit == "date" or isinstance(value, str):
        return str(value)[:10] if unit == "date" else str(value)
    x = float(value)
    if not np.isfinite(x):
        return "—"
    if digits is not None and unit in ("fraction", "ratio", "number"):
        return f"{x * 100:.{digits}f}%" if unit == "fraction" else f"{x:.{digits}f}"
    return str(UNIT_FORMATS.get(unit, UNIT_FORMATS["number"])(x))


def format_metric(name: str, value: Any) -> str:
    """Display text of one metric: :func:`format_value` in :func:`metric_unit` of ``name``.

    Examples
    --------
    >>> format_metric("cagr", 0.1234), format_metric("sharpe", 1.5)
    ('12.34%', '1.50')
    >>> format_metric("max_drawdown_duration", 300), format_metric("turnover_annual", 13.2)
    ('300 days', '13.2x')
    """
    return format_value(value, metric_unit(name))


def _a(r: Any) -> np.ndarray:
    return np.asarray(r, dtype=float)


def total_return(r: Any) -> np.ndarray | float:
    """Compounded return over the whole period.

    Examples
    --------
    >>> round(float(total_return([0.1, -0.1])), 6)
    -0.01
    """
    return np.prod(1.0 + np.nan_to_num(_a(r)), axis=0) - 1.0


def cagr(r: Any, periods_per_year: int = 252) -> np.ndarray | float:
    """Compound annual growth rate from ``len(r)`` periods (empyrical ``annual_return``)."""
    a = np.nan_to_num(_a(r))
    years = a.shape[0] / periods_per_year
    growth = np.prod(1.0 + a, axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(growth > 0, growth ** (1.0 / years), 0.0) - 1.0


def annual_volatility(r: Any, periods_per_year: int = 252) -> np.ndarray | float:
    """Annualized sample standard deviation."""
    return np.nanstd(_a(r), axis=0, ddof=1) * np.sqrt(periods_per_year)


def sharpe(r: Any, risk_free: float = 0.0, periods_per_year: int = 252) -> np.ndarray | float:
    """Annualized Sharpe ratio of per-period excess returns.

    Examples
    --------
    >>> round(float(sharpe([0.01, 0.02, 0.0, 0.01])), 4)
    19.4422
    """
    x = _a(r) - risk_free
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(x, axis=0) / np.nanstd(x, axis=0, ddof=1) * np.sqrt(periods_per_year)


def sortino(r: Any, risk_free: float = 0.0, periods_per_year: int = 252) -> np.ndarray | float:
    """Annualized Sortino ratio (downside deviation over all periods)."""
    x = _a(r) - risk_free
    down = np.sqrt(np.nanmean(np.minimum(x, 0.0) ** 2, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(x, axis=0) * periods_per_year / (down * np.sqrt(periods_per_year))


def _wealth(r: Any) -> np.ndarray:
    a = np.nan_to_num(_a(r))
    w = np.cumprod(1.0 + a, axis=0)
    return np.concatenate([np.ones((1,) + a.shape[1:]), w], axis=0)


def max_drawdown(r: Any) -> np.ndarray | float:
    """Largest peak-to-trough loss of the wealth curve (from the starting capital), <= 0.

    Examples
    --------
    >>> round(float(max_drawdown([-0.1, 0.05, -0.2, 0.5])), 4)
    -0.244
    """
    w = _wealth(r)
    peak = np.maximum.accumulate(w, axis=0)
    return np.min(w / peak - 1.0, axis=0)


def drawdown_stats(r: pd.Series | Any) -> dict[str, Any]:
    """Max drawdown, its peak/trough/recovery positions, and durations (in periods).

    ``duration`` is peak to recovery (or to the end if not recovered), ``recovery``
    trough to recovery (NaN if not recovered); ``longest_duration`` is the longest
    time spent under a previous peak.

    Examples
    --------
    >>> d = drawdown_stats([0.1, -0.5, 0.2, 1.0, -0.01])
    >>> d["peak"], d["trough"], d["recovered"], d["duration"], d["recovery"]
    (1, 2, 4, 3, 2)
    """
    w = _wealth(r)
    peak = np.maximum.accumulate(w)
    dd = w / peak - 1.0
    trough = int(np.argmin(dd))
    pk = int(np.argmax(w[: trough + 1])) if trough > 0 else 0
    after = np.nonzero(w[trough:] >= w[pk])[0]
    rec = trough + int(after[0]) if len(after) and dd[trough] < 0 else None
    under = dd < 0
    longest, run = 0, 0
    for u in under:
        run = run + 1 if u else 0
        longest = max(longest, run)
    return {"max_drawdown": float(dd[trough]), "peak": pk, "trough": trough, "recovered": rec,
            "duration": (rec if rec is not None else len(w) - 1) - pk,
            "recovery": (rec - trough) if rec is not None else float("nan"),
            "longest_duration": longest}


def calmar(r: Any, periods_per_year: int = 252) -> np.ndarray | float:
    """CAGR divided by the absolute max drawdown (NaN if no drawdown)."""
    mdd = np.abs(max_drawdown(r))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mdd > 0, cagr(r, periods_per_year) / np.where(mdd > 0, mdd, 1), np.nan)


def hit_rate(r: Any) -> np.ndarray | float:
    """Share of non-zero periods with a positive return."""
    a = _a(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a > 0).sum(axis=0) / ((a != 0) & np.isfinite(a)).sum(axis=0)


def alpha_beta(r: Any, benchmark: Any, risk_free: float = 0.0, periods_per_year: int = 252
               ) -> tuple[float, float]:
    """Annualized alpha and beta versus ``benchmark`` (empyrical ``alpha_beta``)."""
    y, x = _a(r) - risk_free, _a(benchmark) - risk_free
    ok = np.isfinite(y) & np.isfinite(x)
    y, x = y[ok], x[ok]
    xm = x - x.mean()
    beta = float((xm * (y - y.mean())).sum() / (xm * xm).sum())
    alpha = float((1 + np.mean(y - beta * x)) ** periods_per_year - 1)
    return alpha, beta


def information_ratio(r: Any, benchmark: Any, periods_per_year: int = 252) -> float:
    """Annualized mean active return over its sample standard deviation."""
    act = _a(r) - _a(benchmark)
    return float(np.nanmean(act) / np.nanstd(act, ddof=1) * np.sqrt(periods_per_year))


def value_at_risk(r: Any, cutoff: float = 0.05) -> float:
    """Historical VaR: the ``cutoff`` quantile of returns (a negative number for losses)."""
    a = _a(r)
    return float(np.percentile(a[np.isfinite(a)], 100 * cutoff))


def conditional_value_at_risk(r: Any, cutoff: float = 0.05) -> float:
    """Historical CVaR (expected shortfall): mean of returns at or below the VaR."""
    a = _a(r)
    a = a[np.isfinite(a)]
    return float(a[a <= np.percentile(a, 100 * cutoff)].mean())


def monthly_returns(r: pd.Series) -> pd.DataFrame:
    """Compounded returns per month: a year x month table (columns 1..12, NaN if absent).

    Examples
    --------
    >>> r = pd.Series([0.1, 0.1], index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    >>> t = monthly_returns(r)
    >>> round(float(t.loc[2024, 1]), 4), t.shape
    (0.21, (1, 12))
    """
    g = (1 + r.fillna(0.0)).groupby([r.index.year, r.index.month]).prod() - 1
    g.index.names = ["year", "month"]
    return g.unstack("month").reindex(columns=pd.RangeIndex(1, 13, name="month"))


def yearly_returns(r: pd.Series) -> pd.Series:
    """Compounded returns per calendar year.

    Examples
    --------
    >>> r = pd.Series([0.1, 0.1], index=pd.to_datetime(["2023-12-29", "2024-01-02"]))
    >>> yearly_returns(r).round(2).to_dict()
    {2023: 0.1, 2024: 0.1}
    """
    g = (1 + r.fillna(0.0)).groupby(r.index.year).prod() - 1
    g.index.name = "year"
    return g


def equity_curve(r: pd.Series) -> pd.Series:
    """Growth of 1 from simple per-period returns (NaN counts as 0), same index as ``r``.

    Examples
    --------
    >>> equity_curve(pd.Series([0.1, -0.5])).round(3).tolist()
    [1.1, 0.55]
    """
    return pd.Series(_wealth(r.to_numpy())[1:], index=r.index, name=r.name)


def drawdown(r: pd.Series) -> pd.Series:
    """Underwater curve: wealth over its running peak (the starting capital included) - 1.

    Its minimum is :func:`max_drawdown` of ``r``.

    Examples
    --------
    >>> drawdown(pd.Series([0.1, -0.5, 0.2])).round(3).tolist()
    [0.0, -0.5, -0.4]
    >>> float(drawdown(pd.Series([-0.1, 0.05])).min()) == float(max_drawdown([-0.1, 0.05]))
    True
    """
    w = _wealth(r.to_numpy())
    return pd.Series((w / np.maximum.accumulate(w) - 1.0)[1:], index=r.index, name=r.name)


def rolling_volatility(r: pd.Series, window: int = 126, periods_per_year: int = 252
                       ) -> pd.Series:
    """:func:`annual_volatility` over a trailing ``window`` (NaN until it is full).

    Examples
    --------
    >>> rolling_volatility(pd.Series([0.01, -0.01] * 10), window=4).iloc[-1].round(4)
    np.float64(0.1833)
    """
    return r.rolling(window).std(ddof=1) * np.sqrt(periods_per_year)


def rolling_sharpe(r: pd.Series, window: int = 126, periods_per_year: int = 252) -> pd.Series:
    """:func:`sharpe` over a trailing ``window`` (zero risk-free; NaN where flat).

    Examples
    --------
    >>> s = rolling_sharpe(pd.Series([0.02, 0.0] * 10), window=4)
    >>> round(float(s.iloc[-1]), 3) == round(float(sharpe([0.02, 0.0] * 2)), 3)
    True
    """
    std = r.rolling(window).std(ddof=1)
    return r.rolling(window).mean() / std.where(std > 0) * np.sqrt(periods_per_year)


def top_holdings(weights: pd.DataFrame, n: int = 10, freq: str = "ME") -> pd.DataFrame:
    """Weights of the ``n`` assets of largest mean absolute weight, sampled per ``freq``.

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


def active_start(net: Any, exposures: pd.DataFrame | None = None,
                 turnover: Any = None) -> int | None:
    """Row of the first day with a position, where performance starts (None: never).

    The first row whose end-of-session gross exposure is non-zero; without
    ``exposures``, the first row with turnover (a position is traded into); without
    either, the first non-zero return. That day counts (it carries the cost of the
    first trade); the warm-up rows before it do not.

    Examples
    --------
    >>> active_start([0.0, 0.0, -0.001, 0.02], turnover=[0.0, 0.0, 1.0, 0.0])
    2
    >>> active_start([0.0, 0.0]) is None
    True
    """
    if exposures is not None:
        held = np.nan_to_num(exposures["gross"].to_numpy(dtype=float)) != 0
    elif turnover is not None:
        held = np.nan_to_num(_a(turnover)) != 0
    else:
        held = np.nan_to_num(_a(net)) != 0
    return int(np.argmax(held)) if held.any() else None


def summary(net: pd.Series, benchmark: pd.Series | None = None,
            turnover: pd.Series | None = None, exposures: pd.DataFrame | None = None,
            periods_per_year: int = 252, risk_free: float = 0.0) -> dict[str, Any]:
    """All scalar metrics of a daily return series as a plain dict (``Result.metrics``).

    Warm-up days are not performance: every metric is computed from the first day
    with a position (:func:`active_start`) to the end; ``start``/``end`` are that
    period, ``warmup_periods`` the sessions left out before it. A series that never
    holds a position has NaN metrics and ``n_periods == 0``. Each key's unit is in
    :data:`METRIC_UNITS`.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=5, name="date")
    >>> net = pd.Series([0.0, 0.0, -0.001, 0.02, -0.01], index=idx)
    >>> m = summary(net, turnover=pd.Series([0, 0, 1.0, 0, 0], index=idx))
    >>> m["start"], m["warmup_periods"], m["n_periods"], round(m["total_return"], 4)
    ('2024-01-03', 2, 3, 0.0088)
    """
    first = active_start(net, exposures, turnover)
    cut = len(net) if first is None else first
    net = net.iloc[cut:]
    r = net.to_numpy(dtype=float)
    idx = net.index
    m: dict[str, Any] = {
        "start": _day(idx[0]) if len(idx) else None, "end": _day(idx[-1]) if len(idx) else None,
        "warmup_periods": int(cut), "n_periods": int(len(r)),
        "periods_per_year": periods_per_year, "risk_free": risk_free,
    }
    m.update(_return_metrics(r, periods_per_year, risk_free) if len(r) else
             dict.fromkeys(RETURN_METRICS, float("nan")))
    if turnover is not None:
        t = _a(turnover)[cut:]
        m["turnover_annual"] = float(np.nanmean(t) * periods_per_year) if len(t) else np.nan
    if exposures is not None:
        e = exposures.iloc[cut:]
        m["avg_holdings"] = float(e["n_holdings"].mean())
        m["avg_gross_exposure"] = float(e["gross"].mean())
    if benchmark is not None:
        b = _a(benchmark)[cut:]
        alpha, beta = alpha_beta(r, b, risk_free, periods_per_year) if len(r) > 1 else (
            np.nan, np.nan)
        m.update(alpha=alpha, beta=beta, information_ratio=information_ratio(
            r, b, periods_per_year) if len(r) > 1 else np.nan)
    return m


def _day(ts: Any) -> str:
    return pd.Timestamp(ts).date().isoformat() if isinstance(ts, (pd.Timestamp, np.datetime64)
                                                          ) else str(ts)


#: the metrics of :func:`_return_metrics` (NaN when there is no period with a position)
RETURN_METRICS = ("total_return", "cagr", "annual_return", "annual_volatility", "sharpe",
                  "sortino", "max_drawdown", "max_drawdown_duration", "max_drawdown_recovery",
                  "longest_drawdown_duration", "calmar", "hit_rate", "var_95", "cvar_95")


def _return_metrics(r: np.ndarray, periods_per_year: int, risk_free: float) -> dict[str, Any]:
    dd = drawdown_stats(r)
    return {
        "total_return": float(total_return(r)), "cagr": float(cagr(r, periods_per_year)),
        "annual_return": float(cagr(r, periods_per_year)),
        "annual_volatility": float(annual_volatility(r, periods_per_year)),
        "sharpe": float(sharpe(r, risk_free, periods_per_year)),
        "sortino": float(sortino(r, risk_free, periods_per_year)),
        "max_drawdown": dd["max_drawdown"], "max_drawdown_duration": dd["duration"],
        "max_drawdown_recovery": dd["recovery"],
        "longest_drawdown_duration": dd["longest_duration"],
        "calmar": float(calmar(r, periods_per_year)), "hit_rate": float(hit_rate(r)),
        "var_95": value_at_risk(r), "cvar_95": conditional_value_at_risk(r),
    }


def sweep_metrics(r: np.ndarray, periods_per_year: int = 252) -> np.ndarray:
    """Total return, max drawdown and Sharpe for each column of ``r`` (T, S) in one pass.

    A fused single-pass kernel (numba, on every core:
    :func:`quantlib.backtest.parallel.sweep_metrics_fast`) for sweeps of thousands of
    series, reading row- or column-major input as it is; pinned to
    :func:`sweep_metrics_numpy` by the parity tests. Returns an ``(S, 3)`` array.

    Examples
    --------
    >>> r = np.array([[0.1, 0.0], [-0.1, 0.01], [0.05, 0.0]])
    >>> np.allclose(sweep_metrics(r), sweep_metrics_numpy(r))
    True
    """
    from quantlib.backtest.parallel import sweep_metrics_fast

    return sweep_metrics_fast(r, float(periods_per_year))


def sweep_metrics_numpy(r: np.ndarray, periods_per_year: int = 252) -> np.ndarray:
    """Plain numpy version of :func:`sweep_metrics` (reference)."""
    return np.column_stack([total_return(r), max_drawdown(r),
                            sharpe(np.nan_to_num(r), 0.0, periods_per_year)])
