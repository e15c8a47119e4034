"""The results view moved to :mod:`quantlib.results.view` (re-exported for older imports).

The results package owns the layout, reader, writer and index; import from there.
"""

from quantlib.results.view import KEY_METRICS, ResultsView, Viewer, can_view, metric_value

__all__ = ["ResultsView", "Viewer", "can_view", "metric_value", "KEY_METRICS"]
