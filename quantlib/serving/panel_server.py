"""Launch the Panel apps in ``dashboards/`` (``panel serve``'s server, configured in code).

The Panel apps are served at ``<prefix>gallery``, ``<prefix>whatif`` and ``<prefix>health``;
the managers' home ``<prefix>`` (replacing Panel's index page), the tear sheet
``<prefix>tearsheet`` and the compare view ``<prefix>compare`` are plain Tornado
handlers in the same server (one HTML response with cached, pre-serialized plots:
see ``dashboards/tearsheet.py``), behind the same auth provider. Under the hub
(``hub=True``) the prefix is ``JUPYTERHUB_SERVICE_PREFIX`` and every request goes through
:class:`quantlib.serving.hub_oauth.HubAuthProvider`. Only loopback binds are used; the
browser reaches the apps through the hub's proxy, whose origin must be allowed for the
websocket (``127.0.0.1:*`` and ``localhost:*`` always are).
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from quantlib.errors import ConfigError
from quantlib.results.view import Viewer

__all__ = ["serve_dashboards", "load_apps", "load_handlers", "APP_NAMES", "HANDLER_ROUTES",
           "BACKGROUND", "dashboards_dir", "websocket_origins"]

log = logging.getLogger(__name__)

APP_NAMES = ("gallery", "whatif", "health")
#: route -> ``"dashboards.<module>:<handler class>"`` of the pages that are not Panel apps
HANDLER_ROUTES = {"": "dashboards.home:HomeHandler",
                  "tearsheet": "dashboards.tearsheet:TearSheetHandler",
                  "compare": "dashboards.compare:CompareHandler"}
#: ``"module:function"`` started once with the server (background work of the pages)
BACKGROUND = ("dashboards.tearsheet:prebuild_published",)


def dashboards_dir() -> Path:
    """The ``dashboards/`` folder beside the ``quantlib`` package."""
    path = Path(__file__).resolve().parents[2] / "dashboards"
    if not (path / "gallery.py").exists():
        raise ConfigError("the dashboards folder must sit beside quantlib/",
                          found=f"no {path / 'gallery.py'}",
                          fix="run from a checkout of the project")
    return path


def load_apps() -> dict[str, Callable[[], Any]]:
    """Import ``dashboards.<name>`` for each app; return route -> page factory."""
    root = str(dashboards_dir().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return {name: importlib.import_module(f"dashboards.{name}").page for name in APP_NAMES}


def _load(target: str) -> Any:
    """The object named by a lazy ``"module:attr"`` string under ``dashboards/``."""
    root = str(dashboards_dir().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def load_handlers() -> list[tuple[str, Any]]:
    """Tornado patterns ``(r"/<route>", handler class)`` of :data:`HANDLER_ROUTES`.

    The empty route is the dashboards' root (the managers' home, in place of Panel's
    index page), with or without its trailing slash.
    """
    return [(rf"/{route}" if route else r"/?", _load(target))
            for route, target in HANDLER_ROUTES.items()]


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

    from quantlib.serving.session import configure

    configure(results_url, hub=hub, dev_viewer=Viewer(dev_user, tuple(dev_groups)),
              prefix=prefix)
    pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)
    pn.config.cookie_secret = secrets.token_urlsafe(32)  # type: ignore[misc]
    pn.config.nthreads = num_threads  # type: ignore[misc]
    apps = load_apps()
    opts: dict[str, Any] = {
        "port": port, "address": host, "prefix": prefix.rstrip("/"),
        "websocket_origin": websocket_origins(port, origins, hub),
        "show": False, "start": start, "title": {n: n.title() for n in apps},
        "liveness": True, "exclude_headers": ["Cookie", "Authorization"],
        "include_cookies": ["user"], "check_unused_sessions": 5000,
        "unused_session_lifetime": 60000, "extra_patterns": load_handlers(),
    }
    if hub:
        from quantlib.serving.hub_oauth import HubAuthProvider, HubCallbackHandler

        provider = HubAuthProvider()
        opts["auth_provider"] = provider
        opts["extra_patterns"].append((r"/oauth_callback", HubCallbackHandler))
        log.info("dashboards behind hub OAuth, access scopes %s", sorted(provider.access_scopes))
    log.info("dashboards on http://%s:%s%s (results %s)", host, port, prefix, results_url)
    if start:
        for target in BACKGROUND:
            _load(target)()
    return pn.serve(apps, **opts)
