"""Compare 2-5 results: ``<prefix>compare?ids=<id>,<id>[,...]``.

One plain HTML page (as the tear sheet): the equity curves overlaid on one chart (growth
of 1, Bokeh ``json_item`` embedded by BokehJS from this server) and the stored metrics
side by side, one column per result, each value with ``data-result``/``data-metric``/
``data-value`` and its definition as hover text. Without ``ids`` (or with fewer than
two) the page lists the results the viewer may see, to pick from. Every id passes the
per-viewer rule (:meth:`ResultsView.meta_for`) before anything of it is read.
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd
from bokeh.embed import json_item
from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.ioloop import IOLoop
from tornado.web import authenticated

from dashboards import plots
from dashboards.common import format_metric
from dashboards.glossary import hover_attr, label
from dashboards.layout import bokeh_script, document, page_viewer, refusal_html
from quantlib.backtest.metrics import equity_curve
from quantlib.errors import QuantlibError
from quantlib.results.view import Viewer
from quantlib.serving.server.session import results_view

__all__ = ["CompareHandler", "compare_html", "picker_html", "metrics_side_by_side",
           "MAX_RESULTS"]

MAX_RESULTS = 5
FIRST_METRICS = ("cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown", "calmar",
                 "alpha", "beta", "information_ratio", "total_return")

COMPARE_CSS = """
table.ql-side {border-collapse:collapse; background:#fff; margin-top:1em;}
table.ql-side th, table.ql-side td {border-bottom:1px solid #e4e8ed; padding:0.25em 1em;
                                    text-align:right;}
table.ql-side th:first-child, table.ql-side td:first-child {text-align:left;}
.ql-picker li {margin:0.2em 0;}
"""

EMBED_JS = """
(function () {
  const item = JSON.parse(document.getElementById('ql-compare-json').textContent);
  Bokeh.embed.embed_item(item, 'ql-compare-plot').then(function () {
    const m = document.createElement('div'); m.id = 'ql-rendered';
    document.getElementById('ql-compare-plot').after(m);
  });
})();
"""


def metrics_side_by_side(metas: list[dict[str, Any]]) -> str:
    """The stored metrics of each result in one table (a column per result).

    Headline metrics first, then every other metric any of them has.

    Examples
    --------
    >>> out = metrics_side_by_side([{"result_id": "a", "title": "A", "metrics": {"sharpe": 1.0}},
    ...                             {"result_id": "b", "title": "B", "metrics": {"sharpe": 2.0}}])
    >>> "data-result='b' data-metric='sharpe' data-value='2.0'>2.00<" in out
    True
    """
    keys = [k for k in FIRST_METRICS if any(k in (m.get("metrics") or {}) for m in metas)]
    keys += sorted({k for m in metas for k in (m.get("metrics") or {})} - set(keys))
    head = "".join(f"<th><a href='./tearsheet?id={m['result_id']}'>"
                   f"{html.escape(str(m.get('title') or m['result_id']))}</a></th>" for m in metas)
    rows = []
    for k in keys:
        cells = []
        for m in metas:
            v = (m.get("metrics") or {}).get(k)
            cells.append(f"<td data-result='{m['result_id']}' data-metric='{k}' "
                         f"data-value='{v!r}'>{html.escape(format_metric(k, v)) if v is not None else '—'}</td>")
        rows.append(f"<tr><td{hover_attr(k)}>{html.escape(label(k))}</td>{''.join(cells)}</tr>")
    return (f"<table class='ql-side'><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>")


def _plot_json(metas: list[dict[str, Any]]) -> str:
    view = results_view()
    curves = pd.DataFrame({str(m.get("title") or m["result_id"]):
                           equity_curve(view.returns(str(m["result_id"]))["net"]) for m in metas})
    fig = plots.line_chart(curves, "Equity curves (growth of 1)", y_label="growth of 1")
    return json.dumps(json_item(fig), separators=(",", ":")).replace("<", "\\u003c")


def compare_html(viewer: Viewer, metas: list[dict[str, Any]], bokeh_js: str) -> str:
    """The compare page for 2-5 results ``metas`` (already checked visible)."""
    body = (f"<h1>Compare {len(metas)} results</h1><div id='ql-compare-plot' style='width:100%'>"
            f"</div>{metrics_side_by_side(metas)}<script type='application/json' "
            f"id='ql-compare-json'>{_plot_json(metas)}</script>{bokeh_js}"
            f"<script>{EMBED_JS}</script>")
    return document("Compare", body, viewer, current="Compare", css=COMPARE_CSS)


def picker_html(viewer: Viewer, metas: list[dict[str, Any]], note: str = "") -> str:
    """A form listing the visible results, to pick 2-5 to compare.

    Examples
    --------
    >>> out = picker_html(Viewer("mo"), [{"result_id": "a1", "title": "A"}])
    >>> "name='ids' value='a1'" in out
    True
    """
    items = "".join(f"<li><label><input type='checkbox' name='ids' value='{m['result_id']}'> "
                    f"{html.escape(str(m.get('title') or m['result_id']))} "
                    f"<span class='ql-by'>({html.escape(str(m.get('author') or ''))})</span>"
                    "</label></li>" for m in metas)
    msg = f"<div class='ql-alert' role='alert'>{html.escape(note)}</div>" if note else ""
    body = (f"<h1>Compare results</h1>{msg}<p>Pick 2 to {MAX_RESULTS} results.</p>"
            f"<form method='get' action='./compare' class='ql-picker'><ul>{items}</ul>"
            "<button type='submit'>Compare</button></form>")
    return document("Compare", body, viewer, current="Compare", css=COMPARE_CSS)


def _ids(handler: AuthRequestHandler) -> list[str]:
    out: list[str] = []
    for value in handler.get_arguments("ids"):
        out += [v for v in value.split(",") if v and v not in out]
    return out


class CompareHandler(AuthRequestHandler):
    """``GET <prefix>compare?ids=a,b[,...]`` behind the apps' auth."""

    @authenticated
    async def get(self) -> None:
        """Answer the compare page (or the picker)."""
        viewer = page_viewer(self, "Compare")
        if viewer is None:
            return
        ids = _ids(self)
        loop = IOLoop.current()
        if not 2 <= len(ids) <= MAX_RESULTS:
            metas = await loop.run_in_executor(None, lambda: results_view().list(viewer))
            note = "" if not ids else f"pick 2 to {MAX_RESULTS} results, not {len(ids)}"
            self.finish(picker_html(viewer, metas, note))
            return
        try:
            metas = [results_view().meta_for(viewer, rid) for rid in ids]
        except QuantlibError as exc:
            self.set_status(403)
            self.finish(refusal_html("Compare", str(exc), viewer))
            return
        self.finish(await loop.run_in_executor(None, compare_html, viewer, metas, bokeh_script()))
