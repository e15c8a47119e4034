"""Where data lives: one URL -> an Icechunk storage and an fsspec filesystem.

This is the only module that turns a URL into a filesystem (a test greps the package
for others): the data store, the raw zone, the results store, file drops, the health
page and the platform all go through :func:`resolve_location`, so the configured S3
endpoint, region and credentials hold everywhere.

A URL is a local folder (``/data/store`` or ``file:///data/store``), an S3 prefix
(``s3://bucket/prefix``) or ``memory://name`` (in-process, for tests and for
serializing a result). Under a data store the curated Icechunk repository lives in
``curated/``, the Parquet tables in ``tables/`` and the raw zone in ``raw/``.

S3 endpoint and region come from ``AWS_ENDPOINT_URL`` / ``AWS_REGION`` or the config's
``s3.*`` keys; credentials only from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(``AWS_SESSION_TOKEN``), read at open time and never written into the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec

from quantlib.config import load_config
from quantlib.errors import StoreError

if TYPE_CHECKING:  # icechunk loads on first use: results and the dashboards never need it
    import icechunk

__all__ = ["StoreLocation", "resolve_location"]

_LOGS_QUIET = False


def _quiet_icechunk_logs() -> None:
    """Silence icechunk's Rust warnings (local-filesystem concurrency notes) once."""
    global _LOGS_QUIET
    import icechunk

    if not _LOGS_QUIET and "ICECHUNK_LOG" not in os.environ:
        icechunk.set_logs_filter("error")
        _LOGS_QUIET = True


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URL.

    Attributes
    ----------
    url : str
        The normalised URL (a local absolute path, ``s3://bucket/prefix`` or
        ``memory://name``).
    protocol : str
        ``"file"``, ``"s3"`` or ``"memory"``.
    bucket, prefix : str
        For S3: the bucket and the key prefix (no trailing slash); for local folders
        ``bucket`` is empty and ``prefix`` is the absolute folder; for memory
        ``prefix`` is the path (``/name``).
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

    def child(self, *parts: str) -> StoreLocation:
        """The location of a folder (or object) below this one, same protocol and options.

        Examples
        --------
        >>> resolve_location("s3://b/p").child("raw").prefix
        'p/raw'
        """
        return resolve_location(self.join(*parts))

    def s3_options(self) -> dict[str, Any]:
        """Endpoint, region and credentials for S3 clients (from env, then config).

        Examples
        --------
        >>> import os
        >>> os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9000"
        >>> resolve_location("s3://b/p").s3_options()["endpoint_url"]
        'http://127.0.0.1:9000'
        >>> del os.environ["AWS_ENDPOINT_URL"]
        """
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
        """Icechunk storage for the curated repository at ``<url>/curated``.

        Raises
        ------
        StoreError
            For a ``memory://`` location (a curated store must outlive the process).
        """
        import icechunk

        _quiet_icechunk_logs()
        if self.protocol == "memory":
            raise StoreError("a curated store must be a local folder or s3://bucket/prefix",
                             found=repr(self.url), fix="set QUANTLIB_STORE or pass --store "
                             "with a folder or an s3:// URL")
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

    def storage_options(self) -> dict[str, Any]:
        """fsspec keyword arguments of :meth:`filesystem` (endpoint, region, credentials).

        Examples
        --------
        >>> resolve_location("/tmp/store").storage_options()
        {'auto_mkdir': True}
        """
        if self.protocol == "file":
            return {"auto_mkdir": True}
        if self.protocol == "memory":
            return {}
        opts = self.s3_options()
        client_kwargs = {"region_name": opts["region"]}
        if opts["endpoint_url"]:
            client_kwargs["endpoint_url"] = opts["endpoint_url"]
        return {"key": opts["key"], "secret": opts["secret"], "token": opts["token"],
                "client_kwargs": client_kwargs, "skip_instance_cache": True}

    def filesystem(self) -> fsspec.AbstractFileSystem:
        """fsspec filesystem of this location (tables, reports, raw zone, results).

        Examples
        --------
        >>> type(resolve_location("memory://loc-doc").filesystem()).__name__
        'MemoryFileSystem'
        """
        return fsspec.filesystem(self.protocol, **self.storage_options())

    def fs_path(self, *parts: str) -> str:
        """Path of ``parts`` as the :meth:`filesystem` expects it (no protocol).

        Examples
        --------
        >>> resolve_location("s3://b/p").fs_path("x"), resolve_location("memory://m").fs_path()
        ('b/p/x', '/m')
        """
        url = self.join(*parts)
        if self.protocol == "s3":
            return url[len("s3://"):]
        if self.protocol == "memory":
            return "/" + url[len("memory://"):].lstrip("/")
        return url

    def open_fs(self, *parts: str) -> tuple[fsspec.AbstractFileSystem, str]:
        """``(filesystem, path)`` of ``parts`` below this location, in one call.

        Examples
        --------
        >>> fs, path = resolve_location("/tmp/store").open_fs("reports")
        >>> path
        '/tmp/store/reports'
        """
        return self.filesystem(), self.fs_path(*parts)


def resolve_location(url: str | os.PathLike[str] | None = None) -> StoreLocation:
    """Parse a store URL (``None`` -> the configured store).

    Raises
    ------
    StoreError
        For a protocol other than a local folder, ``s3://`` or ``memory://``.

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
    quantlib.errors.StoreError: store URL must be a local folder, s3://bucket/prefix or memory://name; found 'gs://b/p'. Fix: set QUANTLIB_STORE or pass --store with a supported URL
    """
    raw = str(url) if url is not None else load_config().store_url
    if raw.startswith("memory://"):
        path = "/" + raw[len("memory://"):].strip("/")
        return StoreLocation(f"memory:/{path}".rstrip("/"), "memory", "", path)
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
        raise StoreError("store URL must be a local folder, s3://bucket/prefix or "
                         "memory://name", found=repr(raw), fix="set QUANTLIB_STORE or pass --store with a "
                         "supported URL")
    path = os.path.abspath(os.path.expanduser(raw))
    return StoreLocation(path, "file", "", path)
