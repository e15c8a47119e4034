"""Every plot of one result's tear sheet as ONE Bokeh layout (one root, one document).

The layout is what :mod:`dashboards.plot_cache` serializes once per result: equity vs
benchmark (linear and log figures on one shared source, swapped by the page's
log-scale toggle), underwater drawdown, yearly returns, the monthly heatmap, rolling Sharpe and
volatility, exposure and turnover, top holdings, cumulative costs, and factor IC and
quantile returns when the result stores them. One root keeps BokehJS to a single
document and a single layout pass in the browser.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from bokeh.layouts import column, row

from dashboards import plots
from quantlib.serving import analytics as an
from quantlib.serving.store import ResultsView

__all__ = ["tear_sheet_layout", "plot_count"]


def _rolling(net: pd.Series) -> list[Any]:
    return [plots.line_chart(an.rolling_sharpe(net).to_frame("rolling Sharpe"),
                             "Rolling Sharpe (6 months)"),
            plots.line_chart(an.rolling_volatility(net).to_frame("rolling volatility"),
                             "Rolling volatility (6 months, annualized)", y_pct=True)]


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
    returns = view.returns(rid)
    net = returns["net"]
    lin, log = plots.equity_figures(returns)
    costs = plots.line_chart(returns["costs"].cumsum().to_frame("cumulative costs"),
                             "Costs (cumulative, fraction of capital)", y_pct=True)
    children = [
        lin, log,
        plots.area_chart(an.drawdown(net).rename("drawdown"), "Underwater (drawdown)"),
        row(plots.bar_chart(an.yearly_returns(net), "Yearly returns"),
            plots.heatmap(an.monthly_returns(net), "Monthly returns"),
            sizing_mode="stretch_width"),
        row(*_rolling(net), sizing_mode="stretch_width"),
        row(*_exposure(returns, view.optional_frame(rid, "exposures.parquet")),
            sizing_mode="stretch_width"),
        row(plots.stacked_area(an.top_holdings(view.weights(rid), n=10),
                               "Top 10 holdings (month end)"), costs, sizing_mode="stretch_width"),
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
