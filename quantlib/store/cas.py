"""Writers that never lose each other's updates: a commit lock and compare-and-swap.

Two primitives, both working on a local folder and on S3:

- :func:`commit_lock` serialises the last step of a curated-store commit (moving the
  branch and creating the tag). Icechunk already refuses a commit whose session is not
  based on the branch tip (``ConflictError``), but on a local folder its check-then-write
  of the repository file is not atomic between processes (icechunk warns so), so there
  the check runs under an exclusive ``fcntl`` lock on ``<store>/.curated.lock``. The
  kernel drops the lock when its holder dies, so a killed writer never leaves it
  behind. On S3 icechunk's own conditional writes (``If-Match``) do the job and the
  lock is a no-op.
- :func:`update_object` replaces a small object by a function of its current content,
  only if nobody replaced it in between: on S3 a conditional PUT (``If-Match`` on the
  ETag read, ``If-None-Match: *`` when it did not exist); on a local folder read,
  update and atomic rename under an ``fcntl`` lock; otherwise (``memory://``) under an
  in-process lock. On a lost race it re-reads, re-applies the update and tries again,
  a bounded number of times, then raises :class:`~quantlib.errors.WriteConflictError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from quantlib.errors import StoreError, WriteConflictError
from quantlib.storage import StoreLocation, resolve_location

__all__ = ["commit_lock", "file_lock", "update_object"]

_MEMORY_LOCK = threading.Lock()
_CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict")


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if missing).

    Raises
    ------
    StoreError
        If the lock file cannot be created (the folder is missing or not writable).

    Examples
    --------
    >>> import tempfile, os
    >>> with file_lock(os.path.join(tempfile.mkdtemp(), "x.lock")):
    ...     pass
    """
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    except OSError as exc:
        raise StoreError("store folder must be writable to commit", found=f"{exc.strerror}",
                         fix="check the store path and its permissions", file=path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def commit_lock(location: StoreLocation) -> contextlib.AbstractContextManager[None]:
    """The lock a curated-store commit holds while it moves the branch and tags.

    A local folder store gets an exclusive file lock; S3 relies on icechunk's
    conditional writes (no lock).
    """
    if location.protocol == "file":
        return file_lock(os.path.join(location.prefix, ".curated.lock"))
    return contextlib.nullcontext()


def _local_update(path: str, update: Callable[[bytes | None], bytes]) -> bytes:
    folder = os.path.dirname(path)
    with file_lock(os.path.join(folder, f".{os.path.basename(path)}.lock")):
        try:
            with open(path, "rb") as fh:
                current: bytes | None = fh.read()
        except FileNotFoundError:
            current = None
        data = update(current)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}-",
                                   suffix=f".{uuid.uuid4().hex}.tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic on POSIX
        return data


def _is_conflict(exc: BaseException) -> bool:
    if isinstance(exc, FileExistsError):
        return True
    cause = exc.__cause__ or exc.__context__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code", "") if cause else ""
    return code in _CONFLICT_CODES or any(c in str(exc) for c in _CONFLICT_CODES)


def _s3_update_once(fs: Any, path: str, update: Callable[[bytes | None], bytes]
                    ) -> bytes | None:
    """One read-update-conditional-PUT; ``None`` when another writer won the race."""
    from s3fs.utils import FileExpired

    bucket, key, _ = fs.split_path(path)
    try:
        with fs.open(path, "rb") as fh:  # s3fs reads the body with If-Match on this ETag
            etag: str | None = fh.details["ETag"]
            current: bytes | None = fh.read()
    except FileNotFoundError:
        etag, current = None, None
    except FileExpired:  # replaced between reading its ETag and its body
        return None
    data = update(current)
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
    except OSError as exc:
        if _is_conflict(exc):
            return None
        raise
    fs.invalidate_cache(path)
    return data


def update_object(url: str, update: Callable[[bytes | None], bytes], *,
                  attempts: int = 20) -> bytes:
    """Replace the object at ``url`` with ``update(current)``, never over a newer version.

    Parameters
    ----------
    url : str
        Object URL: a local path, ``s3://bucket/key`` or ``memory://...``.
    update : callable
        Gets the current bytes (``None`` if the object does not exist) and returns the
        new bytes. It may be called more than once (after a lost race, on the newer
        content), so it must be a pure function of its argument.
    attempts : int
        Races lost before giving up (S3 only; local folders wait on a lock instead).

    Returns
    -------
    bytes
        What was written.

    Raises
    ------
    WriteConflictError
        Another writer won every one of ``attempts`` races.

    Examples
    --------
    >>> import json, tempfile, os
    >>> url = os.path.join(tempfile.mkdtemp(), "index.json")
    >>> add = lambda item: lambda cur: json.dumps(json.loads(cur or b"[]") + [item]).encode()
    >>> _ = update_object(url, add("a")); update_object(url, add("b"))
    b'["a", "b"]'
    """
    loc = resolve_location(url)
    fs, path = loc.open_fs()
    if loc.protocol == "file":
        return _local_update(path, update)
    if loc.protocol != "s3":
        with _MEMORY_LOCK:  # one process only: memory:// and test filesystems
            current: bytes | None = fs.cat(path) if fs.exists(path) else None
            data = update(current)
            fs.pipe(path, data)
            return data
    for attempt in range(attempts):
        won = _s3_update_once(fs, path, update)
        if won is not None:
            return won
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise WriteConflictError("the update of a shared object must win a compare-and-swap",
                             found=f"other writers replaced it {attempts} times in a row",
                             fix="retry; if it keeps failing, fewer writers must publish at "
                             "once", file=url)
