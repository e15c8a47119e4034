"""Launch the dashboards: every page of the page registry in one Bokeh/Panel server.

The pages are the entries of ``dashboards/pages.yaml`` (:mod:`quantlib.serving.server.pages`):
``panel`` pages are Panel apps served at ``<prefix><route>`` (one session per browser
tab); ``html`` pages are plain Tornado handlers in the same server (one HTML response,
e.g. the managers' home at ``<prefix>`` in place of Panel's index page, and the tear
sheet with cached, pre-serialized plots: see ``dashboards/tearsheet.py``), behind the
same auth provider. Under the hub (``hub=True``) the prefix is
``JUPYTERHUB_SERVICE_PREFIX`` and every request goes through
:class:`quantlib.serving.auth.hub_oauth.HubAuthProvider`. Only loopback binds are used;
the browser reaches the apps through the hub's proxy, whose origin must be allowed for
the websocket (``127.0.0.1:*`` and ``localhost:*`` always are). ``dashboards`` is an
installed package (it ships in the wheel beside ``quantlib``): nothing edits ``sys.path``.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from quantlib.results.view import Viewer
from quantlib.serving.server.pages import load, pages, registry

__all__ = ["serve_dashboards", "load_apps", "load_handlers", "websocket_origins"]

log = logging.getLogger(__name__)


def load_apps() -> dict[str, Callable[[], Any]]:
    """Route -> page factory of every registered Panel page.

    Examples
    --------
    >>> sorted(load_apps())
    ['gallery', 'health', 'whatif']
    """
    return {p.route: load(p.target) for p in pages("panel")}


def load_handlers() -> list[tuple[str, Any]]:
    """Tornado patterns ``(r"/<route>", handler class)`` of the registered HTML pages.

    The empty route is the dashboards' root (the managers' home, in place of Panel's
    index page), with or without its trailing slash.
    """
    return [(rf"/{p.route}" if p.route else r"/?", load(p.target)) for p in pages("html")]


def websocket_origins(port: int, extra: tuple[str, ...] = (), hub: bool = False) -> list[str]:
    """Origins allowed to open the apps' websocket.

    Always this server's own loopback origins; plus ``extra``, ``QUANTLIB_DASHBOARDS_ORIGINS``
    (comma separated) and the hub's ``JUPYTERHUB_PUBLIC_URL``. Under the hub with none of
    those known, any origin (logged): the hub login, the session cookie and Bokeh's
    per-page session token still guard the websocket.

    Examples
    --------
    >>> websocket_origins(8765, ("hub.example:443",))
    ['127.0.0.1:8765', 'localhost:8765', 'hub.example:443']
    """
    out = [f"127.0.0.1:{port}", f"localhost:{port}", *extra]
    env = [o for o in os.environ.get("QUANTLIB_DASHBOARDS_ORIGINS", "").split(",") if o]
    public = urlparse(os.environ.get("JUPYTERHUB_PUBLIC_URL", ""))
    if public.hostname:
        default = 443 if public.scheme == "https" else 80
        env.append(f"{public.hostname}:{public.port or default}")
    out += env
    if hub and not extra and not env:
        log.warning("no public hub origin known (set JUPYTERHUB_PUBLIC_URL or "
                    "QUANTLIB_DASHBOARDS_ORIGINS): allowing websocket from any origin")
        out.append("*")
    return out


def _start_busy_cleanup(loop: Any) -> None:
    """Start Panel's busy-counter cleanup on the server's event loop, before any session.

    Panel 1.10 starts that cleanup (a 10 s ``PeriodicCallback``) lazily, at the first busy
    event. With ``nthreads`` set (this server's ``num_threads``) that event comes from a
    pool thread, where ``PeriodicCallback.start`` re-queues itself as a next-tick callback,
    which Panel runs on a pool thread again: it never starts and never stops re-queueing,
    so a server whose first page has been opened burns CPU while idle (a trivial app:
    27-33 % of a core; the tests' dashboards server: ~60 % for the rest of the run).
    Started here on the loop thread first, the cleanup is an asyncio task and the pool
    threads' later calls return early. A no-op if Panel drops the private hook.

    Parameters
    ----------
    loop : tornado.ioloop.IOLoop
        The loop the server will run on; the cleanup starts once it runs.
    """
    from panel.io.state import state

    schedule = getattr(state, "_schedule_busy_cleanup", None)
    if schedule is not None:
        loop.add_callback(schedule)


def serve_dashboards(*, results_url: str, host: str = "127.0.0.1", port: int = 8765,
                     prefix: str = "/", hub: bool = False, dev_user: str = "dev",
                     dev_groups: tuple[str, ...] = ("researchers",),
                     origins: tuple[str, ...] = (), num_threads: int = 4,
                     start: bool = True) -> Any:
    """Configure and start the dashboards server (blocks while serving if ``start``).

    Parameters
    ----------
    results_url : str
        Results store the apps read.
    host, port : str, int
        Bind address (loopback).
    prefix : str
        URL prefix (the hub's ``JUPYTERHUB_SERVICE_PREFIX`` under the hub).
    hub : bool
        Authenticate with the hub's OAuth (else dev mode as ``dev_user``).
    origins : tuple of str
        Extra websocket origins (``host[:port]``).
    num_threads : int
        Threads that build sessions concurrently.
    """
    import panel as pn

    from quantlib.serving.server.session import configure

    configure(results_url, hub=hub, dev_viewer=Viewer(dev_user, tuple(dev_groups)),
              prefix=prefix)
    pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)
    pn.config.cookie_secret = secrets.token_urlsafe(32)  # type: ignore[misc]
    pn.config.nthreads = num_threads  # type: ignore[misc]
    apps = load_apps()
    opts: dict[str, Any] = {
        "port": port, "address": host, "prefix": prefix.rstrip("/"),
        "websocket_origin": websocket_origins(port, origins, hub),
        "show": False, "start": start,
        "title": {p.route: p.title for p in pages("panel")},
        "liveness": True, "exclude_headers": ["Cookie", "Authorization"],
        "include_cookies": ["user"], "check_unused_sessions": 5000,
        "unused_session_lifetime": 60000, "extra_patterns": load_handlers(),
    }
    if hub:
        from quantlib.serving.auth.hub_oauth import HubAuthProvider, HubCallbackHandler

        provider = HubAuthProvider()
        opts["auth_provider"] = provider
        opts["extra_patterns"].append((r"/oauth_callback", HubCallbackHandler))
        log.info("dashboards behind hub OAuth, access scopes %s", sorted(provider.access_scopes))
    log.info("dashboards on http://%s:%s%s (results %s)", host, port, prefix, results_url)
    from tornado.ioloop import IOLoop

    _start_busy_cleanup(IOLoop.current())  # the loop pn.serve runs on (io_loop=current)
    if start:
        for target in registry().background:
            load(target)()
    return pn.serve(apps, **opts)
