"""The curated store: Icechunk repository, Parquet tables and SQL (see docs/architecture.md).

>>> from quantlib.store import CuratedStore, sql
"""

from quantlib.store import icepatch  # noqa: F401  (first: the __str__ deadlock guard)
from quantlib.store.curated import WRITE_DELAY_ENV, CuratedStore
from quantlib.store.location import StoreLocation, resolve_location
from quantlib.store.parquet import read_table_files, sql, table_files, write_table_file
from quantlib.store.schema import CANONICAL_COLUMNS, FRAME_NAMES, empty_frame

__all__ = [
    "CuratedStore",
    "sql",
    "StoreLocation",
    "resolve_location",
    "write_table_file",
    "read_table_files",
    "table_files",
    "empty_frame",
    "CANONICAL_COLUMNS",
    "FRAME_NAMES",
    "WRITE_DELAY_ENV",
]
