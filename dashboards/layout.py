"""The dashboards' page chrome: quantlib brand, navigation, the hub and logout links.

Every page (Panel apps and the plain HTML pages alike) starts with :func:`nav_html`, so a
manager can always reach the home, gallery, compare view, what-if, data health, the
results API docs, the hub and logout. Nothing here loads anything from outside the
platform: the logo is inline SVG and the fonts are the browser's system fonts.
"""

from __future__ import annotations

import html
import os
from typing import Any

from quantlib.results.view import Viewer
from quantlib.serving.server.pages import pages

__all__ = ["BRAND_CSS", "LOGO_SVG", "nav_links", "nav_html", "document", "refusal_html",
           "bokeh_script", "page_viewer"]

#: the quantlib mark: a rising equity line in a rounded square (inline, no request)
LOGO_SVG = ("<svg class='ql-logo' viewBox='0 0 32 32' width='28' height='28' aria-hidden='true'>"
            "<rect width='32' height='32' rx='7' fill='#12355b'/>"
            "<polyline points='5,24 11,18 16,21 22,11 27,7' fill='none' stroke='#5fd3a6' "
            "stroke-width='3' stroke-linecap='round' stroke-linejoin='round'/></svg>")

BRAND_CSS = """
body {font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
      margin: 0; color: #1d2733; background: #f6f8fa;}
.ql-top {display:flex; align-items:center; gap:1.2em; padding:0.55em 1.2em;
         background:#12355b; color:#fff; flex-wrap:wrap;}
.ql-top a {color:#dce8f5; text-decoration:none;} .ql-top a:hover {color:#fff;}
.ql-brand {display:flex; align-items:center; gap:0.5em; font-weight:700; font-size:1.15em;}
.ql-brand a {color:#fff;}
.ql-top nav {display:flex; gap:1em; flex-wrap:wrap;}
.ql-top .ql-user {margin-left:auto; color:#dce8f5;}
main.ql-main {padding:0.6em 1.4em 2em;}
.ql-alert {border-left:4px solid #c0392b; background:#fff; padding:0.8em 1em; margin:1em 0;}
"""


def _hub_base() -> str | None:
    """The hub's base URL path when running behind the hub (``JUPYTERHUB_BASE_URL``)."""
    if not os.environ.get("JUPYTERHUB_API_URL"):
        return None
    return os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/"


def nav_links() -> list[tuple[str, str]]:
    """``(href, label)`` of the navigation, relative to the dashboards' root.

    The page registry's pages with ``nav`` (``dashboards/pages.yaml``, in its order);
    then the results API, hub home and logout when the dashboards run behind the hub
    (their URLs come from ``JUPYTERHUB_BASE_URL``).

    Examples
    --------
    >>> import os
    >>> saved = os.environ.pop("JUPYTERHUB_API_URL", None)
    >>> [label for _, label in nav_links()]
    ['Home', 'Gallery', 'Compare', 'What-if', 'Data health']
    >>> _ = saved and os.environ.update(JUPYTERHUB_API_URL=saved)
    """
    links = [(p.href, p.title) for p in pages() if p.nav]
    base = _hub_base()
    if base is not None:
        links += [(f"{base}services/results-api/", "Results API"), (f"{base}hub/home", "Hub"),
                  (f"{base}hub/logout", "Log out")]
    return links


def nav_html(viewer: Viewer | None, current: str = "") -> str:
    """The top bar: logo and name, navigation, who is logged in.

    Examples
    --------
    >>> out = nav_html(Viewer("mo", ("managers",)), "Home")
    >>> "quantlib" in out, "aria-current='page'>Home<" in out, "mo (managers)" in out
    (True, True, True)
    """
    items = "".join(
        f"<a href='{href}'{' aria-current=' + repr('page') if label == current else ''}>"
        f"{label}</a>" for href, label in nav_links())
    who = "" if viewer is None else (
        f"<span class='ql-user'>{html.escape(viewer.name)} "
        f"({html.escape(', '.join(viewer.groups) or 'no group')})</span>")
    return (f"<header class='ql-top'><span class='ql-brand'>{LOGO_SVG}<a href='./'>quantlib</a>"
            f"</span><nav>{items}</nav>{who}</header>")


def document(title: str, body: str, viewer: Viewer | None, *, current: str = "",
             css: str = "", head: str = "") -> str:
    """A whole HTML page with the brand bar (no external resources).

    Examples
    --------
    >>> page = document("T", "<p>x</p>", None)
    >>> page.startswith("<!DOCTYPE html>"), "<title>T · quantlib</title>" in page
    (True, True)
    """
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)} · quantlib</title><style>{BRAND_CSS}{css}</style>"
            f"{head}</head><body>{nav_html(viewer, current)}<main class='ql-main'>{body}"
            "</main></body></html>")


def refusal_html(title: str, message: str, viewer: Viewer | None = None) -> str:
    """A friendly page for a refused request: what happened, and the way home.

    Examples
    --------
    >>> "href='./'" in refusal_html("Tear sheet", "not yours")
    True
    """
    body = (f"<h2>{html.escape(title)}</h2><div class='ql-alert' role='alert'>"
            f"{html.escape(message)}</div><p>Go back to the <a href='./'>published results</a>"
            " or ask a platform admin for access.</p>")
    return document(title, body, viewer)


def bokeh_script() -> str:
    """``<script>`` loading BokehJS from this server (versioned URL, cached by the browser)."""
    from bokeh.server.views.static_handler import StaticHandler

    from quantlib.serving.server.session import settings

    prefix = settings().prefix.rstrip("/") + "/"
    return f"<script src='{prefix}static/{StaticHandler.append_version('js/bokeh.min.js')}'></script>"


def page_viewer(handler: Any, title: str) -> Viewer | None:
    """Start a per-viewer HTML answer: its headers, and the request's viewer.

    Returns None after answering 403 with a friendly page when the request has no hub
    user (the caller just returns).
    """
    from quantlib.errors import QuantlibError
    from quantlib.serving.server.session import current_viewer

    handler.set_header("Content-Type", "text/html; charset=utf-8")
    handler.set_header("Cache-Control", "no-store")  # per-viewer pages
    try:
        return current_viewer(handler.current_user)
    except QuantlibError as exc:
        handler.set_status(403)
        handler.finish(refusal_html(title, str(exc)))
        return None
