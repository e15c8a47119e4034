"""Fast reads of stored panel arrays: chunks fetched concurrently, decoded in threads.

Reading one variable of one market (14,000 assets x 20 years, 1,120 chunks of
``128 x 512``) through zarr's generic pipeline spends ~2 CPU-s in zarr's per-chunk
Python machinery besides the fetch and the decode (bench/RESULTS.md, "Reads at
scale"). For the codec chains the store writes (``bytes`` + ``zstd`` or ``blosc``, no
sharding, no array-to-array filter) :class:`ChunkedArray` does the same read with
none of that:

1. the region asked for is mapped to the chunks it touches and their keys
   (``<path>/c/<i>/<j>``);
2. the chunks are fetched concurrently from the store (``Store.get`` on zarr's event
   loop; Icechunk fetches on its own Rust threads), at most :data:`IN_FLIGHT` at a time;
3. each fetched chunk is decoded by numcodecs (zstd/blosc release the GIL) on a shared
   thread pool and copied straight into its place in one preallocated output array; a
   chunk the store does not hold (never written, or all fill) is the fill value.

Any other codec chain falls back to zarr's own read, so values are always zarr's.
:func:`dask_panel` wraps a stored group's 2-D variables as dask arrays over
:class:`ChunkedArray` (one task per ``all dates x 512 assets`` column block; dask fuses
a later slice into the read, so a tail read fetches only the tail's chunks).
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import xarray as xr
import zarr

from quantlib.errors import StoreError
from quantlib.store.dategrid import chunk_edges

__all__ = ["ChunkedArray", "dask_panel", "native_chunk_dir", "IN_FLIGHT", "COLUMN_BLOCK"]

#: chunks fetched or being decoded at once, per read (bounds the memory a read holds
#: beyond its output: ~IN_FLIGHT x (compressed + decoded chunk))
IN_FLIGHT = 32
#: assets per dask task of :func:`dask_panel` (the panel chunk width)
COLUMN_BLOCK = 512

_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The decode pool of this process (recreated after a fork)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            workers = max(2, os.cpu_count() or 2)
            _POOL = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="chunkread"))
        return _POOL[1]


def _decoder(arr: zarr.Array) -> Any:
    """numcodecs decoder of ``arr``'s chunks, ``False`` when the chain is not one this
    module reads itself (``None``: stored uncompressed)."""
    from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

    meta = arr.metadata
    if getattr(meta, "zarr_format", 2) != 3 or arr.dtype.kind not in "fiub":
        return False
    codecs = list(meta.codecs)  # type: ignore[union-attr]
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return False
    endian = codecs[0].endian
    if arr.dtype.itemsize > 1 and str(getattr(endian, "value", endian)) != "little":
        return False
    rest = codecs[1:]
    if not rest:
        return None
    if len(rest) == 1 and isinstance(rest[0], ZstdCodec):
        from numcodecs import Zstd
        return Zstd()
    if len(rest) == 1 and isinstance(rest[0], BloscCodec):
        from numcodecs import Blosc
        return Blosc()
    return False


def _box(key: Any, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[Any, ...]] | None:
    """``key`` (slices, integers, integer or boolean arrays; no new axes) as the
    bounding region to read (unit-step slices) and the key that picks the same values
    out of that region; ``None`` for any other key.

    Examples
    --------
    >>> _box((slice(None, None, 2), np.array([3, 1])), (5, 4))
    ((slice(0, 5, None), slice(1, 4, None)), (slice(0, 5, 2), array([2, 0])))
    """
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1:]
    if len(key) > len(shape):
        return None
    key = key + (slice(None),) * (len(shape) - len(key))
    box: list[slice] = []
    rest: list[Any] = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            r = range(*k.indices(n))
            lo, hi = (min(r[0], r[-1]), max(r[0], r[-1]) + 1) if len(r) else (0, 0)
            box.append(slice(lo, hi))
            stop = r.stop - lo
            rest.append(slice(r.start - lo, stop if stop >= 0 else None, r.step)
                        if len(r) else slice(0, 0))
            continue
        idx = np.asarray(k)
        if idx.dtype == bool and idx.shape == (n,):
            idx = np.flatnonzero(idx)
        if idx.dtype.kind not in "iu":
            return None
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            return None
        lo = int(idx.min()) if idx.size else 0
        box.append(slice(lo, int(idx.max()) + 1 if idx.size else 0))
        rest.append(idx - lo if idx.ndim else int(idx) - lo)
    return tuple(box), tuple(rest)


class ChunkedArray:
    """Read-only array over one stored zarr array, read as described in the module
    docstring (``arr[rows, cols]`` with unit-step slices; other keys go to zarr).

    Parameters
    ----------
    store : zarr store
        The store (an Icechunk session's ``store``, or any zarr v3 store).
    path : str
        The array's path in the store, e.g. ``"prices/US/close"``.
    chunk_dir : str, optional
        The local folder of an Icechunk repository's native chunks
        (``<repository>/chunks``): chunks are then read from their files directly
        (see :func:`native_chunk_dir`); without it every chunk is fetched with
        ``store.get``.

    Examples
    --------
    >>> from zarr.storage import MemoryStore
    >>> s = MemoryStore()
    >>> a = zarr.create_array(s, name="x", shape=(5, 3), chunks=(2, 2), dtype="f8",
    ...                       fill_value=np.nan)
    >>> a[:4] = np.arange(12.0).reshape(4, 3)
    >>> ChunkedArray(s, "x")[1:5, 1:].tolist()
    [[4.0, 5.0], [7.0, 8.0], [10.0, 11.0], [nan, nan]]
    """

    def __init__(self, store: Any, path: str, chunk_dir: str | None = None) -> None:
        self.store, self.path, self.chunk_dir = store, path, chunk_dir
        self._array = arr = zarr.open_array(store, path=path, mode="r")
        self.shape: tuple[int, ...] = tuple(arr.shape)
        self.dtype = np.dtype(arr.dtype)  # type: ignore[arg-type]
        self.ndim = len(self.shape)
        # chunk edges per axis (regular or rectilinear grid: quantlib.store.dategrid)
        self.edges = chunk_edges(arr)
        self._starts = [np.concatenate([[0], np.cumsum(e)]) for e in self.edges]
        self.fill_value = arr.fill_value
        self._codec: Any = _decoder(arr) if arr.shards is None and not arr.filters else False
        self._refs: dict[tuple[int, ...], tuple[int, str, int, int, bytes | None]] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_refs"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def direct(self) -> bool:
        """Whether reads bypass zarr's pipeline (a codec chain this module decodes)."""
        return self._codec is not False

    def __getitem__(self, key: Any) -> np.ndarray:
        found = _box(key, self.shape)
        if found is None:
            return np.asarray(self._array[key])
        box, rest = found
        region = self.read(box) if self.direct else np.asarray(self._array[box])
        whole = all(isinstance(r, slice) and r == slice(0, b.stop - b.start, 1)
                    for r, b in zip(rest, box, strict=True))
        return region if whole else region[rest]

    def read(self, sel: tuple[slice, ...]) -> np.ndarray:
        """Values of the region ``sel`` (unit-step slices, one per axis)."""
        out = np.empty(tuple(s.stop - s.start for s in sel), dtype=self.dtype)
        if out.size == 0:
            return out
        refs = self._chunk_refs()
        local, remote = [], []
        for idx, src, dst in self._jobs(sel):
            ref = refs.get(idx) if refs is not None else None
            if refs is not None and ref is None:
                out[dst] = self.fill_value           # no such chunk: all fill
            elif ref is not None and ref[0] in (_NATIVE, _INLINE):
                local.append((ref, idx, src, dst))
            else:
                remote.append((idx, src, dst))
        if local:
            list(_pool().map(lambda job: self._place_ref(job[0], job[1], job[2], job[3], out),
                             local))
        if remote:
            from zarr.core.sync import sync

            sync(self._fetch_all(remote, out))
        return out

    def _chunk_refs(self) -> dict[tuple[int, ...], tuple[int, str, int, int, bytes | None]] | None:
        """Where each stored chunk lies (Icechunk's chunk references, read once), or
        ``None`` when chunks are fetched through ``store.get``."""
        if self.chunk_dir is None or not hasattr(self.store, "array_chunk_iterator"):
            return None
        with self._lock:
            if self._refs is None:
                from zarr.core.sync import sync

                self._refs = sync(_collect_refs(self.store, self.path))
        return self._refs

    def _jobs(self, sel: tuple[slice, ...]):  # type: ignore[no-untyped-def]
        """``(chunk index, slice in the chunk, slice in the output)`` of each chunk
        touched."""
        import itertools

        ranges = [range(int(np.searchsorted(b, s.start, side="right")) - 1,
                        int(np.searchsorted(b, s.stop - 1, side="right")))
                  for s, b in zip(sel, self._starts, strict=True)]
        for idx in itertools.product(*ranges):
            src, dst = [], []
            for i, s, b in zip(idx, sel, self._starts, strict=True):
                lo, hi = max(s.start, int(b[i])), min(s.stop, int(b[i + 1]))
                src.append(slice(lo - int(b[i]), hi - int(b[i])))
                dst.append(slice(lo - s.start, hi - s.start))
            yield idx, tuple(src), tuple(dst)

    def _key(self, idx: tuple[int, ...]) -> str:
        return f"{self.path}/{self._array.metadata.encode_chunk_key(idx)}"

    async def _fetch_all(self, jobs: list[tuple[tuple[int, ...], tuple[slice, ...],
                                                tuple[slice, ...]]], out: np.ndarray) -> None:
        from zarr.core.buffer import default_buffer_prototype

        loop, proto, pool = asyncio.get_running_loop(), default_buffer_prototype(), _pool()
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(idx: tuple[int, ...], src: tuple[slice, ...],
                      dst: tuple[slice, ...]) -> None:
            async with gate:
                buf = await self.store.get(self._key(idx), proto)
                raw = None if buf is None else buf.as_numpy_array()
                await loop.run_in_executor(pool, self._place, raw, idx, src, dst, out)

        await asyncio.gather(*(one(*job) for job in jobs))

    def _place_ref(self, ref: tuple[int, str, int, int, bytes | None], idx: tuple[int, ...],
                   src: tuple[slice, ...], dst: tuple[slice, ...], out: np.ndarray) -> None:
        """Read one chunk from its file (or inline bytes) and place it (decode pool)."""
        self._place(self._chunk_bytes(ref), idx, src, dst, out)

    def _chunk_bytes(self, ref: tuple[int, str, int, int, bytes | None]) -> bytes | None:
        """A stored chunk's bytes, read from its file (or inline in the manifest)."""
        kind, chunk_id, offset, length, inline = ref
        if kind == _INLINE:
            return inline
        path = os.path.join(cast(str, self.chunk_dir), chunk_id)
        try:
            with open(path, "rb") as f:
                raw = os.pread(f.fileno(), length, offset)
        except FileNotFoundError:
            raise StoreError("every chunk a snapshot's manifest records must exist in the store",
                             found="the chunk file is missing",
                             fix="the store is damaged (a chunk deleted by hand or by a garbage "
                                 "collection that ignored this snapshot): restore it or rebuild "
                                 "it", file=path, field=self.path) from None
        if len(raw) != length:
            raise StoreError("a stored chunk must hold the bytes its manifest records",
                             found=f"{len(raw)} of {length} bytes at offset {offset}",
                             fix="the store is damaged: restore it or rebuild it",
                             file=path, field=self.path)
        return raw

    def _place(self, raw: Any, idx: tuple[int, ...], src: tuple[slice, ...],
               dst: tuple[slice, ...], out: np.ndarray) -> None:
        """Decode one chunk's bytes into its place in ``out`` (runs on the decode pool)."""
        if raw is None:
            out[dst] = self.fill_value
            return
        if self._codec is not None:
            raw = self._codec.decode(raw)
        shape = tuple(e[i] for e, i in zip(self.edges, idx, strict=True))
        chunk = np.frombuffer(raw, dtype=self.dtype, count=math.prod(shape))
        out[dst] = chunk.reshape(shape)[src]


_NATIVE, _VIRTUAL, _INLINE = 1, 2, 3


async def _collect_refs(store: Any, path: str
                        ) -> dict[tuple[int, ...], tuple[int, str, int, int, bytes | None]]:
    """Icechunk's reference of every stored chunk of one array, by chunk index."""
    refs: dict[tuple[int, ...], tuple[int, str, int, int, bytes | None]] = {}
    async for coords, kinds, paths, offsets, lengths, inlined in \
            store.array_chunk_iterator(path):
        for i in range(len(paths)):
            refs[tuple(int(c) for c in coords[i])] = (
                int(kinds[i]), str(paths[i]), int(offsets[i]), int(lengths[i]),
                inlined.get(i))
    return refs


def native_chunk_dir(location: Any) -> str | None:
    """The folder of native chunks of the curated repository at a local store location
    (``<store>/curated/chunks``, Icechunk's layout); ``None`` for object stores.

    Examples
    --------
    >>> from quantlib.storage import resolve_location
    >>> native_chunk_dir(resolve_location("/data/store"))
    '/data/store/curated/chunks'
    >>> native_chunk_dir(resolve_location("s3://bucket/prefix")) is None
    True
    """
    if location.protocol != "file":
        return None
    return os.path.join(location.prefix, "curated", "chunks")


def _plain(var: xr.Variable) -> bool:
    """Whether xarray's decoding of a stored variable leaves its values as stored."""
    enc = var.encoding
    if any(k in enc for k in ("scale_factor", "add_offset", "units", "_Unsigned")):
        return False
    if np.dtype(enc.get("dtype", var.dtype)) != var.dtype:
        return False
    fill = enc.get("_FillValue")
    return fill is None or (var.dtype.kind == "f" and bool(np.isnan(fill)))


def dask_panel(store: Any, group: str, ds: xr.Dataset, name: str,
               chunk_dir: str | None = None) -> xr.Dataset:
    """``ds`` (the group opened by ``xarray.open_zarr``) with each 2-D variable that is
    stored plainly and read directly (see :class:`ChunkedArray`) replaced by a dask
    array over it, chunked ``(all rows, COLUMN_BLOCK)``; ``name`` (e.g. the snapshot
    id) makes the dask names deterministic. Other variables stay as opened.

    A panel whose stored ``asset`` axis is not sorted (listings appended since the last
    full write, :mod:`quantlib.store.assetgrid`) comes back in sorted asset order: the
    direct variables read the stored columns of each sorted block
    (:class:`~quantlib.store.assetgrid.SortedColumns`; one block per stored chunk of
    the sorted part, :func:`~quantlib.store.assetgrid.sorted_blocks`), the others are
    reindexed.

    Examples
    --------
    >>> from zarr.storage import MemoryStore
    >>> s = MemoryStore()
    >>> xr.Dataset({"close": (("date", "asset"), np.arange(6.0).reshape(3, 2))},
    ...            coords={"asset": ["B", "A"]}).to_zarr(
    ...     s, group="p", zarr_format=3, consolidated=False)  # doctest: +ELLIPSIS
    <xarray.backends.zarr.ZarrStore object at ...>
    >>> ds = dask_panel(s, "p", xr.open_zarr(s, group="p", consolidated=False), "v1")
    >>> ds["close"].data.chunks, ds["asset"].values.tolist(), ds["close"][1:].values.tolist()
    (((3,), (2,)), ['A', 'B'], [[3.0, 2.0], [5.0, 4.0]])
    """
    import dask.array as da

    from quantlib.store.assetgrid import (
        SortedColumns,
        sorted_blocks,
        sorted_order,
        sorted_prefix,
    )

    order = sorted_order(ds["asset"].values) if "asset" in ds.dims else None
    blocks: Any = COLUMN_BLOCK if order is None else \
        sorted_blocks(ds["asset"].values, order, COLUMN_BLOCK)
    direct: dict[str, xr.Variable] = {}
    for var_name, var in ds.data_vars.items():
        if var.ndim != 2 or not _plain(var.variable):
            continue
        arr = ChunkedArray(store, f"{group}/{var_name}", chunk_dir)
        if not arr.direct or arr.shape != var.shape:
            continue
        source: Any = arr
        if order is not None and var.dims[1] == "asset":
            source = SortedColumns(arr, order, sorted_prefix(ds["asset"].values))
        elif order is not None:
            continue
        data = da.from_array(source, chunks=(arr.shape[0] or 1, blocks),
                             name=f"panel-{name}-{group}/{var_name}", asarray=False)
        direct[str(var_name)] = xr.Variable(var.dims, data, var.attrs, var.encoding)
    rest = ds.drop_vars(list(direct))
    if order is not None:
        rest = rest.isel(asset=order)
    out = xr.Dataset({v: direct[str(v)] if str(v) in direct else rest[v].variable
                      for v in ds.data_vars}, coords=rest.coords, attrs=ds.attrs)
    out.encoding = dict(ds.encoding)
    return out
