"""Vendor sources: FTP files, the HTTP JSON API and file drops, with retries.

Sources are small declarative classes in one registry (:data:`SOURCES`); the entry points
are :func:`fetch_market`, :func:`fetch_fx` and :func:`ingest_files`.
"""

from quantlib.sources.base import FetchContext
from quantlib.sources.connection import Connection, ConnectionLike, load_connection
from quantlib.sources.filedrop import FileDropSource
from quantlib.sources.ftp import FtpSource
from quantlib.sources.http import HttpApiSource
from quantlib.sources.registry import (
    MARKET_SOURCES,
    SOURCES,
    fetch_fx,
    fetch_market,
    ingest_files,
    run_sources,
)
from quantlib.sources.retry import RetryPolicy, default_retry

__all__ = [
    "SOURCES",
    "MARKET_SOURCES",
    "FtpSource",
    "HttpApiSource",
    "FileDropSource",
    "fetch_market",
    "fetch_fx",
    "ingest_files",
    "run_sources",
    "RetryPolicy",
    "default_retry",
    "Connection",
    "ConnectionLike",
    "load_connection",
    "FetchContext",
]
