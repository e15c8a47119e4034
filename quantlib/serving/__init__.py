"""Serving: the results API, hub authentication for the dashboards, and their launcher.

The Panel apps themselves live in the top-level ``dashboards/`` folder.
"""

from quantlib.results.view import ResultsView, Viewer, can_view

__all__ = ["ResultsView", "Viewer", "can_view"]
