"""Serving: what managers and scripts reach through the hub, one job per subpackage.

- :mod:`quantlib.serving.api`: the results API (FastAPI app, its docs pages, the response
  cache, the publish route);
- :mod:`quantlib.serving.auth`: who is calling (hub tokens, hub OAuth for the dashboards
  and for the API in a browser, the explicit dev mode);
- :mod:`quantlib.serving.server`: the dashboards server (the page registry, the launcher,
  the per-process session settings);
- :mod:`quantlib.serving.views`: what the pages show, computed without a web framework
  (data health, tear-sheet relative statistics, what-if reruns);
- :mod:`quantlib.serving.cli`: ``quantlib dashboards serve|api``.

The pages themselves live in the top-level ``dashboards`` package (``dashboards/pages.yaml``).
"""

from quantlib.results.view import ResultsView, Viewer, can_view

__all__ = ["ResultsView", "Viewer", "can_view"]
