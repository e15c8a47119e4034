"""The tear sheet's plots, declared with hvplot/HoloViews and rendered to Bokeh figures
(the monthly heatmap is drawn on Bokeh directly, see :func:`heatmap`).

Each builder declares its plot in HoloViews (``DataFrame.hvplot`` or an ``hv`` element),
renders it with ``hv.render(..., backend="bokeh")`` and returns the Bokeh figure, so
:mod:`dashboards.figures` can lay the figures out in one Bokeh root and
:mod:`dashboards.plot_cache` can serialize it once per result with ``json_item``.
Finance formats are set on the rendered figures (percent axes, dates in hover values).

HoloViews costs more server time than hand-written Bokeh figures (~1.2 s for a 10-year
result's ten plots on the idle development box, ~2.5 s on a process's first build,
against ~0.6 s), but that cost is paid once per result and plots code version, by the
server's background prebuild, never per view (``bench/results/dashboards.md``).
"""

from __future__ import annotations

import re
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh renderer and its options
import hvplot.pandas  # noqa: F401 - registers DataFrame.hvplot
import numpy as np
import pandas as pd
from bokeh.models import (
    BasicTicker,
    ColumnDataSource,
    FactorRange,
    HoverTool,
    LinearColorMapper,
    NumeralTickFormatter,
)
from bokeh.models.annotations import ColorBar, Label, Span, Title
from bokeh.models.renderers import GlyphRenderer
from bokeh.palettes import RdYlGn11
from bokeh.plotting import figure

from quantlib.backtest import metrics as an

__all__ = ["line_chart", "area_chart", "bar_chart", "heatmap", "histogram", "stacked_area",
           "equity_figures", "PCT", "MONTHS"]

PCT = "0.0%"
HEIGHT = 280
TOOLS = ["pan", "box_zoom", "reset", "save", "hover"]
_DATE_HOVER = {"hover_formatters": {"@{date}": "datetime"}}


def _size(title: str, height: int = HEIGHT) -> dict[str, Any]:
    return {"title": title, "height": height, "responsive": True, "xlabel": "", "ylabel": ""}


def _tools(plot: Any, element: str, **kw: Any) -> Any:
    """Pan, box zoom, reset, save and a hover (``kw``'s tooltips) on each ``element`` inside."""
    return plot.opts(getattr(hv.opts, element)(tools=TOOLS, default_tools=[], **kw))


def _fields(glyph: Any) -> set[str]:
    out = set()
    for name in glyph.dataspecs():
        spec = getattr(glyph, name)
        field = spec if isinstance(spec, str) else getattr(spec, "field", None)
        if isinstance(spec, dict):
            field = spec.get("field")
        if isinstance(field, str):
            out.add(field)
    return out


def _trim(fig: Any) -> None:
    """Drop data-source columns no glyph or hover reads (HoloViews adds a few per line).

    That keeps the cached JSON - what every viewer's browser decodes - as small as the
    plot needs.
    """
    hover = " ".join(str(t.tooltips) for t in fig.select({"type": HoverTool}))
    wanted = {a or b for a, b in re.findall(r"@\{([^}]*)\}|@(\w+)", hover)}
    for r in fig.renderers:
        source = getattr(r, "data_source", None)
        if isinstance(r, GlyphRenderer) and isinstance(source, ColumnDataSource):
            keep = wanted | _fields(r.glyph)
            for column in [c for c in source.data if c not in keep]:
                del source.data[column]


def _title_size(fig: Any) -> None:
    if isinstance(fig.title, Title):
        fig.title.text_font_size = "12pt"


def _render(plot: Any, *, y_pct: bool = False) -> Any:
    fig = hv.render(plot, backend="bokeh")
    _trim(fig)
    fig.sizing_mode = "stretch_width"
    _title_size(fig)
    if y_pct:
        fig.yaxis.formatter = NumeralTickFormatter(format=PCT)
    return fig


def _dated(frame: pd.DataFrame | pd.Series) -> Any:
    out = frame.copy()
    out.index = pd.DatetimeIndex(out.index, name="date")
    return out


def line_chart(frame: pd.DataFrame, title: str, *, y_pct: bool = False, log: bool = False,
               y_label: str | None = None) -> Any:
    """One line per column of a date-indexed frame (``frame.hvplot.line``).

    A legend is drawn only for two or more columns, above the plot area (never over the
    data): a single line is named by the title (and by its hover), and each legend costs
    the browser a layout pass.

    Examples
    --------
    >>> f = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    >>> line_chart(f, "t").title.text, len(line_chart(f, "t").legend)
    ('t', 0)
    >>> len(line_chart(f.assign(b=f["a"]), "t").legend)
    1
    """
    plot = _dated(frame).hvplot.line(**_size(title), logy=log, line_width=1.5,
                                     legend="top" if frame.shape[1] > 1 else False)
    value = "$y{0.00%}" if y_pct else "$y{0.000}"
    plot = _tools(plot, "Curve", hover_tooltips=[("", "$name"), ("date", "@{date}{%F}"),
                                                 ("value", value)], **_DATE_HOVER)
    fig = _render(plot, y_pct=y_pct)
    lines = [r for r in fig.renderers if isinstance(r, GlyphRenderer)]
    for line, column in zip(lines, frame.columns, strict=True):
        line.name = str(column)  # the hover's "$name"
    if fig.legend:
        fig.legend.title = None  # not hvplot's melted "Variable"
    if y_label:
        fig.yaxis.axis_label = y_label
    return fig


def area_chart(series: pd.Series, title: str, *, color: str = "#c0392b") -> Any:
    """A filled area down to zero (e.g. the underwater curve), ``series.hvplot.area``."""
    plot = _dated(series.rename("value")).hvplot.area(**_size(title), color=color, alpha=0.55)
    plot = _tools(plot, "Area", hover_tooltips=[("date", "$x{%F}"),
                                                (str(series.name), "$y{0.00%}")],
                  hover_formatters={"$x": "datetime"})
    return _render(plot, y_pct=True)


def bar_chart(series: pd.Series, title: str) -> Any:
    """Bars per label (e.g. yearly returns), green up and red down (``hv.Bars``).

    Examples
    --------
    >>> [str(f) for f in bar_chart(pd.Series([0.1, -0.05], index=[2023, 2024]), "t").x_range.factors]
    ['2023', '2024']
    """
    values = series.to_numpy(dtype=float)
    frame = pd.DataFrame({"label": [str(i) for i in series.index], "ret": values,
                          "color": np.where(values >= 0, "#27ae60", "#c0392b")})
    plot = hv.Bars(frame, "label", ["ret", "color"]).opts(**_size(title), color="color")
    plot = _tools(plot, "Bars", hover_tooltips=[("", "@{label}"), ("return", "@{ret}{0.00%}")])
    return _render(plot, y_pct=True)


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
#: cells whose colour is this far into the palette's dark ends get white labels
_DARK = 0.55


def _cells(values: pd.Series, column: list[str], year: list[str], high: float) -> dict[str, Any]:
    v = values.to_numpy(dtype=float)
    return {"month": column, "year": year, "ret": v,
            "label": [f"{x * 100:.1f}%" for x in v],
            "ink": np.where(np.abs(v) >= _DARK * high, "white", "#222222").tolist()}


def heatmap(table: pd.DataFrame, title: str, yearly: pd.Series | None = None) -> Any:
    """Annotated heatmap of a years x months return table, month names and a yearly column.

    Labels are white on the palette's dark ends and near-black elsewhere, so every value
    stays readable. The ``Year`` column (compounded yearly returns) has its own colour
    scale, yearly returns being larger than monthly ones. Drawn on Bokeh directly:
    through ``hv.HeatMap * hv.Labels`` this one plot cost the tear sheet ~0.2-0.4 s of
    browser time per view (bench/results/dashboards.md).

    Examples
    --------
    >>> t = pd.DataFrame([[0.01, -0.09]], index=pd.Index([2024], name="year"),
    ...                  columns=pd.Index([1, 2], name="month"))
    >>> fig = heatmap(t, "m", yearly=pd.Series([-0.08], index=[2024]))
    >>> fig.x_range.factors[:2], fig.x_range.factors[-1]
    (['Jan', 'Feb'], 'Year')
    >>> fig.renderers[1].data_source.data["ink"]
    ['#222222', 'white']
    """
    long = table.stack().dropna()  # months outside the result's period are left blank
    years = [str(y) for y in table.index]
    frame = long.rename("ret").reset_index()
    src = ColumnDataSource(_cells(frame["ret"], [MONTHS[int(m) - 1] for m in frame["month"]],
                                  [str(int(y)) for y in frame["year"]], 0.08))
    fig = figure(title=title, height=max(200, 26 * len(years) + 80),
                 sizing_mode="stretch_width", x_range=FactorRange(factors=[*MONTHS, "Year"]),
                 y_range=FactorRange(factors=list(reversed(years))),
                 tools="pan,box_zoom,reset,save", toolbar_location="right")
    _title_size(fig)
    mapper = LinearColorMapper(palette=list(reversed(RdYlGn11)), low=-0.08, high=0.08)
    sources = [(src, mapper)]
    if yearly is not None and len(yearly):
        ysrc = ColumnDataSource(_cells(yearly, ["Year"] * len(yearly),
                                       [str(int(y)) for y in yearly.index], 0.3))
        sources.append((ysrc, LinearColorMapper(palette=list(reversed(RdYlGn11)),
                                                low=-0.3, high=0.3)))
    for source, cmap in sources:
        fig.rect(x="month", y="year", width=1, height=1, source=source,
                 fill_color={"field": "ret", "transform": cmap}, line_color="white")
        fig.text(x="month", y="year", text="label", source=source, text_align="center",
                 text_baseline="middle", text_font_size="7pt", text_color="ink")
    fig.add_layout(ColorBar(color_mapper=mapper, ticker=BasicTicker(desired_num_ticks=5),
                            formatter=NumeralTickFormatter(format=PCT)), "right")
    fig.add_tools(HoverTool(tooltips=[("", "@month @year"), ("return", "@label")]))
    fig.grid.visible = False
    fig.axis.major_tick_line_color = None
    return fig


def histogram(hist: pd.DataFrame, marks: dict[str, float], title: str) -> Any:
    """Bars of a return histogram (``left``, ``right``, ``count``) with VaR/CVaR lines.

    Examples
    --------
    >>> h = pd.DataFrame({"left": [-0.01, 0.0], "right": [0.0, 0.01], "count": [3, 5]})
    >>> fig = histogram(h, {"var": -0.008, "cvar": -0.009, "cutoff": 0.05}, "d")
    >>> sorted(s.location for s in fig.center if isinstance(s, Span))
    [-0.009, -0.008]
    """
    fig = figure(title=title, height=HEIGHT, sizing_mode="stretch_width",
                 tools="pan,box_zoom,reset,save", toolbar_location="right")
    _title_size(fig)
    src = ColumnDataSource({k: hist[k].to_numpy() for k in ("left", "right", "count")})
    fig.quad(left="left", right="right", top="count", bottom=0, source=src,
             fill_color="#5b8db8", line_color="white", alpha=0.85)
    level = int(round(100 * (1 - marks.get("cutoff", 0.05))))
    for key, colour, text in (("var", "#e67e22", f"VaR {level}%"),
                              ("cvar", "#c0392b", f"CVaR {level}%")):
        fig.add_layout(Span(location=marks[key], dimension="height", line_color=colour,
                            line_width=2, line_dash="dashed"))
        fig.add_layout(Label(x=marks[key], y=float(hist["count"].max()), text=text,
                             text_color=colour, text_font_size="8pt", x_offset=4,
                             y_offset=-14 if key == "var" else -28))
    fig.add_tools(HoverTool(tooltips=[("from", "@left{0.00%}"), ("to", "@right{0.00%}"),
                                      ("sessions", "@count")]))
    fig.xaxis.formatter = NumeralTickFormatter(format=PCT)
    fig.xaxis.axis_label, fig.yaxis.axis_label = "daily return", "sessions"
    return fig


def stacked_area(frame: pd.DataFrame, title: str) -> Any:
    """Stacked areas of non-negative columns (e.g. top holdings' weights)."""
    values = _dated(frame.clip(lower=0).fillna(0.0))
    values.columns = [str(c) for c in values.columns]
    plot = values.hvplot.area(**_size(title), stacked=True, legend="right", alpha=0.85,
                              line_color="white", line_width=0.3)
    fig = _render(_tools(plot, "Area", hover_tooltips=[("asset", "$name")]), y_pct=True)
    if fig.legend:  # beside the plot, not over the areas; no melted "Variable" title
        fig.legend.label_text_font_size = "7pt"
        fig.legend.title = None
    return fig


def equity_figures(returns: pd.DataFrame, bench_label: str = "benchmark",
                   note: str = "") -> tuple[Any, Any]:
    """Strategy (net) vs benchmark growth of 1: a linear figure and a log-scale one.

    The log figure's lines draw from the linear figure's data sources (the data is sent
    once) and the two share the x range; the log one (``name="equity_log"``) starts
    hidden and the page's log-scale toggle swaps the two in the browser, so the switch
    needs no server round trip and works in the standalone HTML report too.

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
        eq[bench_label] = an.equity_curve(returns["benchmark"])
    title = "Equity vs benchmark" + (f" ({note})" if note else "")
    lin = line_chart(eq, title, y_label="growth of 1")
    log = line_chart(eq, title + " (log scale)", y_label="growth of 1", log=True)
    for lin_line, log_line in zip(lin.renderers, log.renderers, strict=True):
        log_line.data_source = lin_line.data_source
    log.x_range = lin.x_range  # zoom carries over when toggling
    lin.name, log.name, log.visible = "equity", "equity_log", False
    return lin, log
