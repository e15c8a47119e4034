"""What-if: rerun a published strategy with parameters changed within the allowed ranges.

The user picks a published result whose author allowed what-ifs (``allowed_params``),
moves the parameters within their ranges and presses Run. An identical request is
answered from the results cache at once; otherwise the run goes to the Dask cluster and
the page shows what it is doing (queued, loading data, running N of M, saving, done), the
time so far and an estimate from the last runs, until the result appears: its key
metrics next to the original's and both equity curves.
"""

from __future__ import annotations

import html
import time
from typing import Any

import pandas as pd
import panel as pn

from dashboards import plots
from dashboards.common import format_metric, header, metric_cards, viewer_or_error
from quantlib.backtest.metrics import equity_curve
from quantlib.results.view import KEY_METRICS, Viewer, metric_value
from quantlib.serving.server.session import results_view, settings
from quantlib.serving.views import whatif

__all__ = ["page", "param_widget", "status_html"]


def param_widget(name: str, rule: dict[str, Any], current: Any) -> pn.widgets.Widget:
    """A slider (range rule) or select (choices rule) for one allowed parameter.

    Examples
    --------
    >>> param_widget("k", {"min": 5, "max": 30, "step": 5}, 10).value
    10
    >>> param_widget("f", {"choices": ["W", "M"]}, "M").options
    ['W', 'M']
    """
    if "choices" in rule:
        return pn.widgets.Select(label=name, options=list(rule["choices"]), value=current)
    lo, hi, step = rule["min"], rule["max"], rule.get("step")
    numbers = [v for v in (lo, hi, step, current) if v is not None]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
        return pn.widgets.IntSlider(label=name, start=lo, end=hi, step=step or 1,
                                    value=current if current is not None else lo)
    return pn.widgets.FloatSlider(label=name, start=float(lo), end=float(hi),
                                  step=float(step or (hi - lo) / 100),
                                  value=float(current if current is not None else lo))


def status_html(posted: dict[str, Any] | None, elapsed: float, expected: float | None) -> str:
    """What the what-if is doing: queued, loading data, running N of M, saving; with time.

    Examples
    --------
    >>> status_html(None, 1.0, None)
    "<span id='ql-whatif-status' data-stage='queued'>queued on the Dask cluster · 1.0 s</span>"
    >>> "running 2 of 2" in status_html({"stage": "running", "step": 2, "total": 2}, 3.0, 8.0)
    True
    >>> "about 5 s left" in status_html({"stage": "running"}, 3.0, 8.0)
    True
    """
    stage = (posted or {}).get("stage") or "queued on the Dask cluster"
    step, total = (posted or {}).get("step"), (posted or {}).get("total")
    text = f"{stage} {step} of {total}" if step and total and total > 1 else stage
    if expected is not None:
        left = expected - elapsed
        text += (f" · {elapsed:.1f} s, about {left:.0f} s left" if left > 0.5
                 else f" · {elapsed:.1f} s (usually {expected:.0f} s)")
    else:
        text += f" · {elapsed:.1f} s"
    key = html.escape(stage.split(" on ")[0])
    return f"<span id='ql-whatif-status' data-stage='{key}'>{html.escape(text)}</span>"


def _comparison(original: dict[str, Any], rid: str, source: str) -> list[Any]:
    view = results_view()
    meta = view.meta(rid)
    rows = {"metric": list(KEY_METRICS),
            "original": [format_metric(k, metric_value(original, k)) for k in KEY_METRICS],
            "what-if": [format_metric(k, metric_value(meta, k)) for k in KEY_METRICS]}
    curves = pd.DataFrame({"original": equity_curve(view.returns(original["result_id"])["net"]),
                           "what-if": equity_curve(view.returns(rid)["net"])})
    params = ", ".join(f"{k}={v}" for k, v in (meta.get("params") or {}).items())
    return [pn.pane.HTML(f"<div id='ql-whatif-result' data-result='{rid}' data-source='{source}'>"
                         f"<b>What-if result</b> ({html.escape(source)}): {html.escape(params)}"
                         f" — <a href='./tearsheet?id={rid}'>tear sheet</a></div>"),
            metric_cards(meta), pn.pane.DataFrame(pd.DataFrame(rows), index=False),
            plots.line_chart(curves, "Equity: original vs what-if")]


def _runner(viewer: Viewer, meta: dict[str, Any]) -> pn.Column:
    allowed = meta.get("allowed_params") or {}
    current = meta.get("params") or {}
    widgets = {n: param_widget(n, rule, current.get(n)) for n, rule in allowed.items()}
    run = pn.widgets.Button(label="Run what-if", color="primary", width=160)
    progress = pn.indicators.Progress(active=False, value=0, max=100, width=300, visible=False)
    status = pn.pane.HTML("", sizing_mode="stretch_width")
    out = pn.Column(sizing_mode="stretch_width")

    def show(rid: str, source: str) -> None:
        progress.active, progress.value = False, 100
        status.object = f"<span id='ql-whatif-status'>done ({html.escape(source)})</span>"
        out.objects = _comparison(meta, rid, source)

    def start(_event: Any) -> None:
        changes = {n: w.value for n, w in widgets.items()}
        try:
            changes = whatif.check_params(allowed, changes)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            status.object = f"<b>{html.escape(str(exc))}</b>"
            return
        rid = whatif.request_id(meta, changes)
        if results_view().fs.exists(f"{results_view().root}/objects/{rid}/meta.json"):
            show(rid, "from the results cache")
            return
        future = whatif.submit(meta, changes, user=viewer.name,
                               results_url=settings().results_url)
        progress.visible, progress.active, progress.value = True, True, 0
        expected = whatif.estimate(str(meta.get("strategy")))
        t0 = time.monotonic()
        out.objects = []

        def poll() -> None:
            state = future.status
            elapsed = time.monotonic() - t0
            if state == "finished":
                cb.stop()
                whatif.record_duration(str(meta.get("strategy")), elapsed)
                show(future.result(), f"computed on the cluster in {elapsed:.1f} s")
            elif state in ("error", "cancelled"):
                cb.stop()
                progress.active = False
                status.object = f"<b>what-if failed: {html.escape(str(future.exception()))}</b>"
            else:
                status.object = status_html(whatif.progress(future.key), elapsed, expected)
        cb = pn.state.add_periodic_callback(poll, period=250)

    run.on_click(start)
    return pn.Column(pn.Row(*widgets.values()), pn.Row(run, progress), status, out,
                     sizing_mode="stretch_width")


def _load(body: pn.Column, viewer: Viewer) -> None:
    candidates = [m for m in results_view().list(viewer)
                  if m.get("published") and m.get("allowed_params")]
    if not candidates:
        body.objects = [pn.pane.Markdown("No published result allows what-ifs yet.")]
        return
    by_label = {f"{m.get('title')} ({m['result_id']})": m for m in candidates}
    args = pn.state.session_args or {}
    wanted = (args.get("id") or [b""])[0].decode()
    first = next((k for k, m in by_label.items() if m["result_id"] == wanted), next(iter(by_label)))
    choose = pn.widgets.Select(label="Published strategy", options=list(by_label), value=first)
    holder = pn.Column(sizing_mode="stretch_width")

    def pick(*_: Any) -> None:
        meta = by_label[choose.value]
        holder.objects = [pn.pane.Markdown(f"Original: **{html.escape(str(meta.get('title')))}**"
                                           f" by {html.escape(str(meta.get('author')))}"),
                          metric_cards(meta), _runner(viewer, meta)]
    choose.param.watch(pick, "value")
    pick()
    body.objects = [choose, holder]


def page() -> pn.viewable.Viewable:
    """The what-if page."""
    viewer, error = viewer_or_error()
    body = pn.Column(pn.indicators.LoadingSpinner(value=True, size=40), sizing_mode="stretch_width")
    if viewer is None:
        body.objects = [error]
    else:
        pn.state.onload(lambda: _load(body, viewer))
    return pn.Column(header("What-if backtest", viewer), body, sizing_mode="stretch_width")
