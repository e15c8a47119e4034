"""What a dashboard session needs: the results store, the current viewer, the services.

:func:`configure` is called once by the launcher
(:func:`quantlib.serving.server.launch.serve_dashboards`); the apps in ``dashboards/``
call :func:`current_viewer` and :func:`results_view`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from quantlib.errors import AccessDeniedError
from quantlib.results.view import ResultsView, Viewer

__all__ = ["DashboardSettings", "configure", "settings", "current_viewer", "results_view"]


@dataclass
class DashboardSettings:
    """Process-wide settings of the dashboards server."""

    results_url: str
    hub: bool = False
    dev_viewer: Viewer = field(default_factory=lambda: Viewer("dev", ("researchers",)))
    prefix: str = "/"
    view: ResultsView | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_SETTINGS: DashboardSettings | None = None


def configure(results_url: str, *, hub: bool = False, dev_viewer: Viewer | None = None,
              prefix: str = "/") -> DashboardSettings:
    """Set the dashboards' settings for this process and return them.

    Examples
    --------
    >>> s = configure("memory://dash-doc", dev_viewer=Viewer("mo", ("managers",)))
    >>> current_viewer().name
    'mo'
    """
    global _SETTINGS
    _SETTINGS = DashboardSettings(results_url=results_url, hub=hub,
                                  dev_viewer=dev_viewer or Viewer("dev", ("researchers",)),
                                  prefix=prefix, view=ResultsView(results_url))
    return _SETTINGS


def settings() -> DashboardSettings:
    """The settings set by :func:`configure` (from ``QUANTLIB_RESULTS``/config if unset)."""
    if _SETTINGS is None:
        from quantlib.config import load_config

        return configure(os.environ.get("QUANTLIB_RESULTS") or load_config().results_url)
    return _SETTINGS


def results_view() -> ResultsView:
    """The shared read-only results store view."""
    view = settings().view
    if view is None:  # pragma: no cover
        raise RuntimeError("dashboards not configured")
    return view


def current_viewer(user: str | None = None) -> Viewer:
    """The user of the current Panel session (or of a request, by its hub ``user`` name).

    In hub mode the name comes from Panel's signed ``user`` cookie (or ``user``: the name
    a request handler's auth check returned) and the groups from the hub check that
    admitted the request; in dev mode it is the configured user.

    Raises
    ------
    AccessDeniedError
        In hub mode, when the session has no hub-authenticated user.
    """
    s = settings()
    if not s.hub:
        return s.dev_viewer
    from quantlib.serving.auth.hub_oauth import VIEWERS

    if user is None:
        import panel as pn

        user = pn.state.user
    name = user
    viewer = VIEWERS.get(name) if name else None
    if viewer is None:
        raise AccessDeniedError("dashboards need a hub login", found="no hub user in session",
                                fix="open the dashboards through the hub and log in")
    return viewer
