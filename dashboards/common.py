"""Shared pieces of the dashboard pages: header, navigation, metric cards, formatting."""

from __future__ import annotations

import html
from typing import Any

import panel as pn

from quantlib.backtest.metrics import format_metric
from quantlib.results.view import KEY_METRICS, Viewer, metric_value
from quantlib.serving.server.session import current_viewer

__all__ = ["header", "header_html", "metric_cards", "metric_cards_html", "format_metric",
           "metrics_table_rows", "viewer_or_error", "CSS"]

CSS = """
.ql-header {display:flex; align-items:baseline; gap:1.5em; border-bottom:1px solid #ddd;}
.ql-header h1 {font-size:1.4em; margin:0.3em 0;}
.ql-nav a {margin-right:1em;}
.ql-cards {display:flex; flex-wrap:wrap; gap:0.8em; margin:0.5em 0;}
.ql-card {border:1px solid #ddd; border-radius:6px; padding:0.4em 0.9em; min-width:8em;}
.ql-card .label {color:#666; font-size:0.8em; text-transform:uppercase;}
.ql-card .metric {font-size:1.4em; font-weight:600;}
.ql-sample {color:#444; font-weight:600; margin-top:0.4em;}
"""

LABELS = {"cagr": "CAGR", "sharpe": "Sharpe", "max_drawdown": "Max drawdown",
          "volatility": "Volatility"}

#: headings of the KPI cards by ``meta["sample"]`` (walk-forward results are out of sample)
SAMPLE_HEADINGS = {"out_of_sample": "Out of sample (walk-forward record)"}


def viewer_or_error() -> tuple[Viewer | None, pn.viewable.Viewable | None]:
    """The session's viewer, or an error pane saying why there is none."""
    try:
        return current_viewer(), None
    except Exception as exc:  # noqa: BLE001 - shown to the user
        return None, pn.pane.Alert(str(exc), alert_type="danger")


def header_html(title: str, viewer: Viewer | None) -> str:
    """Page header HTML: the quantlib bar (navigation, who is logged in) and the title.

    Examples
    --------
    >>> out = header_html("T & U", Viewer("mo", ("managers",)))
    >>> "<h1>T &amp; U</h1>" in out, "quantlib" in out
    (True, True)
    """
    from dashboards.layout import nav_html

    return f"{nav_html(viewer, title)}<div class='ql-header'><h1>{html.escape(title)}</h1></div>"


def header(title: str, viewer: Viewer | None) -> pn.pane.HTML:
    """Page header pane (see :func:`header_html`)."""
    from dashboards.layout import BRAND_CSS

    return pn.pane.HTML(header_html(title, viewer), stylesheets=[BRAND_CSS, CSS],
                        sizing_mode="stretch_width")


def metric_cards_html(meta: dict[str, Any]) -> str:
    """Cards for the key metrics, as stored in ``meta["metrics"]`` (never recomputed).

    Each value carries ``data-metric`` and the full-precision ``data-value`` so a browser
    test can compare it to the store; values are formatted by their unit
    (:func:`quantlib.backtest.metrics.format_metric`). A walk-forward result's cards are
    its out-of-sample record and say so; its in-sample numbers (``meta["in_sample"]``,
    the full-history rerun) follow as a second, labelled row.

    Examples
    --------
    >>> "data-metric='sharpe' data-value='1.5'>1.50<" in metric_cards_html(
    ...     {"metrics": {"sharpe": 1.5}})
    True
    >>> "Out-of-sample Sharpe" in metric_cards_html({"metrics": {"sharpe": 1.5},
    ...                                             "sample": "out_of_sample"})
    True
    """
    sample = meta.get("sample")
    html_ = _cards(meta, "Out-of-sample " if sample == "out_of_sample" else "", "")
    if sample in SAMPLE_HEADINGS:
        html_ = f"<div class='ql-sample'>{SAMPLE_HEADINGS[sample]}</div>{html_}"
    extra = meta.get("in_sample")
    if isinstance(extra, dict) and extra.get("metrics"):
        label = html.escape(str(extra.get("label") or "in sample"))
        html_ += (f"<div class='ql-sample ql-in-sample'>{label[:1].upper() + label[1:]}</div>"
                  + _cards({"metrics": extra["metrics"]}, "In-sample ", "in_sample:"))
    return html_


def _cards(meta: dict[str, Any], prefix: str, key_prefix: str) -> str:
    cards = []
    for key in KEY_METRICS:
        value = metric_value(meta, key)
        text = format_metric(key, value) if value is not None else "—"
        raw = "" if value is None else repr(value)
        label = prefix + LABELS[key] if prefix else LABELS[key]
        cards.append(f"<div class='ql-card'><div class='label'>{label}</div>"
                     f"<div class='metric' data-metric='{key_prefix}{key}' data-value='{raw}'>"
                     f"{text}</div></div>")
    return "<div class='ql-cards'>" + "".join(cards) + "</div>"


def metric_cards(meta: dict[str, Any]) -> pn.pane.HTML:
    """Metric cards pane (see :func:`metric_cards_html`)."""
    return pn.pane.HTML(metric_cards_html(meta), stylesheets=[CSS], sizing_mode="stretch_width")


def metrics_table_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """All stored metrics as display rows (name, value formatted by its unit).

    Examples
    --------
    >>> metrics_table_rows({"sharpe": 1.0, "cagr": 0.1, "max_drawdown_duration": 300})
    [{'metric': 'cagr', 'value': '10.00%'}, {'metric': 'max_drawdown_duration', 'value': '300 days'}, {'metric': 'sharpe', 'value': '1.00'}]
    """
    return [{"metric": k, "value": format_metric(k, v)} for k, v in sorted(metrics.items())]
