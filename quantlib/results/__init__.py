"""Results as one package: the layout, writer, reader, index and the viewers' view.

- :mod:`quantlib.results.layout`: the stored layout, the versioned meta schema, the one
  reader and writer (older layouts are upgraded there and nowhere else);
- :mod:`quantlib.results.store`: content-addressed save/load, publish and the index;
  :class:`ResultStore` is the backtest's injected cache;
- :mod:`quantlib.results.view`: read-only, per-viewer access for the API and dashboards;
- :mod:`quantlib.results.remote`: publishing through the results service from the hub.

``quantlib.results`` imports ``quantlib.backtest``, never the reverse (a test checks it).
See ``docs/architecture.md`` "Results store layout".
"""

from quantlib.results.store import (
    ResultStore,
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
           "list_results", "read_index", "results_url", "ResultStore"]
