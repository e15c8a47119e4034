"""Results gallery: every result the user may see, searchable, with a comparison view.

Columns: title, author, date, strategy, parameters, data snapshot and the key metrics
(stored values). Search matches title, description, strategy, author and tags; filters
by strategy and author. Selecting several rows draws their equity curves on one chart
and their metrics in one table. Titles link to the tear sheet.
"""

from __future__ import annotations

import html
from typing import Any

import hvplot.pandas  # noqa: F401 - registers .hvplot
import pandas as pd
import panel as pn

from dashboards.common import format_metric, header, viewer_or_error
from quantlib.backtest.metrics import equity_curve, metric_unit
from quantlib.results.view import KEY_METRICS, Viewer, metric_value
from quantlib.serving.server.session import results_view

__all__ = ["page", "gallery_frame"]

#: Tabulator display of a metric column by its unit (as metrics.UNIT_FORMATS)
TABULATOR_FORMATS: dict[str, dict[str, Any]] = {
    "fraction": {"type": "money", "symbol": "%", "symbolAfter": True, "precision": 2},
    "ratio": {"type": "money", "precision": 2},
    "days": {"type": "money", "symbol": " days", "symbolAfter": True, "precision": 0},
    "count": {"type": "money", "precision": 0},
}

COLUMNS = ["title", "author", "date", "strategy", "parameters", "snapshot", "published",
           "cagr", "sharpe", "max_drawdown", "volatility"]


def gallery_frame(metas: list[dict[str, Any]]) -> pd.DataFrame:
    """One display row per result (metrics as fractions, formatted by the table).

    Examples
    --------
    >>> f = gallery_frame([{"result_id": "a1", "title": "T", "params": {"k": 1},
    ...                     "metrics": {"cagr": 0.1}, "created_at": "2025-01-02T00:00:00"}])
    >>> f.loc["a1", ["title", "parameters", "date"]].tolist(), float(f.loc["a1", "cagr"])
    (['T', 'k=1', '2025-01-02'], 0.1)
    """
    rows = []
    for m in metas:
        row = {
            "result_id": m["result_id"], "title": m.get("title") or m["result_id"],
            "author": m.get("author") or "", "date": str(m.get("created_at") or "")[:10],
            "strategy": m.get("strategy") or "",
            "parameters": ", ".join(f"{k}={v}" for k, v in (m.get("params") or {}).items()),
            "snapshot": str(m.get("snapshot") or ""), "published": bool(m.get("published")),
        }
        row.update({k: metric_value(m, k) for k in KEY_METRICS})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["result_id", *COLUMNS])
    return frame.set_index("result_id")


def _table(frame: pd.DataFrame) -> pn.widgets.Tabulator:
    shown = frame.copy()
    shown["title"] = [f"<a href='./tearsheet?id={rid}'>{html.escape(str(t))}</a>"
                      for rid, t in zip(shown.index, shown["title"], strict=True)]
    formatters: dict[str, Any] = {"title": {"type": "html"}, "published": {"type": "tickCross"}}
    for col in KEY_METRICS:  # numbers stay numbers (sortable), shown by their unit
        unit = metric_unit(col)
        if unit == "fraction":
            shown[col] = shown[col] * 100
        formatters[col] = TABULATOR_FORMATS.get(unit, {"type": "money", "precision": 4})
    return pn.widgets.Tabulator(
        shown, selectable="checkbox", show_index=False, pagination="local", page_size=25,
        disabled=True, layout="fit_data_stretch", sizing_mode="stretch_width",
        formatters=formatters,
        titles={"cagr": "CAGR", "sharpe": "Sharpe", "max_drawdown": "Max DD",
                "volatility": "Vol"})


def _compare(ids: list[str], metas: dict[str, dict[str, Any]]) -> list[Any]:
    if len(ids) < 1:
        return [pn.pane.Markdown("Select results (checkboxes) to compare them.")]
    view = results_view()
    curves = pd.DataFrame({metas[r].get("title") or r: equity_curve(view.returns(r)["net"])
                           for r in ids})
    chart = curves.hvplot.line(title="Equity curves (growth of 1)", height=320,
                               responsive=True, grid=True, xlabel="", ylabel="growth of 1",
                               legend="top")
    keys = sorted({k for r in ids for k in (metas[r].get("metrics") or {})})
    table = pd.DataFrame({metas[r].get("title") or r: [
        format_metric(k, (metas[r].get("metrics") or {}).get(k)) for k in keys] for r in ids},
        index=keys)
    table.index.name = "metric"
    link = (f"<a href='./compare?ids={','.join(ids[:5])}'>Open these in the compare view</a>"
            if 2 <= len(ids) <= 5 else "")
    return [pn.pane.HTML(link), pn.panel(chart),
            pn.pane.DataFrame(table, sizing_mode="stretch_width")]


def _load(body: pn.Column, viewer: Viewer) -> None:
    metas = {m["result_id"]: m for m in results_view().list(viewer)}
    frame = gallery_frame(list(metas.values()))
    search = pn.widgets.TextInput(label="Search", placeholder="title, strategy, author, tag…")
    strategy = pn.widgets.Select(label="Strategy", options=["(all)", *sorted(set(frame.strategy))])
    author = pn.widgets.Select(label="Author", options=["(all)", *sorted(set(frame.author))])
    table = _table(frame)
    compare = pn.Column(*_compare([], metas), sizing_mode="stretch_width")

    def refilter(*_: Any) -> None:
        keep = {m["result_id"] for m in results_view().list(
            viewer, query=search.value or None,
            strategy=None if strategy.value == "(all)" else strategy.value,
            author=None if author.value == "(all)" else author.value)}
        table.value = _table(frame.loc[[r for r in frame.index if r in keep]]).value

    def on_select(event: Any) -> None:
        ids = [table.value.index[i] for i in event.new if i < len(table.value)]
        compare.objects = _compare(ids, metas)

    for w in (search, strategy, author):
        w.param.watch(refilter, "value")
    table.param.watch(on_select, "selection")
    body.objects = [pn.Row(search, strategy, author),
                    pn.pane.Markdown(f"{len(frame)} results visible to **{viewer.name}**."),
                    table, pn.pane.Markdown("### Compare"), compare]


def page() -> pn.viewable.Viewable:
    """The gallery page."""
    viewer, error = viewer_or_error()
    body = pn.Column(pn.indicators.LoadingSpinner(value=True, size=40, name="Loading results…"),
                     sizing_mode="stretch_width")
    if viewer is None:
        body.objects = [error]
    else:
        pn.state.onload(lambda: _load(body, viewer))
    return pn.Column(header("Results gallery", viewer), body, sizing_mode="stretch_width")
