"""Refresh orchestration: vendors -> raw -> standardize -> validate -> one store commit.

:func:`refresh` fans out one Dask task per market, :func:`ingest` takes a file drop,
:func:`status` reports versions, freshness and quarantine counts. The ``quantlib data
refresh|ingest|status`` commands live in :mod:`quantlib.pipeline.cli`.
"""

from quantlib.pipeline.ingest import bokeh_stocks_path, ingest
from quantlib.pipeline.refresh import refresh
from quantlib.pipeline.result import RefreshResult
from quantlib.pipeline.status import StoreStatus, status

__all__ = ["refresh", "ingest", "status", "RefreshResult", "StoreStatus", "bokeh_stocks_path"]
