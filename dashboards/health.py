"""Data health: per market and source, freshness, last refresh runs and their outcome,
quarantine counts with reasons, the latest validation report and the schedule's runs.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn

from dashboards.common import header, viewer_or_error
from quantlib.serving.health import DataHealth, data_health

__all__ = ["page", "sections"]


def _table(frame: pd.DataFrame, empty: str, name: str) -> Any:
    if frame is None or frame.empty:
        return pn.pane.Markdown(f"_{empty}_")
    shown = frame.copy()
    for col in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[col]):
            shown[col] = shown[col].dt.strftime("%Y-%m-%d %H:%M UTC")
    return pn.pane.DataFrame(shown, index=False, sizing_mode="stretch_width", name=name)


def _outcome_html(runs: pd.DataFrame) -> str:
    colours = {"published": "#27ae60", "rejected": "#c0392b", "failed": "#c0392b",
               "quarantined": "#e67e22"}
    parts = []
    for (market, source), g in runs.groupby(["market", "source"]):
        latest = g.iloc[0]
        colour = colours.get(str(latest["outcome"]), "#7f8c8d")
        parts.append(f"<div class='ql-card' data-market='{html.escape(str(market))}'>"
                     f"<div class='label'>{html.escape(str(market))} · "
                     f"{html.escape(str(source))}</div>"
                     f"<div class='metric' style='color:{colour}'>"
                     f"{html.escape(str(latest['outcome']))}</div>"
                     f"<div>{html.escape(str(latest['fetched_at'])[:16])}</div></div>")
    return "<div class='ql-cards'>" + "".join(parts) + "</div>"


def sections(h: DataHealth) -> list[Any]:
    """The page's sections for one :class:`DataHealth`."""
    from dashboards.common import CSS

    report = (pn.pane.Markdown(f"### Validation report `{h.report[0]}`\n\n{h.report[1]}")
              if h.report else pn.pane.Markdown("_No validation report yet._"))
    return [
        pn.pane.Markdown(f"Store: `{html.escape(h.store)}` · "
                         f"{len(h.versions)} data versions"),
        *[pn.pane.Alert(e, alert_type="warning") for e in h.errors],
        pn.pane.HTML(_outcome_html(h.runs) if not h.runs.empty else "", stylesheets=[CSS]),
        pn.pane.Markdown("### Freshness per market and source"),
        _table(h.freshness, "No data fetched yet.", "freshness"),
        pn.pane.Markdown("### Last refresh runs"),
        _table(h.runs, "No refresh has run yet.", "runs"),
        pn.pane.Markdown("### Quarantine"),
        pn.Row(_table(h.quarantine.head(20), "Nothing quarantined.", "quarantine"),
               _table(h.reasons.head(30), "No reasons recorded.", "reasons")),
        report,
        pn.pane.Markdown("### Schedule"),
        _table(h.schedule, "No scheduled jobs.", "schedule"),
        pn.pane.Markdown("### Data versions"),
        _table(h.versions.head(10), "No data version committed yet.", "versions"),
        pn.pane.HTML("<div id='ql-health-rendered'></div>"),
    ]


def _load(body: pn.Column) -> None:
    try:
        body.objects = sections(data_health())
    except Exception as exc:  # noqa: BLE001 - shown to the user
        body.objects = [pn.pane.Alert(f"data health unavailable: {exc}", alert_type="danger")]


def page() -> pn.viewable.Viewable:
    """The data-health page."""
    viewer, error = viewer_or_error()
    body = pn.Column(pn.indicators.LoadingSpinner(value=True, size=40), sizing_mode="stretch_width")
    if viewer is None:
        body.objects = [error]
    else:
        pn.state.onload(lambda: _load(body))
    return pn.Column(header("Data health", viewer), body, sizing_mode="stretch_width")
