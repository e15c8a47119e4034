"""The partitioned build's spill folder: its heartbeat, and what a killed build left.

A partitioned build spills clean bars under ``<store>/tmp/builds/<refresh_id>/`` and
removes the folder when it ends, committed or not. A build that is killed (SIGKILL, a
lost machine) cannot: its folder stays. So every build, before it spills, removes the
folders of builds that no longer run. A running build says so with a *heartbeat*: the
file ``<refresh_id>/_heartbeat`` holds the UTC epoch seconds of its last beat,
rewritten every :data:`HEARTBEAT_S` seconds by a daemon thread of the build's driver.
A folder whose heartbeat is older than :data:`STALE_S` (or that has none) belongs to a
dead build and is removed; a live build's folder is kept (two builds of one store may
run at once; only one of them commits). The heartbeat lives in the store, so this holds
for a store on S3 and drivers on different machines too.
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["HEARTBEAT_S", "STALE_S", "Heartbeat", "remove_stale_spills"]

#: seconds between two beats of a running build
HEARTBEAT_S = 20.0
#: a spill folder whose last beat is older than this belongs to a dead build
STALE_S = 120.0
_BEAT = "_heartbeat"


def _last_beat(fs: Any, folder: str) -> float | None:
    try:
        with fs.open(f"{folder}/{_BEAT}", "rb") as f:
            return float(f.read().decode() or "nan")
    except (FileNotFoundError, ValueError):
        return None


def remove_stale_spills(builds: Any, keep: str, *, stale_s: float | None = None,
                        now: float | None = None) -> list[str]:
    """Remove the spill folders under ``builds`` (a
    :class:`~quantlib.storage.StoreLocation`, ``<store>/tmp/builds``) of builds that
    stopped beating more than ``stale_s`` seconds ago (default :data:`STALE_S`), except
    ``keep`` (this build's refresh id). Returns the refresh ids removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from quantlib.storage import resolve_location
    >>> builds = resolve_location(tempfile.mkdtemp()).child("tmp", "builds")
    >>> fs, root = builds.open_fs()
    >>> for rid, beat in (("dead", 1000.0), ("alive", 1990.0), ("mine", 0.0)):
    ...     fs.makedirs(f"{root}/{rid}", exist_ok=True)
    ...     fs.pipe_file(f"{root}/{rid}/_heartbeat", str(beat).encode())
    >>> remove_stale_spills(builds, keep="mine", now=2000.0)
    ['dead']
    >>> sorted(pathlib.PurePath(p).name for p in fs.ls(root))
    ['alive', 'mine']
    """
    fs, root = builds.open_fs()
    if not fs.exists(root):
        return []
    limit = STALE_S if stale_s is None else stale_s
    now = time.time() if now is None else now
    removed = []
    for entry in fs.ls(root, detail=False):
        folder = str(entry).rstrip("/")
        rid = folder.rsplit("/", 1)[-1]
        if rid == keep:
            continue
        beat = _last_beat(fs, folder)
        if beat is None or now - beat > limit:
            fs.rm(folder, recursive=True)
            removed.append(rid)
    return sorted(removed)


class Heartbeat:
    """Beat into ``<spill>/_heartbeat`` every ``every`` seconds while in a ``with``
    block (a daemon thread; a killed process stops beating, which is the point)."""

    def __init__(self, spill: Any, every: float = HEARTBEAT_S) -> None:
        self._fs, self._folder = spill.open_fs()
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spill-heartbeat",
                                        daemon=True)

    def beat(self) -> None:
        """Write the current time (UTC epoch seconds)."""
        self._fs.makedirs(self._folder, exist_ok=True)
        self._fs.pipe_file(f"{self._folder}/{_BEAT}", repr(time.time()).encode())

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.beat()
            except OSError:   # the folder was removed at the end: nothing to keep alive
                return

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
