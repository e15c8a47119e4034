"""Bokeh figures for the tear sheet.

Built directly on Bokeh (``figure`` + ``ColumnDataSource``) rather than through
HoloViews: on a 10-year daily result HoloViews' conversion cost ~16 s of server time for
the tear sheet's ten plots (8.7 s for the annotated heatmap alone), Bokeh ~0.5 s, and the
page must render within 2 s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from bokeh.models import (
    BasicTicker,
    ColorBar,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    NumeralTickFormatter,
)
from bokeh.palettes import Category10_10, RdYlGn11
from bokeh.plotting import figure

from quantlib.serving import analytics as an

__all__ = ["line_chart", "area_chart", "bar_chart", "heatmap", "stacked_area", "equity_figures",
           "PCT"]

PCT = "0.0%"
HEIGHT = 280


def _fig(title: str, *, x_datetime: bool = True, y_pct: bool = False, log: bool = False,
         **kw: Any) -> Any:
    fig = figure(title=title, height=kw.pop("height", HEIGHT), sizing_mode="stretch_width",
                 x_axis_type="datetime" if x_datetime else "auto",
                 y_axis_type="log" if log else "auto",  # "auto": factor ranges get categorical axes
                 tools="pan,box_zoom,reset,save", toolbar_location="right", **kw)
    if y_pct:
        fig.yaxis.formatter = NumeralTickFormatter(format=PCT)
    fig.title.text_font_size = "12pt"
    return fig


def _line_hover(y_pct: bool) -> HoverTool:
    return HoverTool(tooltips=[("", "@name"), ("date", "$x{%F}"),
                               ("value", "$y{0.00%}" if y_pct else "$y{0.000}")],
                     formatters={"$x": "datetime"})


def line_chart(frame: pd.DataFrame, title: str, *, y_pct: bool = False, log: bool = False,
               y_label: str | None = None) -> Any:
    """One line per column of a date-indexed frame, drawn by a single multi-line renderer.

    A legend is drawn only for two or more columns: a single line is named by the title
    (and by its hover), and each legend costs the browser a layout pass.

    Examples
    --------
    >>> f = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    >>> line_chart(f, "t").title.text, len(line_chart(f, "t").legend)
    ('t', 0)
    >>> len(line_chart(f.assign(b=f["a"]), "t").legend)
    1
    """
    fig = _fig(title, y_pct=y_pct, log=log)
    x = frame.index.to_numpy()
    valid = [frame[c].notna().to_numpy() for c in frame.columns]
    src = ColumnDataSource({
        "xs": [x[m] for m in valid],
        "ys": [frame[c].to_numpy(dtype=float)[m] for c, m in zip(frame.columns, valid, strict=True)],
        "color": [Category10_10[i % 10] for i in range(frame.shape[1])],
        "name": [str(c) for c in frame.columns],
    })
    legend = {"legend_field": "name"} if frame.shape[1] > 1 else {}
    fig.multi_line("xs", "ys", source=src, color="color", line_width=1.5, **legend)
    fig.add_tools(_line_hover(y_pct))
    if legend:
        fig.legend.location = "top_left"
    if y_label:
        fig.yaxis.axis_label = y_label
    return fig


def area_chart(series: pd.Series, title: str, *, color: str = "#c0392b") -> Any:
    """A filled area down to zero (e.g. the underwater curve)."""
    fig = _fig(title, y_pct=True)
    src = ColumnDataSource({"date": series.index.to_numpy(),
                            "y": series.to_numpy(dtype=float),
                            "zero": np.zeros(len(series))})
    fig.varea(x="date", y1="zero", y2="y", source=src, fill_color=color, fill_alpha=0.55)
    fig.add_tools(HoverTool(tooltips=[("date", "$x{%F}"), (str(series.name), "$y{0.00%}")],
                            formatters={"$x": "datetime"}))
    return fig


def bar_chart(series: pd.Series, title: str) -> Any:
    """Bars per label (e.g. yearly returns), green up and red down."""
    labels = [str(i) for i in series.index]
    values = series.to_numpy(dtype=float)
    fig = _fig(title, x_datetime=False, y_pct=True, x_range=labels)
    src = ColumnDataSource({"x": labels, "y": values,
                            "color": np.where(values >= 0, "#27ae60", "#c0392b")})
    fig.vbar(x="x", top="y", width=0.8, color="color", source=src)
    fig.add_tools(HoverTool(tooltips=[("", "@x"), ("return", "@y{0.00%}")]))
    return fig


def heatmap(table: pd.DataFrame, title: str) -> Any:
    """Annotated heatmap of a years x months return table."""
    long = table.stack().dropna()  # months outside the result's period are left blank
    years = [str(y) for y in table.index]
    frame = long.rename("ret").reset_index()
    src = ColumnDataSource({
        "month": [str(int(m)) for m in frame["month"]],
        "year": [str(int(y)) for y in frame["year"]],
        "ret": frame["ret"].to_numpy(dtype=float),
        "label": [f"{v * 100:.1f}%" for v in frame["ret"]],
    })
    months = [str(m) for m in range(1, 13)]
    fig = _fig(title, x_datetime=False, x_range=months, y_range=list(reversed(years)),
               height=max(200, 26 * len(years) + 80))
    mapper = LinearColorMapper(palette=list(reversed(RdYlGn11)), low=-0.08, high=0.08)
    fig.rect(x="month", y="year", width=1, height=1, source=src,
             fill_color={"field": "ret", "transform": mapper}, line_color="white")
    fig.text(x="month", y="year", text="label", source=src, text_align="center",
             text_baseline="middle", text_font_size="7pt")
    fig.add_layout(ColorBar(color_mapper=mapper, ticker=BasicTicker(desired_num_ticks=5),
                            formatter=NumeralTickFormatter(format=PCT)), "right")
    fig.add_tools(HoverTool(tooltips=[("", "@year-@month"), ("return", "@label")]))
    fig.grid.visible = False
    return fig


def stacked_area(frame: pd.DataFrame, title: str) -> Any:
    """Stacked areas of non-negative columns (e.g. top holdings' weights), one renderer."""
    fig = _fig(title, y_pct=True)
    x = frame.index.to_numpy()
    values = frame.clip(lower=0).fillna(0.0).to_numpy(dtype=float)
    top = np.cumsum(values, axis=1)
    bottom = top - values
    src = ColumnDataSource({
        "xs": [np.concatenate([x, x[::-1]]) for _ in frame.columns],
        "ys": [np.concatenate([top[:, i], bottom[::-1, i]]) for i in range(frame.shape[1])],
        "color": [Category10_10[i % 10] for i in range(frame.shape[1])],
        "name": [str(c) for c in frame.columns],
    })
    fig.patches("xs", "ys", source=src, fill_color="color", line_color="white",
                line_width=0.3, fill_alpha=0.85, legend_field="name")
    fig.add_tools(HoverTool(tooltips=[("asset", "@name")]))
    fig.legend.location = "top_left"
    fig.legend.label_text_font_size = "7pt"
    return fig


def equity_figures(returns: pd.DataFrame) -> tuple[Any, Any]:
    """Strategy (net) vs benchmark growth of 1: a linear figure and a log-scale one.

    Both figures draw from one shared ``ColumnDataSource`` (the data is sent once) and
    share the x range; the log one (``name="equity_log"``) starts hidden and the page's
    log-scale toggle swaps the two in the browser, so the switch needs no server round
    trip and works in the standalone HTML report too.

    Examples
    --------
    >>> r = pd.DataFrame({"net": [0.1, -0.05]},
    ...                  index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    >>> lin, log = equity_figures(r)
    >>> lin.renderers[0].data_source is log.renderers[0].data_source, log.visible
    (True, False)
    """
    eq = pd.DataFrame({"strategy": an.equity_curve(returns["net"])})
    if "benchmark" in returns:
        eq["benchmark"] = an.equity_curve(returns["benchmark"])
    lin = line_chart(eq, "Equity vs benchmark", y_label="growth of 1")
    log = _fig("Equity vs benchmark (log scale)", log=True)
    source = lin.renderers[0].data_source
    log.multi_line("xs", "ys", source=source, color="color", line_width=1.5, legend_field="name")
    log.add_tools(_line_hover(False))
    log.legend.location = "top_left"
    log.yaxis.axis_label = "growth of 1"
    log.x_range = lin.x_range  # zoom carries over when toggling
    lin.name, log.name, log.visible = "equity", "equity_log", False
    return lin, log
