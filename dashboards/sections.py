"""The tear sheet's HTML tables: relative statistics, worst drawdowns, parameters.

Built once per result (results are immutable) and cached beside the plots by
:func:`tables_html`; every number carries ``data-stat`` and its full-precision
``data-value`` (browser tests compare them to the cross-check libraries) and its
definition as hover text (:mod:`dashboards.glossary`).
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd

from dashboards.common import format_metric
from dashboards.glossary import hover_attr, label
from quantlib.results.view import ResultsView
from quantlib.serving.views import tearstats as ts

__all__ = ["relative_html", "drawdowns_html", "params_html", "tables_html", "RELATIVE_KEYS"]

RELATIVE_KEYS = ("alpha", "beta", "information_ratio", "tracking_error", "up_capture",
                 "down_capture", "correlation")
_UNITS = {"alpha": "pct", "tracking_error": "pct"}


def _fmt(key: str, value: float) -> str:
    if _UNITS.get(key) == "pct":
        return format_metric("annual_return", value)
    return format_metric("sharpe", value)


def relative_html(stats: dict[str, float], bench_label: str) -> str:
    """The relative statistics against the benchmark as one table.

    Examples
    --------
    >>> out = relative_html({"alpha": 0.021, "beta": 0.9}, "index")
    >>> "data-stat='alpha' data-value='0.021'>2.10%<" in out, "title='ratio:" in out
    (True, True)
    """
    rows = "".join(
        f"<tr><th{hover_attr(k)}>{label(k)}</th><td data-stat='{k}' data-value='{v!r}'>"
        f"{_fmt(k, v)}</td></tr>" for k, v in stats.items())
    return (f"<section><h3>Relative to the benchmark</h3><p class='ql-note'>Benchmark: "
            f"{html.escape(bench_label)}</p><table class='ql-metrics ql-relative'>{rows}</table>"
            "</section>")


def _day(x: Any) -> str:
    return "not yet" if pd.isna(x) else str(pd.Timestamp(x).date())


def drawdowns_html(table: pd.DataFrame) -> str:
    """The worst drawdowns: peak, trough, recovery, depth and length.

    Examples
    --------
    >>> t = pd.DataFrame({"peak": pd.to_datetime(["2024-01-02"]), "trough":
    ...     pd.to_datetime(["2024-02-01"]), "recovery": [pd.NaT], "depth": [-0.1],
    ...     "sessions": [40]})
    >>> "<td>not yet</td>" in drawdowns_html(t), "data-value='-0.1'" in drawdowns_html(t)
    (True, True)
    """
    head = ("<tr><th>#</th><th>Peak</th><th>Trough</th><th>Recovery</th>"
            f"<th{hover_attr('depth')}>Depth</th><th{hover_attr('sessions')}>Length "
            "(sessions)</th></tr>")
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{_day(r.peak)}</td><td>{_day(r.trough)}</td>"
        f"<td>{_day(r.recovery)}</td><td data-stat='drawdown_depth' data-value='{r.depth!r}'>"
        f"{format_metric('max_drawdown', r.depth)}</td><td>{int(r.sessions)}</td></tr>"
        for i, r in enumerate(table.itertuples()))
    return ("<section><h3>Worst drawdowns</h3><table class='ql-metrics ql-drawdowns'>"
            f"{head}{rows}</table></section>")


def _value(v: Any) -> str:
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def params_html(params: dict[str, Any]) -> str:
    """The strategy's parameters as a two-column table (name, value).

    Examples
    --------
    >>> params_html({"lookback": 60, "grid": {"k": [1, 2]}}).count("<tr>")
    2
    """
    if not params:
        return "<p class='ql-note'>No parameters.</p>"
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_value(v))}</td></tr>"
                   for k, v in params.items())
    return f"<table class='ql-meta ql-params'>{rows}</table>"


def tables_html(view: ResultsView, rid: str) -> str:
    """Relative statistics and worst drawdowns of ``rid`` (benchmark as the plots')."""
    from dashboards.figures import tear_sheet_inputs

    returns, bench_label = tear_sheet_inputs(view, rid)
    parts = []
    if "benchmark" in returns:
        stats = ts.relative_stats(returns["net"], returns["benchmark"])
        parts.append(relative_html({k: stats[k] for k in RELATIVE_KEYS}, bench_label))
    else:
        parts.append("<section><h3>Relative to the benchmark</h3><p class='ql-note'>No "
                     "benchmark for this result (set QUANTLIB_TEARSHEET_BENCHMARK to "
                     "equal_weight or market for catalog results).</p></section>")
    parts.append(drawdowns_html(ts.worst_drawdowns(returns["net"], n=5)))
    return "<div class='ql-tables'>" + "".join(parts) + "</div>"
