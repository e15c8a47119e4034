"""What every source shares: the fetch context (raw zone, connection, retry policy,
manifest batching) and the bookkeeping that makes fetches idempotent and resumable.

A fetch stores each delivery in the raw zone as soon as it is verified and appends
manifest rows in small batches, so a crash loses at most the last batch's manifest rows;
the rerun finds those bytes already stored (same hash, same path) and records them then.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
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
    """State of one fetch run, shared by the sources it calls (thread-safe)."""

    raw: RawZone
    connection: ConnectionLike | None
    fetch_id: str
    retry: RetryPolicy
    progress: bool = False
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    workers: int = 4
    new: list[Delivery] = field(default_factory=list)
    current: list[Delivery] = field(default_factory=list)
    _pending: list[Delivery] = field(default_factory=list)
    _known: dict[tuple[str, str, str], Delivery] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def known(self, source: str, file: str, sha256: str) -> Delivery | None:
        """The delivery already in the raw zone for ``(source, file, sha256)``, if any."""
        with self._lock:
            if self._known is None:
                m = self.raw.manifest().sort_values("fetched_at", kind="stable")
                m = m.drop_duplicates(["source", "file", "sha256"], keep="first")
                self._known = {}
                for rec in m.to_dict("records"):
                    d = _to_delivery(rec)
                    self._known[(d.source, d.file, d.sha256)] = d
            return self._known.get((source, file, sha256))

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
            if self._known is not None:
                self._known.setdefault((d.source, d.file, d.sha256), d)
            flush = len(self._pending) >= RECORD_EVERY
            batch = self._pending if flush else []
            if flush:
                self._pending = []
        if batch:
            self.raw.record(batch)

    def flush(self) -> None:
        """Append the pending manifest rows."""
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self.raw.record(batch)


def _to_delivery(rec: dict[str, Any]) -> Delivery:
    rows = rec["rows"]
    return Delivery(source=str(rec["source"]), market=str(rec["market"]), file=str(rec["file"]),
                    fmt=str(rec["fmt"]), sha256=str(rec["sha256"]), bytes=int(rec["bytes"]),
                    rows=None if pd.isna(rows) else int(rows),
                    fetched_at=pd.Timestamp(rec["fetched_at"]), fetch_id=str(rec["fetch_id"]),
                    path=f"raw/{rec['sha256'][:2]}/{rec['sha256']}")


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
