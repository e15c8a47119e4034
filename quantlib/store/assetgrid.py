"""Asset-axis layout of the stored price panels: sorted history, later listings appended.

A market panel's ``asset`` axis is sorted by asset id when the panel is written whole
(full build, fallback rewrite) and after compaction. A listing that arrives later would
take its sorted place (an ISIN sorts anywhere) and move every stored column after it:
a rewrite of those columns over all history, a cost that grows with history. Instead:

1. A delta commit appends the new assets *physically* at the end of the asset axis
   (sorted among themselves), and the stored ``asset`` coordinate is in that physical
   order. No stored column moves: a new column is written only in the rows the delta
   writes anyway (the new dates, a corrected tail), so a listing costs the same
   whatever the history.
2. A new column's cells before those rows are never written: they read as each
   array's zarr fill value, which is what a full build stores where an asset has no
   bar (:data:`NO_BAR`: ``split`` 1.0, ``dividend`` 0.0, ``known_at`` NaT as
   ``-2**63``, NaN otherwise); every panel writer sets them (:func:`fill_encoding`).
   A new column inside the last, partly filled asset chunk lands on cells past the
   old extent, which zarr wrote as the fill value (it fills a partial edge chunk with
   it, and the axis never shrinks). A panel stored before these fill values
   (:func:`has_no_bar_fills` is False) is rewritten whole on its first listing, once.
3. Readers present the sorted order: :func:`sorted_order` of the stored ids, applied
   by :class:`SortedColumns` (sorted column positions -> stored ones) in
   :func:`quantlib.store.chunkread.dask_panel` (``CuratedStore.open_prices``) and the
   catalog's column reader. Code that indexes stored arrays directly takes its
   column numbers from :func:`stored_ids`.
4. Compaction (:func:`restore_order`, in its own commit) writes the columns from the
   first out-of-place one on back in sorted order, one date chunk at a time.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import numpy as np
import xarray as xr
import zarr

from quantlib.store import dategrid
from quantlib.store.panels import NAT_INT

__all__ = ["NO_BAR", "no_bar", "fill_encoding", "has_no_bar_fills", "stored_ids",
           "sorted_order", "sorted_prefix", "sorted_blocks", "SortedColumns", "take_columns", "restore_order"]

#: What a panel holds where an asset has no bar, besides NaN (the zarr fill value of
#: each such array, so never-written cells read as it).
NO_BAR: dict[str, float | int] = {"split": 1.0, "dividend": 0.0, "known_at": int(NAT_INT)}
#: a run of wanted stored columns is read as one box while the gaps in it are at most
#: this wide (one panel chunk)
_GAP = 512


def no_bar(name: str) -> float | int:
    """The value of variable ``name`` where an asset has no bar.

    Examples
    --------
    >>> no_bar("split"), no_bar("close")
    (1.0, nan)
    """
    return NO_BAR.get(name, float("nan"))


def fill_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """``to_zarr`` encoding that gives each 2-D variable of a panel its :func:`no_bar`
    value as zarr fill value (float variables and those in :data:`NO_BAR`).

    Examples
    --------
    >>> ds = xr.Dataset({"split": (("date", "asset"), np.ones((1, 1))),
    ...                  "known_at": (("date", "asset"), np.zeros((1, 1), "int64"))})
    >>> fill_encoding(ds)
    {'split': {'fill_value': 1.0}, 'known_at': {'fill_value': -9223372036854775808}}
    """
    out: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        if var.ndim == 2 and (str(name) in NO_BAR or var.dtype.kind == "f"):
            out[str(name)] = {"fill_value": no_bar(str(name))}
    return out


def has_no_bar_fills(group: zarr.Group) -> bool:
    """Whether every 2-D array of a panel group has its :func:`no_bar` fill value
    (panels written before these fill values do not).

    Examples
    --------
    >>> g = zarr.group(store=zarr.storage.MemoryStore())
    >>> _ = g.create_array("split", shape=(2, 2), dtype="f8", fill_value=1.0)
    >>> has_no_bar_fills(g)
    True
    >>> _ = g.create_array("dividend", shape=(2, 2), dtype="f8", fill_value=np.nan)
    >>> has_no_bar_fills(g)
    False
    """
    for name, a in group.arrays():
        arr = cast(zarr.Array, a)
        if arr.ndim != 2:
            continue
        want, got = no_bar(name), arr.fill_value
        if not (got == want or (np.isnan(want) and np.isnan(float(got)))):  # type: ignore
            return False
    return True


def stored_ids(group: zarr.Group) -> np.ndarray:
    """The ``asset`` coordinate of a panel group in stored (physical) order.

    Examples
    --------
    >>> g = zarr.group(store=zarr.storage.MemoryStore())
    >>> _ = g.create_array("asset", data=np.array(["B", "A"]))
    >>> stored_ids(g).tolist()
    ['B', 'A']
    """
    return np.asarray(cast(zarr.Array, group["asset"])[:]).astype(str)


def sorted_order(ids: Any) -> np.ndarray | None:
    """Stored position of each asset in sorted order; ``None`` when already sorted.

    Examples
    --------
    >>> sorted_order(["A", "C", "D", "B"]).tolist()
    [0, 3, 1, 2]
    >>> sorted_order(["A", "B"]) is None
    True
    """
    values = np.asarray(ids).astype(str)
    if len(values) < 2 or bool((values[:-1] <= values[1:]).all()):
        return None
    return np.argsort(values, kind="stable")


def sorted_prefix(ids: Any) -> int:
    """How many stored columns, from the first, are in sorted order (the rest: listings
    appended since the panel's last whole write).

    Examples
    --------
    >>> sorted_prefix(["A", "C", "E", "B", "D"]), sorted_prefix(["A", "B"])
    (3, 2)
    """
    values = np.asarray(ids).astype(str)
    unsorted = np.flatnonzero(values[:-1] > values[1:])
    return int(unsorted[0]) + 1 if len(unsorted) else len(values)


def sorted_blocks(ids: Any, order: np.ndarray, width: int) -> tuple[int, ...]:
    """Widths of column blocks along the sorted axis, each reading the sorted stored
    columns of ONE ``width``-wide stored chunk (plus the appended listings that sort
    among them): a block per stored chunk, as for a sorted panel, so no chunk of the
    sorted part is read twice.

    Examples
    --------
    >>> ids = np.array(["A", "C", "E", "G", "D"])      # "D" appended after the sorted part
    >>> sorted_blocks(ids, sorted_order(ids), 2)       # stored chunks [A C] [E G]: [A C D] [E G]
    (3, 2)
    """
    key = np.where(order < sorted_prefix(ids), order // width, -1)
    for i in range(len(key)):       # an appended listing joins the block before it
        if key[i] < 0:
            key[i] = key[i - 1] if i else 0
    starts = np.flatnonzero(np.diff(key) != 0) + 1
    return tuple(int(w) for w in np.diff(np.concatenate([[0], starts, [len(key)]])))


def take_columns(base: Any, rows: Any, cols: np.ndarray) -> np.ndarray:
    """``base[rows, cols]`` for stored column numbers ``cols`` (any order), reading each
    run of nearby columns as one box (``base`` needs only slice indexing).

    Examples
    --------
    >>> a = np.arange(12.0).reshape(2, 6)
    >>> take_columns(a, slice(None), np.array([5, 0, 1])).tolist()
    [[5.0, 0.0, 1.0], [11.0, 6.0, 7.0]]
    """
    cols = np.asarray(cols, dtype=np.int64)
    if cols.size == 0:
        return np.asarray(base[rows, 0:0])
    if bool((np.diff(cols) == 1).all()):          # one contiguous run: no copy
        return np.asarray(base[rows, int(cols[0]):int(cols[-1]) + 1])
    by = np.argsort(cols, kind="stable")
    ordered = cols[by]
    out: np.ndarray | None = None
    for run, where in zip(np.split(ordered, np.flatnonzero(np.diff(ordered) > _GAP) + 1),
                          np.split(by, np.flatnonzero(np.diff(ordered) > _GAP) + 1),
                          strict=True):
        lo, hi = int(run[0]), int(run[-1]) + 1
        block = np.asarray(base[rows, lo:hi])
        if out is None:
            out = np.empty((*block.shape[:-1], len(cols)), dtype=block.dtype)
        w0 = int(where[0])
        if hi - lo == len(run) and bool((where == np.arange(w0, w0 + len(run))).all()):
            out[..., w0:w0 + len(run)] = block      # a contiguous run in place: one copy
        else:
            out[..., where] = block[..., run - lo]
    return cast(np.ndarray, out)


class SortedColumns:
    """Read-only view of a stored 2-D array (``date x asset``) with its columns in
    sorted asset order: ``view[rows, cols]`` reads stored columns ``order[cols]``.

    The columns stored after the sorted part (``tail``: the listings appended since the
    last whole write) are read together once per row selection and kept (they are few),
    so the column blocks of one read do not each decode the chunks that hold them.

    Parameters
    ----------
    base : array-like
        Supports ``base[rows, lo:hi]`` (a zarr array, a
        :class:`~quantlib.store.chunkread.ChunkedArray`, numpy).
    order : numpy.ndarray
        Stored column of each sorted position (:func:`sorted_order`).
    tail : int, optional
        First stored column after the sorted part (default: no tail kept).

    Examples
    --------
    >>> v = SortedColumns(np.array([[1.0, 2.0, 0.5]]), np.array([2, 0, 1]), tail=2)
    >>> v[:, :].tolist(), v[0, 1:].tolist()
    ([[0.5, 1.0, 2.0]], [1.0, 2.0])
    """

    def __init__(self, base: Any, order: np.ndarray, tail: int | None = None) -> None:
        self.base, self.order = base, np.asarray(order, dtype=np.int64)
        self.shape: tuple[int, ...] = tuple(base.shape)
        self.dtype = np.dtype(base.dtype)
        self.ndim = 2
        self.tail = self.shape[1] if tail is None else tail
        self._kept: tuple[Any, np.ndarray] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_kept"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, cols = (key + (slice(None),))[:2] if isinstance(key, tuple) else (key, slice(None))
        picked = self.order[cols]
        if np.ndim(picked) == 0:
            return self[rows, np.array([cols])][..., 0]
        late = picked >= self.tail
        if not late.any():
            return take_columns(self.base, rows, picked)
        tail = self._tail_block(rows)
        out = np.empty((*tail.shape[:-1], len(picked)), dtype=tail.dtype)
        out[..., late] = tail[..., picked[late] - self.tail]
        early = np.flatnonzero(~late)
        if len(early):
            # one read of the sorted stored columns (contiguous for a block of
            # sorted_blocks); the runs between two listings are copied into place
            part = take_columns(self.base, rows, picked[early])
            cuts = np.flatnonzero(np.diff(early) > 1) + 1
            for seg in np.split(np.arange(len(early)), cuts):
                lo = int(early[seg[0]])
                out[..., lo:lo + len(seg)] = part[..., seg[0]:seg[-1] + 1]
        return out

    def _tail_block(self, rows: Any) -> np.ndarray:
        """``base[rows, tail:]``, read once per row selection."""
        key = (rows.start, rows.stop, rows.step) if isinstance(rows, slice) else None
        with self._lock:
            if key is not None and self._kept is not None and self._kept[0] == key:
                return self._kept[1]
            block = np.asarray(self.base[rows, self.tail:])
            if key is not None:
                self._kept = (key, block)
            return block


def restore_order(group: zarr.Group) -> bool:
    """Write a panel group's columns back in sorted asset order (compaction); ``False``
    when they already are.

    Only the columns from the first out-of-place one on are written, one stored date
    chunk of rows at a time (memory: one date chunk of those columns).

    Examples
    --------
    >>> g = zarr.group(store=zarr.storage.MemoryStore())
    >>> _ = g.create_array("asset", data=np.array(["A", "C", "B"]))
    >>> x = g.create_array("close", shape=(2, 3), chunks=(1, 2), dtype="f8",
    ...                    dimension_names=("date", "asset"))
    >>> x[:] = [[1.0, 3.0, 2.0], [4.0, 6.0, 5.0]]
    >>> restore_order(g), stored_ids(g).tolist(), g["close"][:].tolist()
    (True, ['A', 'B', 'C'], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    """
    ids = stored_ids(group)
    order = sorted_order(ids)
    if order is None:
        return False
    first = int(np.flatnonzero(order != np.arange(len(order)))[0])
    pick = order[first:] - first
    for _name, arr in dategrid.date_arrays(group):
        if arr.ndim != 2:
            continue
        start = 0
        for edge in dategrid.date_edges(arr):
            stop = min(start + edge, arr.shape[0])
            if stop > start:
                block = np.asarray(arr[start:stop, first:])
                arr[start:stop, first:] = block[:, pick]
            start = stop
    asset = cast(zarr.Array, group["asset"])
    asset[first:] = np.asarray(ids[order[first:]], dtype=asset.dtype)
    return True
