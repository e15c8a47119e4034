"""Immutable raw zone: deliveries stored by content hash, plus an append-only manifest.

Layout under the store URL (see docs/architecture.md, "Store layout")::

    raw/<sha256[:2]>/<sha256>            bytes exactly as received, never rewritten
    tables/manifest/<fetch_id>-*.parquet append-only manifest, one file per ``record`` call
    tables/manifest_index/<source>/      the same rows by source, compacted (+ ``known_at``)
"""

from quantlib.raw.fs import filesystem, storage_options
from quantlib.raw.zone import (
    MANIFEST_COLUMNS,
    MANIFEST_STATUSES,
    Delivery,
    RawZone,
    query_of,
    sha256_hex,
)

__all__ = [
    "RawZone",
    "Delivery",
    "MANIFEST_COLUMNS",
    "MANIFEST_STATUSES",
    "sha256_hex",
    "query_of",
    "storage_options",
    "filesystem",
]
