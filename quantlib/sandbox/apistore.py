"""The sandbox JSON API served out of core: price and fundamentals pages read from
partitions on disk (Arrow IPC files, LZ4-compressed), only those a request's range touches.

Layout under the store's root: ``<market>/prices/<YYYYMM>.arrow`` (one calendar month,
rows in the API's order: session, then ISIN) and ``<market>/fundamentals/<NNNN>.arrow``
(a block of assets, in ISIN order). Arrow IPC rather than Parquet: a month of the full
US size (~300k rows) writes ~3x and reads ~4x faster, for ~2.5x the bytes. In memory the store keeps, per partition, only its
row count, the row offset of each session (prices) and the range of its ``updated``
column; a page request:

1. turns ``start``/``end`` into a row range per partition (the session offsets);
2. with ``updated_since``, skips partitions whose newest row is older, keeps whole those
   whose oldest row is newer, and reads the ``updated`` column of the others to select
   rows;
3. reads (a small LRU cache of decoded partitions) only the partitions the page's
   ``page_size`` rows fall in.

Answers are the same, row for row and key for key, as :class:`~quantlib.sandbox.api.ApiData`
built on the whole universe (the API contract of docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from pyarrow import feather

from quantlib.sandbox.api import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    UPDATED,
    ApiData,
    Table,
    _int_param,
    _ms_param,
    page_json,
)
from quantlib.sandbox.pagejson import encode_page

if TYPE_CHECKING:
    from quantlib.sandbox.universe import SandboxUniverse

__all__ = ["ApiStore", "StoredApi", "STORED_ENDPOINTS"]

#: the endpoints served from partitions (the others are small and stay in memory)
STORED_ENDPOINTS = ("prices", "fundamentals")
_CACHE = 3


@dataclass
class _Part:
    path: Path
    n: int
    t: np.ndarray | None         # distinct sessions (ms), prices only
    offsets: np.ndarray | None   # row offset of each session, plus n
    updated: tuple[int, int]     # min, max of the updated column
    digest: str
    version: int
    #: fundamentals only (asset blocks: every block spans all of time): the updated
    #: column sorted and the row of each value, so an ``updated_since`` poll selects
    #: its rows by a search, not a read of the whole column (which grew with history)
    by_updated: tuple[np.ndarray, np.ndarray] | None = None


class ApiStore:
    """Partitions of the stored endpoints, one folder per market and endpoint.

    Examples
    --------
    >>> import tempfile
    >>> store = ApiStore(tempfile.mkdtemp())
    >>> tab = pa.table({"t": [1, 1, 2], "updated_ms": [5, 9, 7]})
    >>> store.write("prices", "US", "202401", tab)
    True
    >>> store.write("prices", "US", "202401", tab)     # same content: left alone
    False
    >>> store.rows("prices", "US", t0=2), store.rows("prices", "US", since=8)
    (1, 1)
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._parts: dict[tuple[str, str], dict[str, _Part]] = {}
        self._cache: OrderedDict[tuple[Path, int], pa.Table] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes_written = 0

    def write(self, endpoint: str, market: str, key: str, table: pa.Table) -> bool:
        """Store one partition (atomically); returns False if it was already stored with
        the same content. Partitions are served in ``key`` order."""
        digest = _digest(table)
        parts = self._parts.setdefault((endpoint, market), {})
        old = parts.get(key)
        if old is not None and old.digest == digest:
            return False
        path = self.root / market / endpoint / f"{key}.arrow"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        feather.write_feather(table, tmp, compression="lz4", chunksize=_BATCH)
        os.replace(tmp, path)
        self.bytes_written += path.stat().st_size
        upd = table.column(UPDATED[endpoint]).to_numpy()
        t, offsets = None, None
        if "t" in table.column_names:
            tt = table.column("t").to_numpy()
            starts = np.flatnonzero(np.diff(tt, prepend=tt[:1] - 1)) if len(tt) else \
                np.zeros(0, dtype=np.int64)
            t, offsets = tt[starts], np.append(starts, len(tt))
        bounds = (int(upd.min()), int(upd.max())) if len(upd) else (2**62, -1)
        by_updated = None
        if endpoint == "fundamentals":
            order = np.argsort(upd, kind="stable").astype(np.int32)
            by_updated = (upd[order], order)
        with self._lock:
            parts[key] = _Part(path, table.num_rows, t, offsets, bounds, digest,
                               (old.version + 1) if old else 0, by_updated)
            self._parts[(endpoint, market)] = dict(sorted(parts.items()))
        return True

    def disk_bytes(self) -> int:
        """Bytes of all stored partitions."""
        return sum(p.path.stat().st_size for parts in self._parts.values()
                   for p in parts.values())

    def _pieces(self, endpoint: str, market: str, t0: int, t1: int, since: int | None
                ) -> list[tuple[_Part, int, int, np.ndarray | None]]:
        """(partition, lo, hi, selected rows or None) of every partition with rows."""
        out = []
        for p in list(self._parts.get((endpoint, market), {}).values()):
            lo, hi = 0, p.n
            if p.t is not None and p.offsets is not None:
                lo = int(p.offsets[np.searchsorted(p.t, t0, side="left")])
                hi = int(p.offsets[np.searchsorted(p.t, t1, side="right")])
            rows = None
            if since is not None and hi > lo:
                if p.updated[1] < since:
                    continue
                if p.updated[0] < since and p.by_updated is not None:
                    values, order = p.by_updated
                    rows = np.sort(order[np.searchsorted(values, since, side="left"):]
                                   ).astype(np.int64)
                    rows = rows[(rows >= lo) & (rows < hi)]
                elif p.updated[0] < since:
                    col = self._read(p).column(UPDATED[endpoint]).to_numpy()[lo:hi]
                    rows = lo + np.flatnonzero(col >= since)
            if (hi > lo) if rows is None else len(rows):
                out.append((p, lo, hi, rows))
        return out

    def rows(self, endpoint: str, market: str, t0: int = 0, t1: int = 2**62,
             since: int | None = None) -> int:
        """How many rows a query selects."""
        return sum(hi - lo if rows is None else len(rows)
                   for _, lo, hi, rows in self._pieces(endpoint, market, t0, t1, since))

    def slices(self, endpoint: str, market: str, a: int, b: int, t0: int = 0,
               t1: int = 2**62, since: int | None = None) -> tuple[list[pa.Table], int]:
        """Rows ``a:b`` of a query's selection as Arrow tables (one per partition they
        fall in, in order), and the selection's total row count."""
        out: list[pa.Table] = []
        done = 0
        for p, lo, hi, rows in self._pieces(endpoint, market, t0, t1, since):
            count = hi - lo if rows is None else len(rows)
            x, y = max(a - done, 0), min(b - done, count)
            if x < y:
                out.append(self._read(p).slice(lo + x, y - x) if rows is None
                           else self._take(p, rows[x:y]))
            done += count
        return out, done

    def _take(self, p: _Part, rows: np.ndarray) -> pa.Table:
        """Rows of a partition (sorted positions): decoded from only the record batches
        (of :data:`_BATCH` rows) they fall in, unless the partition is cached or most
        of its batches are needed (a poll's few new rows are spread over every block)."""
        with self._lock:
            cached = self._cache.get((p.path, p.version))
        batches = np.unique(rows // _BATCH)
        if cached is not None or 2 * len(batches) > -(-p.n // _BATCH):
            return self._read(p).take(pa.array(rows))
        with pa.memory_map(str(p.path)) as src:
            reader = pa.ipc.open_file(src)
            parts = []
            for b in batches:
                mine = rows[(rows >= b * _BATCH) & (rows < (b + 1) * _BATCH)] - b * _BATCH
                parts.append(pa.Table.from_batches([reader.get_batch(int(b))])
                             .take(pa.array(mine)))
        return pa.concat_tables(parts)

    def _read(self, p: _Part) -> pa.Table:
        key = (p.path, p.version)
        with self._lock:
            tab = self._cache.get(key)
            if tab is not None:
                self._cache.move_to_end(key)
                return tab
        tab = feather.read_table(p.path)
        with self._lock:
            self._cache[key] = tab
            while len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        return tab


#: rows per Arrow record batch of a partition file (what :meth:`ApiStore._take` decodes)
_BATCH = 8192


def _digest(table: pa.Table) -> str:
    """sha256 of a table's content (its Arrow IPC stream)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


class StoredApi(ApiData):
    """:class:`~quantlib.sandbox.api.ApiData` whose ``prices`` and ``fundamentals``
    pages come from an :class:`ApiStore`; ``reference`` holds the other frames
    (``prices`` and ``statements`` of it are not used)."""

    def __init__(self, reference: SandboxUniverse, store: ApiStore) -> None:
        self.store = store
        super().__init__(reference)

    def _prices(self, m: str) -> Table:
        return Table({})

    def _fundamentals(self, m: str) -> Table:
        return Table({})

    def page(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        """One page: ``{"data", "page", "next_page", "total_rows"}``."""
        if endpoint not in STORED_ENDPOINTS:
            return super().page(endpoint, params)
        parts, head = self._stored(endpoint, params)
        data = [r for part in parts for r in part.to_pylist()]
        return {"data": data, **head}

    def page_body(self, endpoint: str, params: dict[str, str]) -> bytes:
        """One page as the JSON the server sends (see :meth:`ApiData.page_body`)."""
        if endpoint not in STORED_ENDPOINTS:
            return super().page_body(endpoint, params)
        parts, head = self._stored(endpoint, params)
        body = None
        if parts:
            tab = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            body = encode_page({name: tab.column(name) for name in tab.column_names},
                               **head)
        return body if body is not None else page_json(
            {"data": [r for part in parts for r in part.to_pylist()], **head})

    def _stored(self, endpoint: str, params: dict[str, str]
                ) -> tuple[list[pa.Table], dict[str, Any]]:
        """A stored endpoint's page: its rows as Arrow tables, and its other keys."""
        self.table(endpoint, params)          # validates the market
        t0, t1 = 0, 2**62
        if endpoint == "prices":
            t0 = _ms_param(params, "start", 0)
            t1 = _ms_param(params, "end", 2**62)
        since = (_ms_param(params, "updated_since", 0, instant=True)
                 if "updated_since" in params else None)
        page = _int_param(params, "page", 1, 1, 10**9)
        size = _int_param(params, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        a = (page - 1) * size
        parts, total = self.store.slices(endpoint, params["market"], a, a + size, t0, t1,
                                         since)
        return parts, {"page": page, "next_page": page + 1 if a + size < total else None,
                       "total_rows": total}
