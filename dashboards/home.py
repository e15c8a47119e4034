"""The managers' home at the dashboards' root: published results as cards.

``<prefix>`` (the root of the dashboards service) answers one plain HTML page, behind
the same hub OAuth as every page: the quantlib bar (home, gallery, compare, what-if,
data health, results API, hub, log out) and one card per result the viewer may see:
title (to the tear sheet), author, strategy, tags, an inline SVG sparkline of the
equity curve, the stored CAGR, Sharpe and max drawdown, the data snapshot and how old
its data is. A search box and tag buttons filter the cards in the browser; ticking
2-5 cards opens the compare view. Everything is inline (no script, font or image from
anywhere else).
"""

from __future__ import annotations

import html
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.ioloop import IOLoop
from tornado.web import authenticated

from dashboards.common import format_metric
from dashboards.glossary import hover_attr
from dashboards.layout import document, page_viewer
from quantlib.backtest.metrics import equity_curve
from quantlib.errors import QuantlibError
from quantlib.results.view import Viewer, metric_value
from quantlib.serving.server.session import results_view

__all__ = ["HomeHandler", "home_html", "sparkline_svg", "freshness", "STALE_DAYS"]

#: data older than this many days (the result's last date to today) is flagged stale
STALE_DAYS = 7
CARD_METRICS = ("cagr", "sharpe", "max_drawdown")

HOME_CSS = """
.ql-tools {display:flex; gap:0.8em; align-items:center; flex-wrap:wrap; margin:0.8em 0;}
.ql-tools input[type=search] {padding:0.4em 0.7em; min-width:18em; border:1px solid #bbb;
                               border-radius:4px;}
.ql-tag {border:1px solid #9db4cc; background:#fff; border-radius:12px; padding:0.15em 0.7em;
         cursor:pointer; font-size:0.85em;}
.ql-tag[aria-pressed=true] {background:#12355b; color:#fff;}
.ql-grid {display:grid; grid-template-columns:repeat(auto-fill, minmax(19em, 1fr)); gap:1em;}
.ql-rcard {background:#fff; border:1px solid #dde3ea; border-radius:8px; padding:0.8em 1em;}
.ql-rcard h3 {margin:0 0 0.2em; font-size:1.05em;}
.ql-rcard .ql-by {color:#5a6b7d; font-size:0.85em;}
.ql-rcard .ql-kpis {display:flex; gap:1.2em; margin:0.4em 0;}
.ql-rcard .ql-kpis div {display:flex; flex-direction:column;}
.ql-rcard .ql-kpis .label {color:#5a6b7d; font-size:0.75em; text-transform:uppercase;}
.ql-rcard .ql-kpis .metric {font-weight:650; font-size:1.1em;}
.ql-fresh {font-size:0.85em; color:#2d7a46;} .ql-fresh.stale {color:#c0392b; font-weight:600;}
.ql-spark {width:100%; height:48px;}
.ql-rcard label {font-size:0.85em; color:#5a6b7d;}
"""

#: search, tag filter and the compare button (inline, runs on this page only)
HOME_JS = """
(function () {
  const cards = [...document.querySelectorAll('.ql-rcard')];
  const search = document.getElementById('ql-search');
  const tags = [...document.querySelectorAll('.ql-tag')];
  const count = document.getElementById('ql-count');
  function apply() {
    const q = search.value.trim().toLowerCase();
    const on = tags.filter(t => t.getAttribute('aria-pressed') === 'true').map(t => t.dataset.tag);
    let shown = 0;
    for (const c of cards) {
      const ok = (!q || c.dataset.text.includes(q)) &&
                 on.every(t => c.dataset.tags.split(',').includes(t));
      c.hidden = !ok; shown += ok ? 1 : 0;
    }
    count.textContent = shown + ' of ' + cards.length + ' results';
  }
  search.addEventListener('input', apply);
  tags.forEach(t => t.addEventListener('click', () => {
    t.setAttribute('aria-pressed', String(t.getAttribute('aria-pressed') !== 'true')); apply();
  }));
  const button = document.getElementById('ql-compare');
  function picked() { return [...document.querySelectorAll('.ql-pick:checked')].map(b => b.value); }
  document.querySelectorAll('.ql-pick').forEach(b => b.addEventListener('change', () => {
    const n = picked().length; button.disabled = n < 2 || n > 5;
    button.textContent = 'Compare selected (' + n + ')';
  }));
  button.addEventListener('click', () => { location.href = './compare?ids=' + picked().join(','); });
  apply();
})();
"""

_SPARKS: OrderedDict[str, str] = OrderedDict()
_SPARKS_LOCK = threading.Lock()


def sparkline_svg(equity: pd.Series, points: int = 120, width: int = 300, height: int = 48) -> str:
    """An inline SVG polyline of an equity curve, ``points`` samples wide.

    Examples
    --------
    >>> svg = sparkline_svg(pd.Series([1.0, 2.0, 1.5]))
    >>> svg.count("<polyline"), "points='0.0,46.0 150.0,2.0 300.0,24.0'" in svg
    (1, True)
    """
    values = equity.to_numpy(dtype=float)
    if len(values) > points:
        values = values[np.linspace(0, len(values) - 1, points).round().astype(int)]
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    span = hi - lo or 1.0
    xs = np.linspace(0, width, len(values))
    ys = 2 + (height - 4) * (1 - (values - lo) / span)
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    colour = "#2d7a46" if values[-1] >= values[0] else "#c0392b"
    return (f"<svg class='ql-spark' viewBox='0 0 {width} {height}' preserveAspectRatio='none' "
            f"role='img' aria-label='equity curve'><polyline points='{pts}' fill='none' "
            f"stroke='{colour}' stroke-width='1.5' vector-effect='non-scaling-stroke'/></svg>")


def _spark(rid: str) -> str:
    with _SPARKS_LOCK:
        if rid in _SPARKS:
            return _SPARKS[rid]
    try:
        svg = sparkline_svg(equity_curve(results_view().returns(rid)["net"]))
    except (QuantlibError, OSError, KeyError, ValueError):
        svg = "<p class='ql-by'>equity curve unavailable</p>"
    with _SPARKS_LOCK:  # results are immutable: a result's sparkline never changes
        _SPARKS[rid] = svg
        while len(_SPARKS) > 512:
            _SPARKS.popitem(last=False)
    return svg


def freshness(meta: dict[str, Any], now: datetime | None = None) -> tuple[str, bool]:
    """``(text, stale)``: the data snapshot, the result's last date and its age in days.

    Examples
    --------
    >>> freshness({"snapshot": "s1", "end": "2025-06-02T00:00:00"},
    ...           datetime(2025, 6, 4, tzinfo=UTC))
    ('snapshot s1 · data to 2025-06-02 (2 days old)', False)
    >>> freshness({"end": "2025-01-02"}, datetime(2025, 6, 4, tzinfo=UTC))[1]
    True
    """
    now = now or datetime.now(UTC)
    snap = meta.get("snapshot") or "—"
    end = meta.get("end")
    if not end:
        return f"snapshot {snap} · data end unknown", True
    day = pd.Timestamp(end).tz_localize(None).normalize()
    age = (pd.Timestamp(now).tz_localize(None).normalize() - day).days
    return f"snapshot {snap} · data to {day.date()} ({age} days old)", age > STALE_DAYS


def _card(meta: dict[str, Any]) -> str:
    rid = str(meta["result_id"])
    title = html.escape(str(meta.get("title") or rid))
    tags = [str(t) for t in meta.get("tags") or []]
    kpis = "".join(
        f"<div><span class='label'{hover_attr(k)}>{k.replace('_', ' ')}</span>"
        f"<span class='metric' data-metric='{k}' data-value='{metric_value(meta, k)!r}'>"
        f"{format_metric(k, metric_value(meta, k))}</span></div>" for k in CARD_METRICS)
    fresh, stale = freshness(meta)
    text = " ".join(str(meta.get(k) or "") for k in ("title", "author", "strategy",
                                                     "description")) + " " + " ".join(tags)
    return (f"<article class='ql-rcard' data-result='{rid}' data-tags='{html.escape(','.join(tags))}'"
            f" data-text='{html.escape(text.lower())}'>"
            f"<h3><a href='./tearsheet?id={rid}'>{title}</a></h3>"
            f"<div class='ql-by'>{html.escape(str(meta.get('author') or '—'))} · "
            f"{html.escape(str(meta.get('strategy') or ''))}"
            f"{' · ' + html.escape(', '.join(tags)) if tags else ''}</div>"
            f"{_spark(rid)}<div class='ql-kpis'>{kpis}</div>"
            f"<div class='ql-fresh{' stale' if stale else ''}'>{html.escape(fresh)}</div>"
            f"<label><input type='checkbox' class='ql-pick' value='{rid}'> compare</label>"
            "</article>")


def home_html(viewer: Viewer, metas: list[dict[str, Any]]) -> str:
    """The whole home page for ``viewer`` and the results they may see (newest first)."""
    tags = sorted({str(t) for m in metas for t in m.get("tags") or []})
    chips = "".join(f"<button type='button' class='ql-tag' data-tag='{html.escape(t)}' "
                    f"aria-pressed='false'>{html.escape(t)}</button>" for t in tags)
    cards = "".join(_card(m) for m in metas) or (
        "<p>No published results yet. Researchers publish them from their notebooks "
        "(<code>quantlib.results.publish</code>).</p>")
    body = (f"<h1>Published results</h1><div class='ql-tools'><input id='ql-search' "
            "type='search' placeholder='Search title, author, strategy, tag…' "
            f"aria-label='Search results'>{chips}<span id='ql-count'></span>"
            "<button id='ql-compare' type='button' disabled>Compare selected (0)</button></div>"
            f"<section class='ql-grid'>{cards}</section><script>{HOME_JS}</script>")
    return document("Home", body, viewer, current="Home", css=HOME_CSS)


class HomeHandler(AuthRequestHandler):
    """``GET <prefix>`` behind the apps' auth: the managers' home."""

    @authenticated
    async def get(self) -> None:
        """Answer the home page of the logged-in viewer."""
        viewer = page_viewer(self, "quantlib")
        if viewer is None:
            return
        metas = await IOLoop.current().run_in_executor(
            None, lambda: results_view().list(viewer))
        page = await IOLoop.current().run_in_executor(None, home_html, viewer, metas)
        self.finish(page)
