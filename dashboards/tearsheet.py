"""Tear sheet of one result: ``<prefix>tearsheet?id=<result_id>``.

Equity vs benchmark (log-scale toggle), underwater drawdown, monthly returns heatmap,
yearly returns, rolling Sharpe and volatility, exposure and turnover, top holdings over
time, costs, the full stored metrics table, factor IC and quantile returns where the
result has them; downloads of the daily returns (``&download=csv``) and of the tear
sheet as a standalone HTML file (``&download=html``).

Why this page is not a Panel session: on the 2 s budget of issue #5 the Panel page spent
~0.8 s loading Panel's bundles and opening its websocket, ~1 s building and sending ten
figures per session, and ~1 s in BokehJS. Here the server answers ONE plain HTML
response: the summary (stored metrics, metadata, downloads), the metrics table, and the
result's plots as Bokeh ``json_item`` JSON, one document per section
(:func:`dashboards.figures.sections_json`), built once per result and code version by
:mod:`dashboards.plot_cache`; the browser loads BokehJS (cached, versioned URL) and
embeds the sections with ``Bokeh.embed.embed_item``: those in view first (then the
``#ql-rendered`` marker), the others one at a time after the first paint, a section
scrolled into view going next (then ``#ql-rendered-all``). Building all twelve figures
in one document kept the first screen blank for ~3.4 s (``bench/RESULTS.md``). The log-scale toggle swaps two figures
on one shared data source in the browser. Every request passes the same auth as the
Panel apps (the hub's OAuth provider) and the same per-viewer rule
(``ResultsView.meta_for``) before anything of the result is sent. A background thread
(:func:`prebuild_published`, started by the server) builds published results' plots
before anyone asks.
"""

from __future__ import annotations

import html
import io
import logging
import threading
from typing import Any

from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.ioloop import IOLoop
from tornado.web import authenticated

from dashboards.common import CSS, header_html, metric_cards_html, metrics_table_rows
from dashboards.figures import sections_json, tear_sheet_layout
from dashboards.glossary import hover_attr
from dashboards.layout import BRAND_CSS, bokeh_script, refusal_html
from dashboards.plot_cache import PlotCache, plot_cache
from dashboards.sections import params_html, tables_html
from quantlib.errors import QuantlibError
from quantlib.results.view import Viewer
from quantlib.serving.server.session import current_viewer, results_view, settings

__all__ = ["TearSheetHandler", "cached_plots", "cached_tables", "prebuild_published", "tear_sheet_html", "render_page", "page_top",
           "page_bottom"]

log = logging.getLogger(__name__)

PAGE_CSS = CSS + BRAND_CSS + """
body > *:not(header) {margin-left: 1.2em; margin-right: 1.2em;}
table.ql-meta th {text-align:left; padding-right:1em; color:#555; font-weight:500;}
table.ql-metrics {border-collapse:collapse;} table.ql-metrics td, table.ql-metrics th
{border-bottom:1px solid #eee; padding:0.15em 1em 0.15em 0; text-align:left;}
.ql-downloads a {display:inline-block; margin:0.4em 0.8em 0.4em 0; padding:0.35em 0.9em;
                 border:1px solid #0072b5; border-radius:4px; text-decoration:none;}
#ql-log {margin:0.4em 0; padding:0.3em 0.9em;}
.ql-row {display:flex; flex-wrap:wrap; gap:2.5em; align-items:flex-start;}
.ql-row h4 {margin:0.2em 0;} .ql-note {color:#555; margin:0.2em 0;}
.ql-tables {display:flex; flex-wrap:wrap; gap:2.5em; align-items:flex-start;}
[title] {text-decoration: underline dotted #999; cursor: help;}
.ql-section[data-ql-pending] {background:#eef1f4; border-radius:4px; margin:2px 0;}
"""

#: embeds the plot sections: those in view first, then ``#ql-rendered``; the rest one at a
#: time (a section scrolled into view goes next), then ``#ql-rendered-all``
EMBED_JS = """
(function () {
  const sections = JSON.parse(document.getElementById('ql-plots-json').textContent);
  const host = document.getElementById('ql-plots');
  const slots = sections.map(function (s, i) {
    const slot = document.createElement('div');
    slot.id = 'ql-section-' + i; slot.className = 'ql-section';
    slot.dataset.plots = s.plots; slot.dataset.qlPending = '';
    slot.style.minHeight = s.height + 'px';
    host.appendChild(slot);
    return slot;
  });
  document.getElementById('ql-plots-loading').remove();
  const pending = new Set(slots.keys());
  const inView = function (i) {
    const r = slots[i].getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight;
  };
  const mark = function (id, after) {
    const m = document.createElement('div');
    m.id = id; m.dataset.result = document.body.dataset.result;
    after.after(m);
  };
  const wireLog = function (doc) {
    const button = document.getElementById('ql-log');
    button.disabled = false;
    button.addEventListener('click', function () {
      const log = doc.get_model_by_name('equity_log'), lin = doc.get_model_by_name('equity');
      const on = !log.visible;
      log.visible = on; lin.visible = !on;
      button.setAttribute('aria-pressed', String(on));
      button.textContent = on ? 'Linear scale' : 'Log scale';
    });
  };
  const embed = async function (i) {
    pending.delete(i);
    const views = await Bokeh.embed.embed_item(sections[i].item, slots[i].id);
    const doc = views.roots[0].model.document;
    if (doc.get_model_by_name('equity_log')) wireLog(doc);
    slots[i].style.minHeight = ''; delete slots[i].dataset.qlPending;
  };
  const yieldToPaint = function () {
    return new Promise(function (done) { requestAnimationFrame(function () { setTimeout(done, 0); }); });
  };
  (async function () {
    for (const i of [...pending].filter(inView)) await embed(i);
    mark('ql-rendered', host);
    while (pending.size) {
      await yieldToPaint();
      const next = [...pending].find(inView);
      await embed(next === undefined ? Math.min(...pending) : next);
    }
    mark('ql-rendered-all', host);
  })();
})();
"""


def _cache() -> PlotCache:
    return plot_cache(settings().extra.get("plot_cache_dir"))


def _tables_cache() -> PlotCache:
    return plot_cache(_cache().folder / "tables", kind="tables")


def cached_plots(rid: str) -> str:
    """JSON text of ``rid``'s plot sections (:func:`~dashboards.figures.sections_json`), from
    the cache or built into it once."""
    view = results_view()
    return _cache().get_or_build(rid, lambda: sections_json(tear_sheet_layout(view, rid)))


def cached_tables(rid: str) -> str:
    """HTML of ``rid``'s relative-statistics and drawdown tables, cached like the plots."""
    view = results_view()
    return _tables_cache().get_or_build(rid, lambda: tables_html(view, rid))


def prebuild_published(*, interval: float = 5.0, stop: threading.Event | None = None
                       ) -> threading.Thread:
    """Start a daemon thread that builds the plots of every published result not cached yet.

    It looks at the published index at start and whenever the index changes (checked every
    ``interval`` seconds), so a result is usually cached before its first viewer arrives:
    a publish costs the server one build, the first view none. Failures are logged and
    retried at the next change of the index.
    """
    stop = stop or threading.Event()

    def one_pass(seen: str) -> str:
        view = results_view()
        version = view.version()
        if version != seen:
            for meta in view.list(Viewer("", ())):  # published ones only
                rid = str(meta["result_id"])
                try:
                    cached_tables(rid)
                    cached_plots(rid)
                except Exception:  # noqa: BLE001 - a broken result must not stop the rest
                    log.exception("could not prebuild the tear-sheet plots of %s", rid)
        return version

    def run() -> None:
        seen = ""
        while not stop.is_set():
            try:
                seen = one_pass(seen)
            except Exception:  # noqa: BLE001 - e.g. an unreadable index: try again later
                log.exception("tear-sheet prebuild pass failed")
            stop.wait(interval)

    thread = threading.Thread(target=run, name="tearsheet-prebuild", daemon=True)
    thread.start()
    return thread


def _meta_html(meta: dict[str, Any]) -> str:
    rows = [("Author", meta.get("author")), ("Created", str(meta.get("created_at", ""))[:10]),
            ("Strategy", meta.get("strategy")), ("Data snapshot", meta.get("snapshot")),
            ("Period", f"{str(meta.get('start', ''))[:10]} – {str(meta.get('end', ''))[:10]}"),
            ("Published", "yes" if meta.get("published") else "no (only you see it)")]
    body = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v or '—'))}</td></tr>" for k, v in rows)
    desc = html.escape(meta.get("description") or "")
    return (f"<p>{desc}</p><div class='ql-row'><table class='ql-meta'>{body}</table>"
            f"<div><h4>Parameters</h4>{params_html(meta.get('params') or {})}</div></div>"
            f"{_notes_html(meta)}")


def _notes_html(meta: dict[str, Any]) -> str:
    """How the numbers were measured: the warm-up rule, the sample, synthetic data."""
    warmup = (meta.get("metrics") or {}).get("warmup_periods")
    notes = ["Performance starts at the first day with a position: the period and every "
             "metric leave out the warm-up sessions before it"
             + (f" ({warmup} here)." if isinstance(warmup, int) else ".")]
    if meta.get("sample") == "out_of_sample":
        notes.append("Headline metrics are the walk-forward's stitched out-of-sample record; "
                     "in-sample numbers, where shown, are the full-history rerun.")
    if meta.get("synthetic"):
        notes.append("Computed on SYNTHETIC data (generated prices), not market data.")
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"<ul class='ql-notes'>{items}</ul>"


def _metrics_html(meta: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td{hover_attr(r['metric'])}>{html.escape(r['metric'])}</td>"
                   f"<td>{html.escape(r['value'])}</td></tr>"
                   for r in metrics_table_rows(meta.get("metrics") or {}))
    return ("<h3>All metrics</h3><table class='ql-metrics'><tr><th>metric</th><th>value</th>"
            f"</tr>{rows}</table>")


def _script_json(text: str) -> str:
    """JSON text safe inside ``<script type="application/json">`` (no ``</script>``)."""
    return text.replace("<", "\\u003c")


def page_top(meta: dict[str, Any], *, bokeh_js: str, header: str = "",
             downloads: bool = True, tables: str = "") -> str:
    """The tear sheet's HTML up to the plots' data: summary, metrics table, BokehJS.

    Sent (and flushed) before the plots are built on a result's first view, so the page
    is readable while they build.

    Parameters
    ----------
    meta : dict
        The result's stored metadata (already checked visible to the viewer).
    bokeh_js : str
        ``<script>`` tags loading BokehJS (server URLs, or inlined for a standalone file).
    header : str
        Header HTML (navigation and user); empty in the standalone report.
    downloads : bool
        Show the CSV/HTML download links (not in the standalone report).
    tables : str
        HTML of the relative-statistics and drawdown tables (:func:`cached_tables`).
    """
    rid = str(meta["result_id"])
    title = html.escape(str(meta.get("title") or rid))
    links = "" if not downloads else (
        "<div class='ql-downloads'>"
        f"<a href='tearsheet?id={rid}&amp;download=csv' download='{rid}-returns.csv'>"
        "Download returns (CSV)</a>"
        f"<a href='tearsheet?id={rid}&amp;download=html' download='{rid}-tearsheet.html'>"
        "Download tear sheet (HTML)</a></div>")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{PAGE_CSS}</style></head><body data-result='{rid}'>{header}"
        f"<h2>{title}</h2>{metric_cards_html(meta)}{_meta_html(meta)}{links}"
        "<button id='ql-log' type='button' aria-pressed='false' disabled>Log scale</button>"
        "<p id='ql-plots-loading'>Loading plots…</p><div id='ql-plots' style='width:100%'></div>"
        f"{tables}{_metrics_html(meta)}{bokeh_js}")


def page_bottom(plots_json: str) -> str:
    """The rest of the tear sheet: the plots' ``json_item`` JSON and the embedding script."""
    return (f"<script type='application/json' id='ql-plots-json'>{_script_json(plots_json)}"
            f"</script><script>{EMBED_JS}</script></body></html>")


def render_page(meta: dict[str, Any], plots_json: str, *, bokeh_js: str,
                header: str = "", downloads: bool = True, tables: str = "") -> str:
    """The whole tear-sheet HTML of one result (:func:`page_top` + :func:`page_bottom`)."""
    return page_top(meta, bokeh_js=bokeh_js, header=header, downloads=downloads,
                    tables=tables) + page_bottom(plots_json)


def tear_sheet_html(rid: str) -> io.BytesIO:
    """The tear sheet of ``rid`` as one standalone HTML file (Bokeh's JS inlined: works offline)."""
    from bokeh.resources import INLINE

    page = render_page(results_view().meta(rid), cached_plots(rid),
                       bokeh_js=INLINE.render_js(), downloads=False, tables=cached_tables(rid))
    return io.BytesIO(page.encode())


def _returns_csv(rid: str) -> io.BytesIO:
    frame = results_view().returns(rid).reset_index()
    return io.BytesIO(frame.to_csv(index=False, float_format="%.12g").encode())


class TearSheetHandler(AuthRequestHandler):
    """``GET <prefix>tearsheet?id=<result_id>[&download=csv|html]`` behind the apps' auth."""

    def _error(self, status: int, title: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(refusal_html(title, message))

    @authenticated
    async def get(self) -> None:
        """Answer the page, or one of its downloads."""
        rid = self.get_argument("id", "")
        try:
            viewer = current_viewer(self.current_user)
        except QuantlibError as exc:
            return self._error(403, "Tear sheet", str(exc))
        if not rid:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish("<!DOCTYPE html><html><head><meta charset='utf-8'>"
                               f"<style>{PAGE_CSS}</style></head>"
                               f"<body>{header_html('Tear sheet', viewer)}<p>Pick a result in "
                               "the <a href='./gallery'>gallery</a>.</p></body></html>")
            return
        try:
            meta = results_view().meta_for(viewer, rid)
        except QuantlibError as exc:
            return self._error(403, "Tear sheet", str(exc))
        loop = IOLoop.current()
        kind = self.get_argument("download", "")
        if kind in ("csv", "html"):
            body = await loop.run_in_executor(None, _returns_csv if kind == "csv"
                                              else tear_sheet_html, rid)
            name = f"{rid}-returns.csv" if kind == "csv" else f"{rid}-tearsheet.html"
            self.set_header("Content-Type", "text/csv" if kind == "csv" else "text/html")
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')
            self.finish(body.getvalue())
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")  # per-viewer page (the plots file is shared)
        tables = _tables_cache().get(rid)
        if tables is None:
            try:
                tables = await loop.run_in_executor(None, cached_tables, rid)
            except Exception as exc:  # noqa: BLE001 - the rest of the page still renders
                log.exception("tear-sheet tables of %s could not be built", rid)
                tables = ("<div class='ql-alert' role='alert'>The relative statistics could "
                          f"not be computed: {html.escape(str(exc))}</div>")
        self.write(page_top(meta, bokeh_js=bokeh_script(), header=header_html("Tear sheet", viewer),
                            tables=tables))
        plots_json = _cache().get(rid)
        if plots_json is None:  # first view of this result: show the summary while building
            await self.flush()
            try:
                plots_json = await loop.run_in_executor(None, cached_plots, rid)
            except Exception as exc:  # noqa: BLE001 - the summary is already on screen
                log.exception("tear-sheet plots of %s could not be built", rid)
                self.finish(
                    "<div class='ql-alert' role='alert'>The plots could not be built: "
                    f"{html.escape(str(exc))}</div></body></html>")
                return
        self.finish(page_bottom(plots_json))

