"""Run state and per-job locks under ``$QUANTLIB_HOME/schedule/``.

``state.json`` holds, per job, the last run (start time, the cron tick it covered,
outcome, duration, attempts, the executed notebook kept as its record) and when the
service first saw the job. Writes are atomic (temp file + rename) under an
``fcntl`` lock, so a CLI ``run`` and the service can update it side by side.

``locks/<job>.lock`` holds the pid of the process running the job. A second run of
the same job is refused while that pid lives; a lock left by a dead pid is broken.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quantlib.config import quantlib_home
from quantlib.platform.process import pid_alive

__all__ = ["schedule_home", "StateStore", "JobLock"]


def schedule_home() -> Path:
    """``$QUANTLIB_HOME/schedule`` (created on use)."""
    return quantlib_home() / "schedule"


class StateStore:
    """A small JSON file of per-job state, updated atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = StateStore(pathlib.Path(tempfile.mkdtemp()) / "state.json")
    >>> store.update("nightly", outcome="succeeded", duration_s=1.5)["outcome"]
    'succeeded'
    >>> store.get("nightly")["duration_s"]
    1.5
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or schedule_home() / "state.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text() or "{}")

    def all(self) -> dict[str, dict[str, Any]]:
        """Every job's state."""
        with self._locked():
            return self._read()

    def get(self, job: str) -> dict[str, Any]:
        """One job's state (empty if never seen)."""
        return self.all().get(job, {})

    def update(self, job: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into a job's state and write the file atomically."""
        with self._locked():
            data = self._read()
            data.setdefault(job, {}).update(fields)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
            os.replace(tmp, self.path)
            return data[job]


class JobLock:
    """An exclusive per-job lock file holding the owner's pid; stale locks are broken.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> first, second = JobLock("nightly", folder), JobLock("nightly", folder)
    >>> first.acquire(), second.acquire()
    (True, False)
    >>> second.holder() == os.getpid()
    True
    >>> first.release(); second.acquire()
    True
    """

    def __init__(self, job: str, folder: Path | None = None) -> None:
        self.job = job
        self.path = (folder or schedule_home() / "locks") / f"{job}.lock"
        self._held = False

    def holder(self) -> int | None:
        """The pid in the lock file, or ``None`` when unlocked."""
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def acquire(self, pid: int | None = None) -> bool:
        """Take the lock for ``pid`` (default this process); ``False`` if a live pid holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.holder()
                if owner is not None and pid_alive(owner):
                    return False
                # stale: its process is gone (or the file is empty/garbled)
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(pid or os.getpid()))
            self._held = True
            return True
        return False

    def release(self) -> None:
        """Remove the lock if this object holds it."""
        if self._held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._held = False
