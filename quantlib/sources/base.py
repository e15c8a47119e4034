"""What every source shares: the fetch context (raw zone, connection, retry policy,
manifest batching) and the bookkeeping that makes fetches idempotent and resumable.

A fetch stores each delivery in the raw zone as soon as it is verified and appends
manifest rows in small batches, so a crash loses at most the last batch's manifest rows;
the rerun finds those bytes already stored (same hash, same path) and records them then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quantlib.raw import Delivery, RawZone
from quantlib.sources.connection import ConnectionLike
from quantlib.sources.retry import RetryPolicy

__all__ = ["FetchContext", "RECORD_EVERY", "in_window"]

RECORD_EVERY = 50
"""Manifest rows are appended after this many new deliveries (and at the end)."""


@dataclass
class FetchContext:
    """State of one fetch run, shared by the sources it calls (thread-safe).

    ``start``/``end`` bound dated files and pages; ``poll`` asks the API's polled
    endpoints only for what the vendor published after the newest published delivery
    (``updated_since``, see :mod:`quantlib.sources.http`).
    """

    raw: RawZone
    connection: ConnectionLike | None
    fetch_id: str
    retry: RetryPolicy
    progress: bool = False
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    workers: int = 4
    poll: bool = False
    new: list[Delivery] = field(default_factory=list)
    current: list[Delivery] = field(default_factory=list)
    _pending: list[Delivery] = field(default_factory=list)
    _after: list[Callable[[], None]] = field(default_factory=list)
    _known: dict[str, MutableMapping[tuple[str, str], Delivery]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def known(self, source: str, file: str, sha256: str) -> Delivery | None:
        """The delivery already in the raw zone for ``(source, file, sha256)``, if any
        (reads that source's manifest index once per fetch)."""
        with self._lock:
            if source not in self._known:
                self._known[source] = self.raw.known(source)
            return self._known[source].get((file, sha256))

    def keep(self, d: Delivery) -> None:
        """Note an unchanged delivery that is already in the raw zone."""
        with self._lock:
            self.current.append(d)

    def add(self, d: Delivery) -> None:
        """Note a newly stored delivery; flush manifest rows every :data:`RECORD_EVERY`."""
        with self._lock:
            self.new.append(d)
            self.current.append(d)
            self._pending.append(d)
            if d.source in self._known:
                self._known[d.source].setdefault((d.file, d.sha256), d)
            flush = len(self._pending) >= RECORD_EVERY
            batch = self._pending if flush else []
            if flush:
                self._pending = []
        if batch:
            self.raw.record(batch)

    def on_success(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the current source's fetch has completed
        (:meth:`succeeded`), after its manifest rows are recorded."""
        with self._lock:
            self._after.append(action)

    def succeeded(self) -> None:
        """The current source's fetch completed: run the :meth:`on_success` actions."""
        with self._lock:
            actions, self._after = self._after, []
        for action in actions:
            action()

    def flush(self) -> None:
        """Append the pending manifest rows."""
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self.raw.record(batch)


def in_window(first: pd.Timestamp, last: pd.Timestamp, start: pd.Timestamp | None,
              end: pd.Timestamp | None) -> bool:
    """Whether the period ``[first, last]`` overlaps ``[start, end]`` (open ends allowed).

    Examples
    --------
    >>> t = pd.Timestamp
    >>> in_window(t("2024-03-01"), t("2024-03-31"), t("2024-03-15"), None)
    True
    >>> in_window(t("2024-03-01"), t("2024-03-31"), t("2024-04-01"), None)
    False
    """
    return not ((start is not None and last < start) or (end is not None and first > end))


def chunks(items: Iterable[Any], n: int) -> list[list[Any]]:
    """Split into lists of at most ``n`` items."""
    items = list(items)
    return [items[i:i + n] for i in range(0, len(items), n)]
