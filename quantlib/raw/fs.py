"""Filesystems for raw-zone URLs: :func:`quantlib.store.location.resolve_location`'s.

Kept as the raw package's short names; the endpoint, region and credentials are the
location's (env first, then the config's ``s3.*``), the same for every store.
"""

from __future__ import annotations

from typing import Any

import fsspec

from quantlib.storage import resolve_location

__all__ = ["storage_options", "filesystem"]


def storage_options(url: str) -> dict[str, Any]:
    """fsspec storage options for a store URL (:meth:`StoreLocation.storage_options`).

    Examples
    --------
    >>> import os
    >>> os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9000"
    >>> storage_options("s3://bucket/x")["client_kwargs"]["endpoint_url"]
    'http://127.0.0.1:9000'
    >>> del os.environ["AWS_ENDPOINT_URL"]
    """
    return resolve_location(url).storage_options()


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and root path (no protocol) for a store URL.

    Examples
    --------
    >>> fs, root = filesystem("/tmp/some/store")
    >>> fs.protocol[0], root
    ('file', '/tmp/some/store')
    """
    return resolve_location(url).open_fs()
