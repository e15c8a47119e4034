"""Compaction: rewrite fragmented panel arrays with the read-friendly chunking, as its
own commit.

Panels are chunked for both appends and reads: 2-D variables ``128 dates x 512
assets`` (an append rewrites only the last date chunk), so daily appends never add
chunks there. What fragments is whatever kept its first build's chunking: the 1-D
coordinates (``date``, ``asset``, ``currency``) are chunked as long as the first
build's axis (a store started from a few sessions gets a ``date`` chunk every few
sessions, and every read of the panel opens all of them), and panels written before
the fixed chunking have narrow 2-D chunks. Step by step:

1. pin the tip of ``main`` and list each panel group's arrays (``prices/<market>``,
   ``fx``) whose chunks differ from the target (2-D: ``128 x 512``; 1-D: one chunk of
   up to 65,536 entries);
2. nothing to do: no commit (:attr:`CompactResult.snapshot_id` is ``None``);
3. otherwise, in one writable session, recreate each such array (same dtype, fill
   value, codecs, attributes and dimension names) with the target chunks and copy its
   values from the pinned version, one block of target rows at a time;
4. a price panel whose asset axis holds listings appended since its last full write
   (:mod:`quantlib.store.assetgrid`) gets its columns back in sorted order (from the
   first out-of-place column on, one date chunk at a time);
5. commit under the commit lock (refused if another writer moved ``main`` since step 1:
   :class:`~quantlib.errors.WriteConflictError`, nothing committed) and tag it
   ``compact-YYYYMMDDTHHMMSSZ``. Values are unchanged: every panel of the new version
   equals the previous one cell for cell; the previous versions stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import icechunk
import zarr

from quantlib.errors import WriteConflictError
from quantlib.store import assetgrid, dategrid
from quantlib.store.cas import commit_lock
from quantlib.store.curated import CuratedStore
from quantlib.store.tables import CHUNK_ROWS

__all__ = ["compact", "chunk_counts", "CompactResult", "TARGET_CHUNKS_2D", "TARGET_CHUNKS_1D"]

TARGET_CHUNKS_2D = (128, 512)
TARGET_CHUNKS_1D = 1 << 16
#: Tables appended by refreshes (one chunk per append until compaction merges them; the
#: reference tables when a delivery only added rows, quantlib.pipeline.incremental).
_TABLES = ("statements", "assets", "symbols", "corporate_actions")


@dataclass
class CompactResult:
    """What :func:`compact` did."""

    snapshot_id: str | None
    tag: str | None
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        b, a = sum(self.before.values()), sum(self.after.values())
        if self.snapshot_id is None:
            return f"compact: nothing to do ({b} chunks in the panels)"
        return (f"compact: snapshot {self.snapshot_id} ({self.tag}): {len(self.rewritten)} "
                f"arrays rewritten, panel chunks {b} -> {a}")


def _groups(root: zarr.Group) -> list[str]:
    out = []
    if "prices" in root:
        out += [f"prices/{m}" for m in sorted(cast(zarr.Group, root["prices"]).group_keys())]
    if "fx" in root:
        out.append("fx")
    return out


def _target(arr: zarr.Array) -> tuple[int, ...]:
    if arr.ndim == 2:
        return TARGET_CHUNKS_2D
    return (max(1, min(TARGET_CHUNKS_1D, max(arr.shape[0], 1))),) if arr.ndim == 1 \
        else tuple(arr.chunks)


def _n_chunks(arr: zarr.Array) -> int:
    return arr.nchunks if all(arr.shape) else 0


def chunk_counts(store: CuratedStore, snapshot: str | None = None) -> dict[str, int]:
    """Chunks a reader of each panel group opens (all its arrays), in a version.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> st = CuratedStore(tempfile.mkdtemp())
    >>> fx = pd.DataFrame({"date": pd.to_datetime(["2024-01-02"]), "currency": ["KRW"],
    ...                    "rate": [0.00077], "known_at": pd.to_datetime(["2024-01-02 22:00"], utc=True)})
    >>> _ = st.commit({"fx": fx}, message="first")
    >>> chunk_counts(st)
    {'fx': 4}
    """
    root = zarr.open_group(store.repo.readonly_session(
        snapshot_id=store.resolve(snapshot)).store, mode="r")
    return {g: sum(_n_chunks(cast(zarr.Array, a))
                   for _, a in cast(zarr.Group, root[g]).arrays())
            for g in _groups(root)}


def _fragmented(root: zarr.Group) -> list[str]:
    return [f"{g}/{name}" for g in _groups(root)
            for name, a in cast(zarr.Group, root[g]).arrays()
            if not dategrid.is_rectilinear(cast(zarr.Array, a))
            and tuple(cast(zarr.Array, a).chunks) != _target(cast(zarr.Array, a))]


def _rewrite(root: zarr.Group, base: zarr.Group, path: str) -> None:
    """Recreate ``path`` with the target chunks and copy its values from ``base``."""
    old = cast(zarr.Array, base[path])
    group_path, name = path.rsplit("/", 1)
    group = cast(zarr.Group, root[group_path])
    del group[name]
    new = group.create_array(
        name, shape=old.shape, chunks=_target(old), dtype=old.dtype,
        fill_value=old.fill_value, attributes=dict(old.attrs),
        dimension_names=old.metadata.dimension_names,  # type: ignore[union-attr]
        compressors=old.compressors, filters=old.filters,
        serializer=old.serializer if old.serializer is not None else "auto")
    step = new.chunks[0] * 8
    for lo in range(0, old.shape[0], step):
        new[lo:lo + step] = old[lo:lo + step]


def compact(store: str | None = None, *, tag: str | None = None) -> CompactResult:
    """Rewrite fragmented panel arrays as one new commit (see the module docstring).

    Parameters
    ----------
    store : str, optional
        Store URL (default: configured store).
    tag : str, optional
        Tag of the new version (default ``compact-YYYYMMDDTHHMMSSZ``).

    Returns
    -------
    CompactResult
        The new snapshot (``None`` when nothing was fragmented), chunk counts per
        panel group before and after, the arrays rewritten.

    Raises
    ------
    SnapshotNotFoundError
        The store holds no version yet.
    WriteConflictError
        Another writer committed while this one was rewriting; nothing was committed.
    """
    st = CuratedStore(store)
    st.location.check_writable()
    tip = st.resolve(None)
    base = zarr.open_group(st.repo.readonly_session(snapshot_id=tip).store, mode="r")
    todo = _fragmented(base)
    tails = [g for g in _groups(base) if dategrid.pending(cast(zarr.Group, base[g]))]
    tables = [t for t in _TABLES if t in base
              and dategrid.table_pending(cast(zarr.Group, base[t]), CHUNK_ROWS)]
    unsorted = [g for g in _groups(base) if g.startswith("prices/") and
                assetgrid.sorted_order(assetgrid.stored_ids(cast(zarr.Group, base[g])))
                is not None]
    result = CompactResult(None, None, before=chunk_counts(st, tip))
    if not todo and not tails and not tables and not unsorted:
        result.after = dict(result.before)
        return result
    session = st.repo.writable_session("main")
    if session.snapshot_id != tip:
        raise _conflict(st, tip)
    root = zarr.open_group(session.store, mode="a")
    for path in todo:
        _rewrite(root, base, path)
    for g in tails:   # date-axis tails: merge 1-date chunks, fold into blocks
        todo += dategrid.compact_group(cast(zarr.Group, root[g]), g)
    for t in tables:  # appended tables: merge the per-append chunks, fold into blocks
        todo += dategrid.compact_table(cast(zarr.Group, root[t]), t, CHUNK_ROWS)
    for g in unsorted:  # listings appended at the asset axis' end: back to sorted order
        assetgrid.restore_order(cast(zarr.Group, root[g]))
        todo.append(f"{g}/asset")
    name = tag or "compact-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        with commit_lock(st.location):
            snapshot_id = session.commit(
                f"compact: {len(todo)} arrays rechunked",
                metadata={"tag": name, "compaction": todo})
            st.repo.create_tag(name, snapshot_id)
    except icechunk.ConflictError as exc:
        raise _conflict(st, tip) from exc
    result.snapshot_id, result.tag, result.rewritten = snapshot_id, name, todo
    result.after = chunk_counts(st, snapshot_id)
    return result


def _conflict(st: CuratedStore, tip: Any) -> WriteConflictError:
    return WriteConflictError(
        "compaction must be based on the latest version of main",
        found=f"it read {tip} but another writer committed {st.tip()} first",
        fix="nothing was committed; run `quantlib data compact` again",
        file=st.location.join("curated"))
