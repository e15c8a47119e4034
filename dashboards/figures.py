"""Every plot of one result's tear sheet as ONE Bokeh layout (one root, one document).

The layout is what :mod:`dashboards.plot_cache` serializes once per result: equity vs
benchmark (linear and log figures on one shared source, swapped by the page's
log-scale toggle), underwater drawdown, yearly returns, the monthly heatmap (month names
and a yearly column), the distribution of daily returns with VaR/CVaR, rolling Sharpe,
volatility and beta, exposure and turnover, top holdings (by symbol and name),
cumulative costs, and factor IC and quantile returns when the result stores them. The
benchmark is the one :func:`tear_sheet_inputs` resolves
(:func:`quantlib.serving.views.tearstats.default_benchmark`). One root keeps BokehJS to a single
document and a single layout pass in the browser.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from typing import Any

import pandas as pd
from bokeh.layouts import column, row

from dashboards import plots
from quantlib.backtest import metrics as an
from quantlib.results.view import ResultsView
from quantlib.serving.views import tearstats as ts

__all__ = ["tear_sheet_layout", "tear_sheet_inputs", "benchmark_kind", "plot_count",
           "sections_json", "section_height"]

_INPUTS: OrderedDict[tuple[str, str], tuple[pd.DataFrame, str]] = OrderedDict()
_INPUTS_LOCK = threading.Lock()


def benchmark_kind() -> str:
    """The platform's tear-sheet benchmark (``QUANTLIB_TEARSHEET_BENCHMARK``, else ``auto``).

    Examples
    --------
    >>> os.environ.pop("QUANTLIB_TEARSHEET_BENCHMARK", None) or benchmark_kind()
    'auto'
    """
    return os.environ.get("QUANTLIB_TEARSHEET_BENCHMARK", "auto")


def tear_sheet_inputs(view: ResultsView, rid: str) -> tuple[pd.DataFrame, str]:
    """``rid``'s returns with the tear sheet's ``benchmark`` column, and the benchmark's label.

    Results are immutable, so the answer (a catalog index can take a data read) is kept
    for the last few results the page, the tables and the plots asked about.
    """
    key = (rid, benchmark_kind())
    with _INPUTS_LOCK:
        if key in _INPUTS:
            return _INPUTS[key]
    returns = view.returns(rid)
    bench, label = ts.default_benchmark(view.meta(rid), returns, key[1])
    returns = returns.drop(columns=["benchmark"], errors="ignore")
    if bench is not None:
        returns["benchmark"] = bench.reindex(returns.index)
    with _INPUTS_LOCK:
        _INPUTS[key] = (returns, label)
        while len(_INPUTS) > 16:
            _INPUTS.popitem(last=False)
    return returns, label


def _rolling(returns: pd.DataFrame) -> list[Any]:
    net = returns["net"]
    out = [plots.line_chart(an.rolling_sharpe(net).to_frame("rolling Sharpe"),
                            "Rolling Sharpe (6 months)"),
           plots.line_chart(an.rolling_volatility(net).to_frame("rolling volatility"),
                            "Rolling volatility (6 months, annualized)", y_pct=True)]
    if "benchmark" in returns:
        out.append(plots.line_chart(ts.rolling_beta(net, returns["benchmark"]).to_frame(
            "rolling beta"), "Rolling beta to the benchmark (6 months)"))
    return out


def _holdings(view: ResultsView, rid: str, meta: dict[str, Any]) -> Any:
    top = an.top_holdings(view.weights(rid), n=10)
    labels = ts.asset_labels([str(c) for c in top.columns], meta.get("snapshot"))
    top.columns = [labels.get(str(c), str(c)) for c in top.columns]
    return plots.stacked_area(top, "Top 10 holdings (month end)")


def _exposure(returns: pd.DataFrame, exposures: pd.DataFrame | None) -> list[Any]:
    out = []
    if exposures is not None:
        cols = [c for c in ("long", "short", "gross", "net") if c in exposures]
        if cols:
            out.append(plots.line_chart(exposures[cols], "Exposure", y_pct=True))
    turnover = returns["turnover"].rolling(21, min_periods=1).mean()
    out.append(plots.line_chart(turnover.to_frame("turnover"), "Turnover (21-day average)",
                                y_pct=True))
    return out


def _factor(view: ResultsView, rid: str) -> list[Any]:
    out = []
    ic = view.optional_frame(rid, "factor_ic.parquet")
    if ic is not None and len(ic.columns):
        out.append(plots.line_chart(ic, "Factor IC"))
    qr = view.optional_frame(rid, "quantile_returns.parquet")
    if qr is not None and len(qr.columns) and len(qr) > 1:
        out.append(plots.line_chart(an.equity_curve(qr), "Quantile returns (growth of 1)"))
    return out


def tear_sheet_layout(view: ResultsView, rid: str) -> Any:
    """All plots of result ``rid`` in one Bokeh ``column``.

    Parameters
    ----------
    view : ResultsView
        The results store the frames are read from.
    rid : str
        Result id (the caller has already checked the viewer may see it).
    """
    returns, label = tear_sheet_inputs(view, rid)
    meta = view.meta(rid)
    net = returns["net"]
    oos = "out of sample, walk-forward" if meta.get("sample") == "out_of_sample" else ""
    lin, log = plots.equity_figures(returns, bench_label=label, note=oos)
    hist, marks = ts.return_distribution(net)
    costs = plots.line_chart(returns["costs"].cumsum().to_frame("cumulative costs"),
                             "Costs (cumulative, fraction of capital)", y_pct=True)
    children = [
        column(lin, log, sizing_mode="stretch_width"),  # one section: they share a source
        plots.area_chart(an.drawdown(net).rename("drawdown"), "Underwater (drawdown)"),
        row(plots.bar_chart(an.yearly_returns(net), "Yearly returns"),
            plots.histogram(hist, marks, "Distribution of daily returns"),
            sizing_mode="stretch_width"),
        plots.heatmap(an.monthly_returns(net), "Monthly returns",
                      yearly=an.yearly_returns(net)),
        row(*_rolling(returns), sizing_mode="stretch_width"),
        row(*_exposure(returns, view.optional_frame(rid, "exposures.parquet")),
            sizing_mode="stretch_width"),
        row(_holdings(view, rid, meta), costs, sizing_mode="stretch_width"),
        *_factor(view, rid),
    ]
    return column(*children, sizing_mode="stretch_width", name="tear_sheet_plots")


def plot_count(layout: Any) -> int:
    """Figures drawn at first paint (visible plots) in a tear-sheet layout.

    Examples
    --------
    >>> from bokeh.plotting import figure
    >>> hidden = figure(visible=False)
    >>> plot_count(column(figure(), row(figure(), hidden)))
    2
    """
    from bokeh.models import Plot

    return sum(1 for m in layout.select({"type": Plot}) if m.visible)


def section_height(model: Any) -> int:
    """Pixels a tear-sheet section takes once drawn: what its placeholder reserves.

    Examples
    --------
    >>> from bokeh.plotting import figure
    >>> section_height(column(figure(height=280), row(figure(height=200), figure(height=250))))
    530
    >>> section_height(figure(height=280, visible=False))
    0
    """
    from bokeh.models import Column, Plot, Row

    if isinstance(model, Plot):
        return int(model.height or 0) if model.visible else 0
    heights = [section_height(c) for c in getattr(model, "children", [])]
    if isinstance(model, Row):
        return max(heights, default=0)
    return sum(heights) if isinstance(model, Column) else 0


def sections_json(layout: Any) -> str:
    """The tear-sheet ``layout``'s sections as a JSON list, one Bokeh document each.

    Each entry is ``{"height": pixels, "plots": visible figures, "item": json_item}``; the
    page embeds the sections in view first and the rest after (or as they scroll into
    view), so the first screen does not wait for BokehJS to build every figure
    (``bench/RESULTS.md``). Models shared by two sections would be sent twice: the
    equity figures' shared source lives in one section.

    Examples
    --------
    >>> from bokeh.plotting import figure
    >>> out = json.loads(sections_json(column(figure(height=100), figure(height=90))))
    >>> [(s["height"], s["plots"]) for s in out], sorted(out[0]["item"])[:2]
    ([(100, 1), (90, 1)], ['doc', 'root_id'])
    """
    from bokeh.embed import json_item

    children = list(layout.children)
    layout.children = []  # each section becomes the root of its own document
    return json.dumps([{"height": section_height(c), "plots": plot_count(c),
                        "item": json_item(c)} for c in children], separators=(",", ":"))
