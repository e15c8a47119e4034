"""Shared pieces of the dashboard pages: header, navigation, metric cards, formatting."""

from __future__ import annotations

import html
from typing import Any

import panel as pn

from quantlib.serving.analytics import fmt_bps, fmt_num, fmt_pct
from quantlib.serving.session import current_viewer
from quantlib.serving.store import KEY_METRICS, Viewer, metric_value

__all__ = ["header", "header_html", "metric_cards", "metric_cards_html", "format_metric", "metrics_table_rows", "viewer_or_error",
           "METRIC_FORMATS", "CSS"]

CSS = """
.ql-header {display:flex; align-items:baseline; gap:1.5em; border-bottom:1px solid #ddd;}
.ql-header h1 {font-size:1.4em; margin:0.3em 0;}
.ql-nav a {margin-right:1em;}
.ql-cards {display:flex; flex-wrap:wrap; gap:0.8em; margin:0.5em 0;}
.ql-card {border:1px solid #ddd; border-radius:6px; padding:0.4em 0.9em; min-width:8em;}
.ql-card .label {color:#666; font-size:0.8em; text-transform:uppercase;}
.ql-card .metric {font-size:1.4em; font-weight:600;}
"""

#: how each metric is displayed (fraction -> %, ratio -> number, cost -> bps)
METRIC_FORMATS: dict[str, Any] = {
    "cagr": fmt_pct, "annual_return": fmt_pct, "annual_volatility": fmt_pct,
    "volatility": fmt_pct, "max_drawdown": fmt_pct, "total_return": fmt_pct,
    "sharpe": fmt_num, "sortino": fmt_num, "calmar": fmt_num, "avg_turnover": fmt_pct,
    "total_costs": fmt_pct, "avg_cost": fmt_bps,
}

LABELS = {"cagr": "CAGR", "sharpe": "Sharpe", "max_drawdown": "Max drawdown",
          "volatility": "Volatility"}


def format_metric(key: str, value: Any) -> str:
    """Display text of one metric by its name.

    Examples
    --------
    >>> format_metric("cagr", 0.1234), format_metric("sharpe", 1.5), format_metric("x", "a")
    ('12.34%', '1.50', 'a')
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    for name, fmt in METRIC_FORMATS.items():
        if key == name or key.endswith(name):
            return fmt(float(value))
    if "drawdown" in key or "return" in key or "vol" in key:
        return fmt_pct(float(value))
    return fmt_num(float(value), 4)


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
    test can compare it to the store.

    Examples
    --------
    >>> "data-metric='sharpe' data-value='1.5'>1.50<" in metric_cards_html(
    ...     {"metrics": {"sharpe": 1.5}})
    True
    """
    cards = []
    for key in KEY_METRICS:
        value = metric_value(meta, key)
        text = format_metric(key, value) if value is not None else "—"
        raw = "" if value is None else repr(value)
        cards.append(f"<div class='ql-card'><div class='label'>{LABELS[key]}</div>"
                     f"<div class='metric' data-metric='{key}' data-value='{raw}'>{text}</div>"
                     "</div>")
    return "<div class='ql-cards'>" + "".join(cards) + "</div>"


def metric_cards(meta: dict[str, Any]) -> pn.pane.HTML:
    """Metric cards pane (see :func:`metric_cards_html`)."""
    return pn.pane.HTML(metric_cards_html(meta), stylesheets=[CSS], sizing_mode="stretch_width")


def metrics_table_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """All stored metrics as display rows (name, value).

    Examples
    --------
    >>> metrics_table_rows({"sharpe": 1.0, "cagr": 0.1})
    [{'metric': 'cagr', 'value': '10.00%'}, {'metric': 'sharpe', 'value': '1.00'}]
    """
    return [{"metric": k, "value": format_metric(k, v)} for k, v in sorted(metrics.items())]
