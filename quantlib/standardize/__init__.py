"""Standardize vendor deliveries into canonical frames (docs/architecture.md).

One reader per kind of vendor format, found by format name in :data:`READERS`: every
delimited format declared in ``quantlib/markets.yaml`` (``kr-ftp-csv``, ``eu-ftp-csv``,
``jp-ftp-csv``) goes through :mod:`quantlib.standardize.delimited`; ``api-json`` (one
parser per endpoint) and ``yahoo-csv`` have their own.
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
