"""Date-axis chunk policy of the stored panels: full blocks, then a tail of small chunks.

Every array whose first dimension is ``date`` (the 2-D panel variables and the ``date``
coordinate) uses a rectilinear chunk grid along ``date`` (zarr's
``array.rectilinear_chunks``, switched on when this module is imported), like a
log-structured merge tree:

- history in full blocks of :data:`BLOCK` dates (2-D; the 1-D coordinate keeps one
  chunk), never rewritten once full;
- then merged tail chunks (what earlier compactions folded, each < ``BLOCK`` dates);
- then one chunk per date appended since the last compaction.

A daily append (:func:`resize`) only adds 1-date chunks: it changes the grid metadata
in place and the caller writes the new rows, so no stored chunk is rewritten (a
correction inside the tail rewrites one small chunk). Compaction (:func:`compact_group`,
called by :func:`quantlib.store.compact.compact`) merges the trailing 1-date chunks into
one chunk and, once the tail holds ``BLOCK`` dates or more, folds it into full blocks;
each date is thus rewritten about two or three times in all. Retiling
(:func:`retile`) keeps every chunk before the first changed edge (Icechunk keeps their
references), rewrites the rows after it and deletes the chunk keys past the new grid.

A panel written whole (regular ``128 x 512`` grid, as xarray writes it) is switched to
this grid by :func:`seal` (the partly filled last block is rewritten once, in chunks
of at most :data:`TAIL` dates: a correction within the daily look-back then rewrites
16 dates or so of every column, not up to 127, whatever the history's length modulo
the block), or on its first append by :func:`resize`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import cast

import numpy as np
import zarr
from zarr.core.metadata.v3 import RectilinearChunkGridMetadata, RegularChunkGridMetadata
from zarr.core.sync import sync

__all__ = ["BLOCK", "TAIL", "sealed_edges", "chunk_edges", "date_edges", "compacted_edges", "resize", "retile", "seal",
           "compact_group", "date_arrays", "pending", "is_rectilinear", "table_edges",
           "compact_table", "table_pending"]

#: Dates per full history block of a 2-D panel variable.
BLOCK = 128
#: Most dates per chunk of the partly filled last block of a panel written whole
#: (:func:`sealed_edges`): the daily look-back re-fetches ~10 sessions, and a corrected
#: bar rewrites its whole chunk (every asset column of it, every variable).
TAIL = 16

zarr.config.set({"array.rectilinear_chunks": True})
# processes started from this one (dask workers) read the same stores
os.environ.setdefault("ZARR_ARRAY__RECTILINEAR_CHUNKS", "True")


def _grid(arr: zarr.Array) -> RegularChunkGridMetadata | RectilinearChunkGridMetadata:
    """The chunk grid metadata of a zarr v3 array."""
    return cast(RegularChunkGridMetadata | RectilinearChunkGridMetadata,
                arr.metadata.chunk_grid)  # type: ignore[union-attr]


def date_edges(arr: zarr.Array) -> list[int]:
    """Chunk edges along ``date`` (axis 0), as stored (regular grids spelled out).

    Examples
    --------
    >>> a = zarr.create_array({}, shape=(300, 4), chunks=(128, 4), dtype="f8")
    >>> date_edges(a)
    [128, 128, 128]
    """
    grid = _grid(arr)
    if isinstance(grid, RegularChunkGridMetadata):
        step = grid.chunk_shape[0]
        return [step] * max(1, math.ceil(arr.shape[0] / step))
    return list(_dim_edges(grid.chunk_shapes[0], arr.shape[0]))


def chunk_edges(arr: zarr.Array) -> tuple[tuple[int, ...], ...]:
    """Chunk edges of every axis (each chunk's encoded length; the last may reach past
    the extent), for a regular or a rectilinear grid.

    Examples
    --------
    >>> chunk_edges(zarr.create_array({}, shape=(300, 4), chunks=(128, 4), dtype="f8"))
    ((128, 128, 128), (4,))
    """
    grid = _grid(arr)
    if isinstance(grid, RegularChunkGridMetadata):
        return tuple((c,) * max(1, math.ceil(n / c)) for n, c in zip(arr.shape,
                                                                       grid.chunk_shape,
                                                                       strict=True))
    return tuple(_dim_edges(spec, n) for spec, n in zip(grid.chunk_shapes, arr.shape,
                                                        strict=True))


def _dim_edges(spec: int | tuple[int, ...], extent: int) -> tuple[int, ...]:
    if isinstance(spec, int):
        return (spec,) * max(1, math.ceil(extent / spec))
    return tuple(spec)


def compacted_edges(edges: Sequence[int], *, block: int = BLOCK, one_chunk: bool = False
                    ) -> list[int]:
    """The date edges compaction leaves (see the module docstring).

    Examples
    --------
    >>> compacted_edges([128, 128, 40, 1, 1, 1])        # merge the 1-date chunks
    [128, 128, 40, 3]
    >>> compacted_edges([128, 100, 20, 1, 1, 1, 1, 1, 1, 1, 1, 1])   # fold into a block
    [128, 128, 1]
    >>> compacted_edges([128, 5, 1])                    # nothing worth merging
    [128, 5, 1]
    >>> compacted_edges([40, 1, 1], one_chunk=True)     # the 1-D coordinate
    [42]
    """
    edges = list(edges)
    if one_chunk:
        return [sum(edges)] if len(edges) > 1 else edges
    head = 0
    while head < len(edges) and edges[head] == block:
        head += 1
    tail = edges[head:]
    total = sum(tail)
    if total >= block:
        return edges[:head] + [block] * (total // block) + ([total % block] if total % block
                                                              else [])
    ones = 0
    while ones < len(tail) and tail[len(tail) - 1 - ones] == 1:
        ones += 1
    if ones < 2:
        return edges
    return edges[:head] + tail[:len(tail) - ones] + [ones]


def _other_edges(arr: zarr.Array, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Explicit edges of the non-date axes for ``shape`` (regular steps kept)."""
    grid = _grid(arr)
    out = []
    for axis in range(1, arr.ndim):
        if isinstance(grid, RegularChunkGridMetadata):
            step = grid.chunk_shape[axis]
        else:
            spec = grid.chunk_shapes[axis]
            step = spec if isinstance(spec, int) else spec[0]
        out.append((step,) * max(1, math.ceil(shape[axis] / step)))
    return out


def _set_grid(arr: zarr.Array, edges: Sequence[int], shape: tuple[int, ...]) -> zarr.Array:
    """Store ``arr``'s metadata with date ``edges`` and ``shape``; return it reopened."""
    if sum(edges) < shape[0] or any(e <= 0 for e in edges):
        raise ValueError(f"date edges {list(edges)} must be positive and cover {shape[0]}")
    grid = RectilinearChunkGridMetadata(
        chunk_shapes=(tuple(edges), *_other_edges(arr, shape)))
    meta = dataclasses.replace(arr.metadata, chunk_grid=grid, shape=shape)  # type: ignore
    sync(arr._async_array._save_metadata(meta))
    return cast(zarr.Array, zarr.open_array(arr.store, path=arr.path, mode="r+"))


def _first_change(old: Sequence[int], new: Sequence[int]) -> tuple[int, int]:
    """(chunk index, row) of the first date edge that differs."""
    i = row = 0
    while i < min(len(old), len(new)) and old[i] == new[i]:
        row += old[i]
        i += 1
    return i, row


def retile(arr: zarr.Array, edges: Sequence[int], shape: tuple[int, ...] | None = None
           ) -> zarr.Array:
    """Give ``arr`` the date ``edges`` (and ``shape``), keeping every value.

    Chunks before the first changed edge are left as they are (Icechunk keeps their
    references); the stored rows after it are read, their old chunk keys deleted, the
    grid changed and the rows written back under the new grid (rows past the old
    extent read as the fill value).

    Returns
    -------
    zarr.Array
        The array with its new grid.

    Examples
    --------
    >>> a = zarr.create_array({}, shape=(5, 2), chunks=(1, 2), dtype="f8")
    >>> a[:] = np.arange(10.0).reshape(5, 2)
    >>> b = retile(a, [2, 3])
    >>> b.read_chunk_sizes[0], float(b[4, 1])
    ((2, 3), 9.0)
    """
    shape = tuple(shape or arr.shape)
    old = date_edges(arr)
    idx, lo = _first_change(old, edges)
    hi = min(arr.shape[0], shape[0])
    keep = tuple(slice(0, min(a, b)) for a, b in zip(arr.shape[1:], shape[1:], strict=True))
    moved = np.asarray(arr[(slice(lo, hi), *keep)]) if hi > lo else None
    for i in range(idx, len(old)):
        _delete_date_chunk(arr, i)
    new = _set_grid(arr, edges, shape)
    if moved is not None:
        new[(slice(lo, hi), *keep)] = moved
    return new


def _delete_date_chunk(arr: zarr.Array, i: int) -> None:
    """Delete the chunk keys of date chunk ``i`` (every block of the other axes)."""
    counts = [len(e) for e in _other_edges(arr, arr.shape)]
    for rest in np.ndindex(*counts):
        key = arr.metadata.encode_chunk_key((i, *rest))  # type: ignore[union-attr]
        sync(arr.store.delete(f"{arr.path}/{key}"))


def resize(arr: zarr.Array, shape: tuple[int, ...], *, one_chunk: bool = False
           ) -> zarr.Array:
    """Grow ``arr`` to ``shape``: each new date gets its own 1-date chunk (``one_chunk``:
    the new rows together get one chunk, as a table append does).

    A stored grid whose last date chunk is partly filled (a regular grid) is retiled
    first so that chunk is exactly sized (written once); no other chunk is touched.

    Examples
    --------
    >>> a = zarr.create_array({}, shape=(3,), chunks=(3,), dtype="i8")
    >>> a[:] = [1, 2, 3]
    >>> b = resize(a, (5,))
    >>> b[3:] = [4, 5]
    >>> b.read_chunk_sizes[0], b[:].tolist()
    ((3, 1, 1), [1, 2, 3, 4, 5])
    """
    n_old, n = arr.shape[0], shape[0]
    edges = date_edges(arr)
    exact: list[int] = []
    for e in edges:
        if sum(exact) >= n_old:
            break
        exact.append(min(e, n_old - sum(exact)))
    grown = max(0, n - n_old)
    new_edges = (exact + ([grown] if one_chunk and grown else [1] * grown)) or [1]
    if exact == edges[:len(exact)] and len(exact) == len(edges) or n_old == 0:
        return _set_grid(arr, new_edges, shape)
    return retile(arr, new_edges, shape)


def date_arrays(group: zarr.Group) -> list[tuple[str, zarr.Array]]:
    """The arrays of a panel group whose first dimension is ``date``."""
    out = []
    for name, a in group.arrays():
        arr = cast(zarr.Array, a)
        dims = getattr(arr.metadata, "dimension_names", None)
        if dims and dims[0] == "date":
            out.append((name, arr))
    return out


def sealed_edges(n: int, *, block: int = BLOCK, tail: int = TAIL) -> list[int]:
    """The date edges of a 2-D panel variable of ``n`` dates written whole: full blocks,
    then the rest in chunks of at most ``tail`` dates (a correction of a recent bar
    rewrites one of those, not a block of up to ``block`` dates).

    Examples
    --------
    >>> sealed_edges(300)
    [128, 128, 16, 16, 12]
    >>> sealed_edges(256)
    [128, 128]
    """
    rest = n % block
    return [block] * (n // block) + [tail] * (rest // tail) + ([rest % tail] if rest % tail
                                                               else [])


def seal(group: zarr.Group) -> None:
    """Switch a panel group written whole to the date grid (see the module docstring)."""
    for _name, arr in date_arrays(group):
        n = arr.shape[0]
        if n == 0:
            continue  # nothing stored (e.g. an empty fx panel): its first append sets the grid
        edges = [n] if arr.ndim == 1 else sealed_edges(n)
        if not isinstance(_grid(arr), RectilinearChunkGridMetadata) \
                or date_edges(arr) != edges:
            retile(arr, edges)


def compact_group(group: zarr.Group, path: str) -> list[str]:
    """Compact the date grid of every date array in ``group``; return those retiled."""
    done = []
    for name, arr in date_arrays(group):
        if not isinstance(_grid(arr), RectilinearChunkGridMetadata):
            continue
        edges = date_edges(arr)
        target = compacted_edges(edges, one_chunk=arr.ndim == 1)
        if target != edges:
            retile(arr, target)
            done.append(f"{path}/{name}")
    return done


def table_edges(edges: Sequence[int], block: int) -> list[int]:
    """The row edges compaction leaves in an appended table: full blocks of ``block``
    rows kept, the chunks after them (one per append) merged and folded into blocks.

    Examples
    --------
    >>> table_edges([8, 8, 3, 2, 4], 8)
    [8, 8, 8, 1]
    >>> table_edges([8, 5], 8)
    [8, 5]
    """
    edges = list(edges)
    head = 0
    while head < len(edges) and edges[head] == block:
        head += 1
    tail = edges[head:]
    if len(tail) < 2:
        return edges
    total = sum(tail)
    return edges[:head] + [block] * (total // block) + ([total % block] if total % block
                                                        else [])


def compact_table(group: zarr.Group, path: str, block: int) -> list[str]:
    """Merge the per-append chunks of every rectilinear column of a table group."""
    done = []
    for name, a in group.arrays():
        arr = cast(zarr.Array, a)
        if not isinstance(_grid(arr), RectilinearChunkGridMetadata):
            continue
        edges = date_edges(arr)
        target = table_edges(edges, block)
        if target != edges:
            retile(arr, target)
            done.append(f"{path}/{name}")
    return done


def table_pending(group: zarr.Group, block: int) -> bool:
    """Whether :func:`compact_table` would retile anything in ``group``."""
    for _name, a in group.arrays():
        arr = cast(zarr.Array, a)
        if isinstance(_grid(arr), RectilinearChunkGridMetadata):
            edges = date_edges(arr)
            if table_edges(edges, block) != edges:
                return True
    return False


def pending(group: zarr.Group) -> bool:
    """Whether :func:`compact_group` would retile anything in ``group``."""
    for _name, arr in date_arrays(group):
        if isinstance(_grid(arr), RectilinearChunkGridMetadata):
            edges = date_edges(arr)
            if compacted_edges(edges, one_chunk=arr.ndim == 1) != edges:
                return True
    return False


def is_rectilinear(arr: zarr.Array) -> bool:
    """Whether ``arr`` has a rectilinear chunk grid (its chunks vary along an axis)."""
    return isinstance(_grid(arr), RectilinearChunkGridMetadata)
