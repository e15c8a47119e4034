"""Look rather than read: notebook views of results, sweeps and factor analyses.

Each function returns a Panel object (HoloViews plots declared with hvplot inside), which
a notebook renders as interactive Bokeh plots; the pure-data parts (the summary table,
the heatmap's grid, the drawdown series) are separate functions so they are testable
without a browser.

- :func:`result_view` (also ``Result.plot()`` and a ``Result`` shown as a cell's value):
  headline metrics, equity (growth of 1, net and gross) and drawdown;
- :func:`sweep_heatmap`: one metric of a two-parameter sweep as a heatmap;
- :func:`factor_view`: mean return per quantile, cumulative quantile returns, and the
  information coefficient (daily and its rolling mean) per horizon.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from quantlib.backtest.metrics import drawdown, format_metric, format_value
from quantlib.errors import BacktestError

__all__ = ["result_view", "summary_html", "drawdown", "sweep_heatmap", "sweep_grid",
           "factor_view", "HEADLINE"]

#: the metrics a result's summary shows, with their label (formatted by format_metric)
HEADLINE: dict[str, str] = {
    "cagr": "CAGR", "annual_volatility": "Volatility", "sharpe": "Sharpe",
    "sortino": "Sortino", "max_drawdown": "Max drawdown", "calmar": "Calmar",
    "turnover_annual": "Turnover / yr",
}


def summary_html(result: Any) -> str:
    """A one-line HTML table of the result's headline metrics, its strategy and data version.

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> from quantlib import backtest
    >>> r = backtest.run("xs_momentum", make_dataset(10, 160, seed=1, markets=()), window=40)
    >>> "Sharpe" in summary_html(r) and "xs_momentum" in summary_html(r)
    True
    """
    cells = "".join(
        f"<td style='padding:2px 10px'><div style='color:#666;font-size:0.8em'>{label}</div>"
        f"<div style='font-weight:600'>{html.escape(format_metric(key, result.metrics[key]))}"
        "</div></td>" for key, label in HEADLINE.items() if key in result.metrics)
    p = result.provenance
    params = ", ".join(f"{k}={v}" for k, v in sorted(result.params.items())
                       if isinstance(v, int | float | str) and not isinstance(v, bool))
    title = html.escape(f"{p.get('strategy', '?')} ({params[:120]})")
    sub = html.escape(f"data {p.get('snapshot', '?')} · {len(result.returns)} sessions · "
                      f"result {result.result_id}")
    return (f"<div class='ql-result'><b>{title}</b> <span style='color:#666'>{sub}</span>"
            f"<table><tr>{cells}</tr></table></div>")


def result_view(result: Any, *, height: int = 220, width: int = 700) -> Any:
    """Summary, equity (net and gross) and drawdown of a backtest result, for a notebook.

    Parameters
    ----------
    result : quantlib.backtest.Result
    height, width : int
        Size of each plot in pixels.
    """
    import hvplot.pandas  # noqa: F401 - registers .hvplot
    import panel as pn

    r = result.returns
    equity = (1 + r[[c for c in ("net", "gross", "benchmark") if c in r]].fillna(0.0)).cumprod()
    equity_plot = equity.hvplot.line(title="Growth of 1", ylabel="growth of 1", xlabel="",
                                     height=height, width=width)
    dd = drawdown(r["net"]).rename("drawdown")
    dd_plot = dd.hvplot.area(title="Drawdown (net)", ylabel="drawdown", xlabel="",
                             height=int(height * 0.7), width=width, color="#c0392b",
                             alpha=0.5)
    return pn.Column(pn.pane.HTML(summary_html(result)), equity_plot, dd_plot)


def sweep_grid(table: pd.DataFrame, x: str, y: str, metric: str = "sharpe") -> pd.DataFrame:
    """The ``metric`` of a sweep as a grid: rows ``y`` values, columns ``x`` values.

    Raises
    ------
    BacktestError
        If a column is missing, or one (x, y) pair holds several rows (a third parameter
        varies: filter the table first).

    Examples
    --------
    >>> t = pd.DataFrame({"window": [20, 20, 60, 60], "skip": [0, 5, 0, 5],
    ...                   "sharpe": [0.1, 0.2, 0.3, 0.4]})
    >>> float(sweep_grid(t, "window", "skip").loc[5, 60])
    0.4
    """
    missing = [c for c in (x, y, metric) if c not in table.columns]
    if missing:
        raise BacktestError("a sweep heatmap needs its two parameters and the metric as columns",
                            found=f"missing {missing}; columns {list(table.columns)}",
                            fix="pass x=, y= parameter names and metric= a metric column",
                            field=",".join(missing))
    if table.duplicated([x, y]).any():
        others = [c for c in table.columns if c not in (x, y, metric)
                  and table.groupby([x, y])[c].nunique().max() > 1]
        raise BacktestError(f"each ({x}, {y}) pair must appear once in the sweep table",
                            found=f"repeated pairs; other varying columns {others[:5]}",
                            fix="filter the table to one value of the other parameters first")
    return table.pivot(index=y, columns=x, values=metric).sort_index().sort_index(axis=1)


def sweep_heatmap(table: pd.DataFrame, x: str, y: str, metric: str = "sharpe", *,
                  cmap: str = "RdYlGn", height: int = 300, width: int = 500) -> Any:
    """One call from a sweep table to a heatmap of ``metric`` over parameters ``x`` and ``y``."""
    import holoviews as hv
    import hvplot.pandas  # noqa: F401

    grid = sweep_grid(table, x, y, metric)
    long = grid.stack().rename(metric).reset_index()
    long[x], long[y] = long[x].astype(str), long[y].astype(str)
    heat = long.hvplot.heatmap(x=x, y=y, C=metric, cmap=cmap, height=height, width=width,
                               title=f"{metric} by {x} and {y}", colorbar=True)
    labels = hv.Labels(long.assign(text=long[metric].map(lambda v: f"{v:.2f}")),
                       kdims=[x, y], vdims="text")
    return heat * labels


def _ic_frame(series_by_horizon: dict[int, pd.Series], window: int) -> pd.DataFrame:
    cols = {}
    for h, s in series_by_horizon.items():
        cols[f"IC {h}d"] = s
        cols[f"IC {h}d ({window}d mean)"] = s.rolling(window, min_periods=window // 2).mean()
    return pd.DataFrame(cols)


def factor_view(report: dict[str, Any], *, rolling: int = 63, height: int = 250,
                width: int = 700) -> Any:
    """Quantile returns and IC plots of :func:`quantlib.backtest.factor_analysis`'s report.

    Raises
    ------
    BacktestError
        If ``report`` is not a factor-analysis report.
    """
    import hvplot.pandas  # noqa: F401
    import panel as pn

    needed = {"quantile_mean", "quantile_returns", "ic", "ic_summary"}
    if not isinstance(report, dict) or not needed <= set(report):
        found = sorted(report) if isinstance(report, dict) else type(report).__name__
        raise BacktestError("factor_view takes the dict factor_analysis() returns",
                            found=str(found), fix="pass backtest.factor_analysis(signal, data)")
    mean = report["quantile_mean"].drop("spread", errors="ignore") * 1e4
    bars = mean.rename("mean forward return (bps)").rename_axis("quantile").reset_index()
    bars["quantile"] = bars["quantile"].astype(str)
    qbar = bars.hvplot.bar(x="quantile", y="mean forward return (bps)", height=height,
                           width=width // 2, title="Mean return by quantile (bps)")
    cum = (1 + report["quantile_returns"].drop(columns="spread").fillna(0.0)).cumprod()
    cum.columns = [f"Q{c}" for c in cum.columns]
    qcum = cum.hvplot.line(height=height, width=width // 2 + 100, xlabel="",
                           title="Growth of 1 by quantile")
    ic = _ic_frame(report["ic"], rolling)
    ic_plot = ic.hvplot.line(height=height, width=width, xlabel="", ylabel="IC",
                             title=f"Information coefficient (and its {rolling}-day mean)")
    rows = "".join(
        f"<tr><td>{h}d</td><td>{format_value(s.get('mean', np.nan), 'ratio', 3)}</td>"
        f"<td>{format_value(s.get('t_stat', s.get('tstat', np.nan)), 'ratio')}</td></tr>"
        for h, s in report["ic_summary"].items())
    table = pn.pane.HTML("<table><tr><th>horizon</th><th>mean IC</th><th>t</th></tr>"
                         f"{rows}</table>")
    return pn.Column(pn.Row(qbar, qcum), ic_plot, table)
