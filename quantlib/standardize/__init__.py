"""Standardize vendor deliveries into canonical frames (docs/architecture.md).

One reader per vendor format, found by name in :data:`READERS`: ``kr-ftp-csv``,
``eu-ftp-csv``, ``api-json`` (one parser per endpoint) and ``yahoo-csv``.
"""

from quantlib.standardize.batch import (
    FRAME_COLUMNS,
    FRAME_NAMES,
    PROVENANCE,
    CanonicalBatch,
    conform,
    empty_frame,
)
from quantlib.standardize.common import VENDOR_LAG
from quantlib.standardize.readers import READERS, Reader, read_delivery, reader, standardize

__all__ = [
    "CanonicalBatch",
    "FRAME_COLUMNS",
    "FRAME_NAMES",
    "PROVENANCE",
    "VENDOR_LAG",
    "READERS",
    "Reader",
    "reader",
    "read_delivery",
    "standardize",
    "empty_frame",
    "conform",
]
