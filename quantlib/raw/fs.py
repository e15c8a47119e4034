"""fsspec filesystems for store URLs (local folders or ``s3://``).

S3 endpoint: the ``AWS_ENDPOINT_URL`` environment variable, else the config's
``s3.endpoint_url``. Credentials come only from the environment (the S3 client reads
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` itself); they are never read from config.
"""

from __future__ import annotations

import os
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from quantlib.config import Config, load_config

__all__ = ["storage_options", "filesystem"]


def storage_options(url: str, config: Config | None = None) -> dict[str, Any]:
    """fsspec storage options for a store URL.

    Parameters
    ----------
    url : str
        A local path or an ``s3://bucket/prefix`` URL.
    config : Config, optional
        Platform config (``s3.endpoint_url``, ``s3.region``); loaded if omitted.

    Examples
    --------
    >>> storage_options("/tmp/store")
    {}
    >>> import os
    >>> os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9000"
    >>> storage_options("s3://bucket/x")["client_kwargs"]["endpoint_url"]
    'http://127.0.0.1:9000'
    >>> del os.environ["AWS_ENDPOINT_URL"]
    """
    if not url.startswith(("s3://", "s3a://")):
        return {}
    cfg = config if config is not None else load_config()
    s3 = cfg["s3"]
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or s3.get("endpoint_url")
    client_kwargs: dict[str, Any] = {}
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if s3.get("region"):
        client_kwargs["region_name"] = s3["region"]
    return {"client_kwargs": client_kwargs}


def filesystem(url: str, config: Config | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and root path (no protocol) for a store URL.

    Examples
    --------
    >>> fs, root = filesystem("/tmp/some/store")
    >>> fs.protocol[0], root
    ('file', '/tmp/some/store')
    """
    fs, root = url_to_fs(url, **storage_options(url, config))
    return fs, root.rstrip("/")
