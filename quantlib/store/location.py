"""Where the store lives: one URL -> an Icechunk storage and an fsspec filesystem.

A store URL is a local folder (``/data/store`` or ``file:///data/store``) or an S3
prefix (``s3://bucket/prefix``). Under it the curated Icechunk repository lives in
``curated/`` and the Parquet tables in ``tables/``.

S3 endpoint and region come from ``AWS_ENDPOINT_URL`` / ``AWS_REGION`` or the config's
``s3.*`` keys; credentials only from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(``AWS_SESSION_TOKEN``), read at open time and never written into the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import fsspec
import icechunk

from quantlib.config import load_config
from quantlib.errors import StoreError

__all__ = ["StoreLocation", "resolve_location"]

_LOGS_QUIET = False


def _quiet_icechunk_logs() -> None:
    """Silence icechunk's Rust warnings (local-filesystem concurrency notes) once."""
    global _LOGS_QUIET
    if not _LOGS_QUIET and "ICECHUNK_LOG" not in os.environ:
        icechunk.set_logs_filter("error")
        _LOGS_QUIET = True


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URL.

    Attributes
    ----------
    url : str
        The normalised URL (a local absolute path, or ``s3://bucket/prefix``).
    protocol : str
        ``"file"`` or ``"s3"``.
    bucket, prefix : str
        For S3: the bucket and the key prefix (no trailing slash); for local folders
        ``bucket`` is empty and ``prefix`` is the absolute folder.
    """

    url: str
    protocol: str
    bucket: str
    prefix: str

    def join(self, *parts: str) -> str:
        """URL (or local path) of a path below the store root.

        Examples
        --------
        >>> resolve_location("s3://b/p").join("tables", "manifest")
        's3://b/p/tables/manifest'
        """
        tail = "/".join(p.strip("/") for p in parts if p)
        return f"{self.url.rstrip('/')}/{tail}" if tail else self.url

    def s3_options(self) -> dict[str, Any]:
        """Endpoint, region and credentials for S3 clients (from env, then config)."""
        cfg = load_config()["s3"]
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or cfg.get("endpoint_url")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or \
            cfg.get("region") or "us-east-1"
        return {
            "endpoint_url": endpoint,
            "region": region,
            "allow_http": bool(cfg.get("allow_http", True)),
            "key": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "token": os.environ.get("AWS_SESSION_TOKEN"),
        }

    def check_writable(self) -> None:
        """Create a local store folder if needed and check it can be written.

        A no-op for S3 (the first write reports a missing bucket or permission).

        Raises
        ------
        StoreError
            The folder cannot be created (a file in the way, no permission) or written.

        Examples
        --------
        >>> import tempfile, os
        >>> blocker = os.path.join(tempfile.mkdtemp(), "a-file")
        >>> open(blocker, "w").close()
        >>> resolve_location(os.path.join(blocker, "store")).check_writable()
        Traceback (most recent call last):
        ...
        quantlib.errors.StoreError: store must be a writable folder; found Not a directory: ...
        """
        if self.protocol == "file":
            self._ensure_folder(writable=True)

    def _ensure_folder(self, writable: bool = False) -> None:
        try:
            os.makedirs(self.prefix, exist_ok=True)
            if writable and not os.access(self.prefix, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied", self.prefix)
        except OSError as exc:
            raise StoreError("store must be a writable folder",
                             found=f"{exc.strerror}: {exc.filename or self.prefix}",
                             fix="pass --store (or set QUANTLIB_STORE) to a folder you can "
                             "write, or fix its permissions", file=self.prefix) from exc

    def icechunk_storage(self) -> icechunk.Storage:
        """Icechunk storage for the curated repository at ``<url>/curated``."""
        _quiet_icechunk_logs()
        if self.protocol == "file":
            self._ensure_folder()  # readers of a shared store need not write it
            return icechunk.local_filesystem_storage(os.path.join(self.prefix, "curated"))
        opts = self.s3_options()
        creds: dict[str, Any] = {}
        if opts["key"] and opts["secret"]:
            creds = {"access_key_id": opts["key"], "secret_access_key": opts["secret"],
                     "session_token": opts["token"]}
        else:
            creds = {"from_env": True}
        return icechunk.s3_storage(
            bucket=self.bucket, prefix=f"{self.prefix}/curated".strip("/"),
            region=opts["region"], endpoint_url=opts["endpoint_url"],
            allow_http=opts["allow_http"], force_path_style=opts["endpoint_url"] is not None,
            **creds)

    def filesystem(self) -> fsspec.AbstractFileSystem:
        """fsspec filesystem for the Parquet tables and reports."""
        if self.protocol == "file":
            return fsspec.filesystem("file", auto_mkdir=True)
        opts = self.s3_options()
        client_kwargs = {"region_name": opts["region"]}
        if opts["endpoint_url"]:
            client_kwargs["endpoint_url"] = opts["endpoint_url"]
        return fsspec.filesystem("s3", key=opts["key"], secret=opts["secret"],
                                 token=opts["token"], client_kwargs=client_kwargs,
                                 skip_instance_cache=True)

    def fs_path(self, *parts: str) -> str:
        """Path of ``parts`` as the :meth:`filesystem` expects it (no protocol)."""
        url = self.join(*parts)
        return url[len("s3://"):] if url.startswith("s3://") else url


def resolve_location(url: str | os.PathLike[str] | None = None) -> StoreLocation:
    """Parse a store URL (``None`` -> the configured store).

    Raises
    ------
    StoreError
        For a protocol other than a local folder or ``s3://``.

    Examples
    --------
    >>> loc = resolve_location("s3://bucket/some/prefix/")
    >>> loc.protocol, loc.bucket, loc.prefix
    ('s3', 'bucket', 'some/prefix')
    >>> resolve_location("file:///tmp/x").url
    '/tmp/x'
    >>> resolve_location("gs://b/p")
    Traceback (most recent call last):
    ...
    quantlib.errors.StoreError: store URL must be a local folder or s3://bucket/prefix; found 'gs://b/p'. Fix: set QUANTLIB_STORE or pass --store with a supported URL
    """
    raw = str(url) if url is not None else load_config().store_url
    if raw.startswith("s3://"):
        rest = raw[len("s3://"):].strip("/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StoreError("S3 store URL must name a bucket", found=repr(raw),
                             fix="use s3://bucket/prefix")
        prefix = prefix.strip("/")
        return StoreLocation(f"s3://{bucket}/{prefix}".rstrip("/"), "s3", bucket, prefix)
    if raw.startswith("file://"):
        raw = raw[len("file://"):]
    if "://" in raw:
        raise StoreError("store URL must be a local folder or s3://bucket/prefix",
                         found=repr(raw), fix="set QUANTLIB_STORE or pass --store with a "
                         "supported URL")
    path = os.path.abspath(os.path.expanduser(raw))
    return StoreLocation(path, "file", "", path)
