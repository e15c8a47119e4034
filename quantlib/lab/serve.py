"""Serve a Panel app from a notebook's kernel, reachable through the hub.

``pn.serve(...)``/``.show()`` start a Bokeh server on a loopback port of the user's
server and point a browser at ``http://localhost:<port>``, which a hub user cannot
reach. :func:`serve` starts the same server behind jupyter-server-proxy's
``<prefix>proxy/absolute/<port>/`` (the path is passed on unchanged, so the Bokeh server is
given it as its ``prefix`` and every URL it writes is right), and shows the link.

In a hub's kernel, Panel's own ``.show()`` and ``pn.serve(..., show=True)`` (HoloViews
and hvplot objects go through ``pn.panel(obj).show()``) take the same path:
:func:`route_show` (installed by :mod:`quantlib.lab.startup` when Panel is imported)
hands them to :func:`serve`, which displays the app's link under the hub in the cell's
output instead of opening a browser on the server's machine.

jupyter-server-proxy checks the websocket's origin against the page (same origin only),
so the Bokeh server itself accepts any origin: the browser's is the hub's public address,
which the kernel does not know.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["serve", "Served", "proxied_prefix", "route_show"]


def proxied_prefix(port: int, environ: dict[str, str] | None = None) -> str:
    """The URL path under which the user's server proxies ``port`` ('' outside a hub).

    Examples
    --------
    >>> proxied_prefix(5006, {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"})
    '/user/alice/proxy/absolute/5006'
    >>> proxied_prefix(5006, {})
    ''
    """
    env = os.environ if environ is None else environ
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "").rstrip("/")
    return f"{prefix}/proxy/absolute/{port}" if prefix else ""


@dataclass
class Served:
    """A running app: its ``url`` (a path under the hub) and the server thread."""

    url: str
    server: Any

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()

    def _repr_html_(self) -> str:
        link = html.escape(self.url)
        return f"<a href='{link}' target='_blank'>Open the app: {link}</a>"


def serve(obj: Any, *, port: int | None = None, title: str | None = None,
          environ: dict[str, str] | None = None) -> Served:
    """Serve a Panel object (or anything ``pn.panel`` takes) from this kernel.

    Parameters
    ----------
    obj : Viewable, callable or mapping
        What ``pn.serve`` takes.
    port : int, optional
        Loopback port (default: a free one).
    title : str, optional
        The browser tab's title.
    """
    import panel as pn

    from quantlib.platform.hubconfig import free_port

    port = port or free_port()
    prefix = proxied_prefix(port, environ)
    server = pn.serve(obj, port=port, address="127.0.0.1", show=False, threaded=True,
                      title=title, websocket_origin="*", prefix=prefix, verbose=False)
    return Served(f"{prefix}/" if prefix else f"http://127.0.0.1:{port}/", server)


def _shown_through_the_hub(original: Any, environ: dict[str, str] | None) -> Any:
    """``pn.serve`` that, asked to ``show``, serves behind the hub and displays the link."""
    def serve_or_show(panels: Any, port: int = 0, *args: Any, show: bool = True,
                      **kwargs: Any) -> Any:
        if not show or args or not proxied_prefix(1, environ):
            return original(panels, port, *args, show=show, **kwargs)
        from IPython.display import display

        served = serve(panels, port=port or None, title=kwargs.get("title"), environ=environ)
        display(served)
        return served.server

    serve_or_show.__wrapped__ = original  # type: ignore[attr-defined]
    return serve_or_show


def route_show(environ: dict[str, str] | None = None) -> None:
    """Make Panel's ``.show()``/``pn.serve(show=True)`` serve behind the hub (no-op outside).

    The app is served by :func:`serve` (threaded, under
    ``<prefix>proxy/absolute/<port>/``) and its link is displayed where ``show()`` was
    called; ``show()`` returns the server (``.stop()`` stops it).
    """
    import panel
    import panel.io
    import panel.io.server
    import panel.viewable

    current = panel.io.server.serve
    original = getattr(current, "__wrapped__", current)
    routed = _shown_through_the_hub(original, environ)
    for module in (panel, panel.io, panel.io.server, panel.viewable):
        module.serve = routed  # type: ignore[attr-defined]
