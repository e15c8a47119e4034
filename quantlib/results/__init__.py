"""Content-addressed results store: save, load, publish and list backtest results.

See ``docs/architecture.md`` "Results store layout".
"""

from quantlib.results.store import (
    has_result,
    list_results,
    load_meta,
    load_result,
    publish,
    read_index,
    results_url,
    save_result,
)

__all__ = ["save_result", "load_result", "load_meta", "has_result", "publish",
           "list_results", "read_index", "results_url"]
