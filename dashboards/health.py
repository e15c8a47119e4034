"""Data health: per market, freshness against its exchange calendar (stale markets in
red), per market and source the last refresh runs and their outcome, quarantine counts
with reasons (click a reason for its rows), the latest validation report and the
schedule's next runs. Column headers are words, not field names.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn

from dashboards.common import header, viewer_or_error
from quantlib.serving.views.health import DataHealth, data_health

__all__ = ["page", "sections"]


#: column name -> header shown
HEADERS = {
    "market": "Market", "source": "Source", "fetch_id": "Fetch", "fetched_at": "Fetched at",
    "files": "Files", "rows": "Rows", "outcome": "Outcome", "last_fetched_at": "Last fetched",
    "last_published_at": "Last published", "latest_known_at": "Newest data known at",
    "refresh_id": "Refresh", "quarantined_rows": "Quarantined rows", "check": "Check",
    "reason": "Reason", "job": "Job", "owner": "Owner", "cron": "Schedule (cron)",
    "last_run": "Last run", "next_run": "Next run", "snapshot_id": "Snapshot",
    "tags": "Tags", "written_at": "Written at", "message": "Message", "severity": "Severity",
    "row": "Row", "file": "File", "asset_id": "Asset", "date": "Date", "field": "Field",
    "expected_session": "Last session expected", "held_session": "Last session held",
    "sessions_behind": "Sessions behind", "stale": "Stale",
}


def human(frame: pd.DataFrame) -> pd.DataFrame:
    """Words for headers, UTC times as text, missing values as a dash.

    Examples
    --------
    >>> human(pd.DataFrame({"next_run": [None], "fetched_at": [pd.Timestamp("2025-01-02",
    ...                                                       tz="UTC")]})).to_dict("records")
    [{'Next run': '—', 'Fetched at': '2025-01-02 00:00 UTC'}]
    """
    shown = frame.copy()
    for col in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[col]):
            shown[col] = shown[col].dt.strftime("%Y-%m-%d %H:%M UTC")
    shown = shown.astype(object).where(shown.notna(), "—")
    return shown.rename(columns=lambda c: HEADERS.get(str(c), str(c).replace("_", " ").capitalize()))


def _table(frame: pd.DataFrame, empty: str, name: str) -> Any:
    if frame is None or frame.empty:
        return pn.pane.Markdown(f"_{empty}_")
    return pn.pane.DataFrame(human(frame), index=False, sizing_mode="stretch_width", name=name)


def _market_cards(markets: pd.DataFrame) -> str:
    parts = []
    for r in markets.itertuples():
        colour = "#c0392b" if r.stale else "#27ae60"
        state = f"{r.sessions_behind} sessions behind" if r.stale else "up to date"
        parts.append(f"<div class='ql-card{' ql-stale' if r.stale else ''}' "
                     f"data-freshness='{html.escape(str(r.market))}' data-stale='{str(r.stale).lower()}'>"
                     f"<div class='label'>{html.escape(str(r.market))} · freshness</div>"
                     f"<div class='metric' style='color:{colour}'>{state}</div>"
                     f"<div>held {html.escape(str(r.held_session))} · expected "
                     f"{html.escape(str(r.expected_session))}</div></div>")
    return "<div class='ql-cards'>" + "".join(parts) + "</div>"


def _drilldown(reasons: pd.DataFrame, rows: pd.DataFrame) -> Any:
    """Reasons with their counts; a reason's row opens its quarantined rows."""
    if reasons.empty:
        return pn.pane.Markdown("_Nothing quarantined._")
    keys = [k for k in ("market", "source", "check", "reason") if k in reasons and k in rows]

    def content(row: pd.Series) -> Any:
        match = rows
        for k in keys:
            match = match[match[k].astype(str) == str(row[HEADERS.get(k, k)])]
        return pn.pane.DataFrame(human(match.head(50)), index=False)

    return pn.widgets.Tabulator(human(reasons.head(30)), show_index=False, disabled=True,
                                row_content=content, embed_content=False,
                                sizing_mode="stretch_width", name="reasons")


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

    text = h.report[1].lstrip() if h.report else ""
    if text.startswith("#"):  # the report's own title: one heading, not two
        text = text.split("\n", 1)[1] if "\n" in text else ""
    report = (pn.pane.Markdown(f"### Validation report `{h.report[0]}`\n\n{text}")
              if h.report else pn.pane.Markdown("_No validation report yet._"))
    return [
        pn.pane.Markdown(f"Store: `{html.escape(h.store)}` · "
                         f"{len(h.versions)} data versions"),
        *[pn.pane.Alert(e, alert_type="warning") for e in h.errors],
        pn.pane.HTML(_market_cards(h.markets) if not h.markets.empty else "",
                     stylesheets=[CSS]),
        pn.pane.HTML(_outcome_html(h.runs) if not h.runs.empty else "", stylesheets=[CSS]),
        pn.pane.Markdown("### Freshness against the exchange calendars"),
        _table(h.markets, "No market data held yet.", "markets"),
        pn.pane.Markdown("### Freshness per market and source"),
        _table(h.freshness, "No data fetched yet.", "freshness"),
        pn.pane.Markdown("### Last refresh runs"),
        _table(h.runs, "No refresh has run yet.", "runs"),
        pn.pane.Markdown("### Quarantine (open a reason for its rows)"),
        pn.Row(_table(h.quarantine.head(20), "Nothing quarantined.", "quarantine"),
               _drilldown(h.reasons, h.quarantine_rows)),
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
