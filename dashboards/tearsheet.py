"""Tear sheet of one result: ``<prefix>tearsheet?id=<result_id>``.

Equity vs benchmark (log-scale toggle), underwater drawdown, monthly returns heatmap,
yearly returns, rolling Sharpe and volatility, exposure and turnover, top holdings over
time, costs, the full stored metrics table, factor IC and quantile returns where the
result has them; downloads of the daily returns (CSV) and of the tear sheet as a
standalone HTML file. The page shell renders at once; plots fill in after load.
"""

from __future__ import annotations

import html
import io
import logging
import time
from typing import Any

import pandas as pd
import panel as pn

from dashboards import plots
from dashboards.common import header, metric_cards, metrics_table_rows, viewer_or_error
from quantlib.serving import analytics as an
from quantlib.serving.session import results_view

__all__ = ["page", "build_sections", "tear_sheet_html"]

log = logging.getLogger(__name__)

def _rolling(net: pd.Series) -> tuple[Any, Any]:
    sharpe = plots.line_chart(an.rolling_sharpe(net).to_frame("rolling Sharpe (6m)"),
                              "Rolling Sharpe")
    vol = plots.line_chart(an.rolling_volatility(net).to_frame("rolling volatility (6m)"),
                           "Rolling volatility", y_pct=True)
    return sharpe, vol


def _exposure(returns: pd.DataFrame, exposures: pd.DataFrame | None) -> list[Any]:
    out = []
    if exposures is not None:
        cols = [c for c in ("long", "short", "gross", "net") if c in exposures]
        out.append(plots.line_chart(exposures[cols], "Exposure", y_pct=True))
    turnover = returns["turnover"].rolling(21, min_periods=1).mean()
    out.append(plots.line_chart(turnover.to_frame("turnover (21d avg)"), "Turnover", y_pct=True))
    return out


def _costs(returns: pd.DataFrame) -> Any:
    return plots.line_chart(returns["costs"].cumsum().to_frame("cumulative costs"),
                            "Costs (cumulative, fraction of capital)", y_pct=True)


def _factor(rid: str) -> list[Any]:
    view = results_view()
    out = []
    ic = view.optional_frame(rid, "factor_ic.parquet")
    if ic is not None and len(ic.columns):
        out.append(plots.line_chart(ic, "Factor IC"))
    qr = view.optional_frame(rid, "quantile_returns.parquet")
    if qr is not None and len(qr.columns) and len(qr) > 1:
        out.append(plots.line_chart(an.equity_curve(qr), "Quantile returns (growth of 1)"))
    return out


def _meta_html(meta: dict[str, Any]) -> pn.pane.HTML:
    params = ", ".join(f"{k}={v}" for k, v in (meta.get("params") or {}).items())
    rows = [("Author", meta.get("author")), ("Created", str(meta.get("created_at", ""))[:10]),
            ("Strategy", meta.get("strategy")), ("Parameters", params),
            ("Data snapshot", meta.get("snapshot")),
            ("Period", f"{str(meta.get('start', ''))[:10]} – {str(meta.get('end', ''))[:10]}"),
            ("Published", "yes" if meta.get("published") else "no (only you see it)")]
    body = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v or '—'))}</td></tr>" for k, v in rows)
    desc = html.escape(meta.get("description") or "")
    return pn.pane.HTML(f"<p>{desc}</p><table class='ql-meta'>{body}</table>")


def build_sections(rid: str, meta: dict[str, Any], log_toggle: pn.widgets.Toggle | None = None
                   ) -> list[Any]:
    """All tear-sheet sections for ``rid`` (plots built from the stored frames)."""
    view = results_view()
    returns = view.returns(rid)
    net = returns["net"]
    equity = (pn.bind(plots.equity_figure, returns, log_toggle) if log_toggle is not None
              else plots.equity_figure(returns, False))
    sharpe, vol = _rolling(net)
    exposures = view.optional_frame(rid, "exposures.parquet")
    metrics = pd.DataFrame(metrics_table_rows(meta.get("metrics") or {}))
    sections: list[Any] = [
        pn.Row(log_toggle) if log_toggle is not None else None,
        pn.panel(equity), plots.area_chart(an.drawdown(net).rename("drawdown"),
                                           "Underwater (drawdown)"),
        pn.Row(plots.bar_chart(an.yearly_returns(net), "Yearly returns"),
               plots.heatmap(an.monthly_returns(net), "Monthly returns")),
        pn.Row(sharpe, vol), pn.Row(*_exposure(returns, exposures)),
        pn.Row(plots.stacked_area(an.top_holdings(view.weights(rid), n=10),
                                  "Top 10 holdings (month end)"), _costs(returns)),
        pn.Column("### All metrics", pn.pane.DataFrame(metrics, index=False,
                                                       sizing_mode="stretch_width")),
        *_factor(rid),
    ]
    return [s for s in sections if s is not None]


def tear_sheet_html(rid: str) -> io.BytesIO:
    """The tear sheet of ``rid`` as one standalone HTML file (Bokeh's JS inlined: works offline)."""
    from bokeh.resources import INLINE

    meta = results_view().meta(rid)
    layout = pn.Column(f"# {meta.get('title') or rid}", metric_cards(meta), _meta_html(meta),
                       *build_sections(rid, meta), sizing_mode="stretch_width")
    out = io.StringIO()
    layout.save(out, title=str(meta.get("title") or rid), embed=False, resources=INLINE)
    return io.BytesIO(out.getvalue().encode())


def _returns_csv(rid: str) -> io.BytesIO:
    frame = results_view().returns(rid).reset_index()
    return io.BytesIO(frame.to_csv(index=False, float_format="%.12g").encode())


def _fill(body: pn.Column, rid: str, toggle: pn.widgets.Toggle) -> None:
    started = time.perf_counter()
    meta = results_view().meta(rid)
    body.objects = [*build_sections(rid, meta, toggle),
                    pn.pane.HTML(f"<div id='ql-rendered' data-result='{rid}'></div>")]
    log.info("tear sheet %s built in %.3f s", rid, time.perf_counter() - started)


def _summary(rid: str) -> tuple[list[Any], bool]:
    """Title, metric cards, metadata and downloads (cheap: shown before the plots)."""
    viewer, error = viewer_or_error()
    if error is not None or viewer is None:
        return [error], False
    try:
        meta = results_view().meta_for(viewer, rid)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        return [pn.pane.Alert(str(exc), alert_type="warning")], False
    downloads = pn.Row(
        pn.widgets.FileDownload(callback=lambda: _returns_csv(rid), filename=f"{rid}-returns.csv",
                                label="Download returns (CSV)", width=220, button_type="primary"),
        pn.widgets.FileDownload(callback=lambda: tear_sheet_html(rid),
                                filename=f"{rid}-tearsheet.html",
                                label="Download tear sheet (HTML)", width=240))
    title = pn.pane.Markdown(f"## {html.escape(str(meta.get('title') or rid))}")
    return [title, metric_cards(meta), _meta_html(meta), downloads], True


def page() -> pn.viewable.Viewable:
    """The tear-sheet page for the ``id`` query argument.

    The summary (stored metrics, metadata, downloads) is in the first response; the plots
    are built once the browser has connected and stream in (the page is usable meanwhile).
    """
    viewer, _error = viewer_or_error()
    args = pn.state.session_args or {}
    rid = (args.get("id") or [b""])[0].decode()
    if not rid:
        return pn.Column(header("Tear sheet", viewer),
                         pn.pane.Markdown("Pick a result in the [gallery](./gallery)."))
    summary, ok = _summary(rid)
    body = pn.Column(pn.indicators.LoadingSpinner(value=True, size=40, name="Loading plots…"),
                     sizing_mode="stretch_width")
    if ok:
        toggle = pn.widgets.Toggle(name="Log scale", value=False, width=120)
        pn.state.onload(lambda: _fill(body, rid, toggle))
    else:
        body.objects = []
    return pn.Column(header("Tear sheet", viewer), *summary, body, sizing_mode="stretch_width")
