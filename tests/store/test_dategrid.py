"""The date-axis chunk policy (quantlib.store.dategrid) on a real Icechunk repository:
appends add 1-date chunks and rewrite nothing stored; compaction merges and folds the
tail, leaves history chunks' references alone, deletes stale keys, keeps every value and
every previous version readable."""

from __future__ import annotations

import icechunk
import numpy as np
import xarray as xr
import zarr

from quantlib.store import dategrid


def _repo(path) -> icechunk.Repository:
    return icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))


def _values(n: int, m: int = 3) -> np.ndarray:
    return np.arange(n * m, dtype="float64").reshape(n, m) / 7.0


def _changed(repo: icechunk.Repository, a: str, b: str) -> list[str]:
    diff = repo.diff(from_snapshot_id=a, to_snapshot_id=b)
    return sorted(f"{p.strip('/')}/" + "/".join(map(str, c))
                  for p, chunks in diff.updated_chunks.items() for c in chunks)


def _keys(session: icechunk.Session, prefix: str) -> set[str]:
    async def go() -> list[str]:
        return [k async for k in session.store.list_prefix(prefix)]
    from zarr.core.sync import sync
    return {k for k in sync(go()) if "/c/" in k}


def _build(repo: icechunk.Repository, n: int) -> str:
    s = repo.writable_session("main")
    ds = xr.Dataset({"close": (("date", "asset"), _values(n))},
                    coords={"date": np.arange(n, dtype="int64")})
    ds.to_zarr(s.store, group="p", mode="w", consolidated=False, zarr_format=3,
               encoding={"close": {"chunks": (128, 512)}})
    dategrid.seal(zarr.open_group(s.store, path="p", mode="a"))
    return s.commit("build")


def _append(repo: icechunk.Repository, n_old: int, k: int) -> str:
    s = repo.writable_session("main")
    g = zarr.open_group(s.store, path="p", mode="a")
    close = dategrid.resize(g["close"], (n_old + k, 3))
    close[n_old:] = _values(n_old + k)[n_old:]
    date = dategrid.resize(g["date"], (n_old + k,))
    date[n_old:] = np.arange(n_old, n_old + k)
    return s.commit(f"append {k}")


def _compact(repo: icechunk.Repository) -> tuple[str, list[str]]:
    s = repo.writable_session("main")
    done = dategrid.compact_group(zarr.open_group(s.store, path="p", mode="a"), "p")
    return s.commit("compact"), done


def _close(repo: icechunk.Repository, snap: str) -> xr.DataArray:
    return xr.open_zarr(repo.readonly_session(snapshot_id=snap).store, group="p",
                        consolidated=False)["close"]


def test_appends_write_only_new_one_date_chunks(tmp_path):
    repo = _repo(tmp_path / "r")
    built = _build(repo, 300)
    # sealed: full blocks, then the rest (44) in chunks of at most TAIL = 16 dates
    assert _close(repo, built).chunks[0] == (128, 128, 16, 16, 12)
    snap = _append(repo, 300, 1)
    assert _changed(repo, built, snap) == ["p/close/5/0", "p/date/1"]
    snap2 = _append(repo, 301, 2)
    assert _changed(repo, snap, snap2) == ["p/close/6/0", "p/close/7/0", "p/date/2",
                                           "p/date/3"]
    close = _close(repo, snap2)
    assert close.chunks[0] == (128, 128, 16, 16, 12, 1, 1, 1)
    np.testing.assert_array_equal(close.values, _values(303))
    np.testing.assert_array_equal(_close(repo, built).values, _values(300))


def test_compaction_merges_then_folds_and_keeps_history(tmp_path):
    repo = _repo(tmp_path / "r")
    _build(repo, 250)                                     # 128 + 7 x 16 + 10
    n = 250
    for _ in range(3):
        before = _append(repo, n, 1)
        n += 1
    merged, done = _compact(repo)
    assert sorted(done) == ["p/close", "p/date"]
    assert _close(repo, merged).chunks[0] == (128, *[16] * 7, 10, 3)
    # the merge rewrote the 3 one-date chunks into one (chunk 9; keys 10, 11 deleted);
    # the history block and the sealed 16-date chunks untouched
    assert _changed(repo, before, merged) == ["p/close/10/0", "p/close/11/0", "p/close/9/0",
                                              "p/date/0", "p/date/1", "p/date/2",
                                              "p/date/3"]
    s = repo.readonly_session(snapshot_id=merged)
    assert _keys(s, "p/close/") == {f"p/close/c/{i}/0" for i in range(10)}
    np.testing.assert_array_equal(_close(repo, merged).values, _values(n))
    np.testing.assert_array_equal(_close(repo, before).values, _values(n))  # old version
    for _ in range(5):
        last = _append(repo, n, 1)
        n += 1
    folded, _ = _compact(repo)                            # tail 122+3+5 = 130 >= 128
    assert _close(repo, folded).chunks[0] == (128, 128, 2)
    changed = _changed(repo, last, folded)
    assert "p/close/0/0" not in changed and "p/close/1/0" in changed
    s = repo.readonly_session(snapshot_id=folded)
    assert _keys(s, "p/close/") == {"p/close/c/0/0", "p/close/c/1/0", "p/close/c/2/0"}
    np.testing.assert_array_equal(_close(repo, folded).values, _values(n))
    np.testing.assert_array_equal(
        xr.open_zarr(s.store, group="p", consolidated=False)["date"].values, np.arange(n))
    assert not dategrid.pending(zarr.open_group(s.store, path="p", mode="r"))


def test_a_regular_grid_switches_on_first_append(tmp_path):
    """A panel written before the date grid (regular 128 x 512, last block partly
    filled): its first append sizes that block exactly, once, then adds 1-date chunks."""
    repo = _repo(tmp_path / "r")
    s = repo.writable_session("main")
    ds = xr.Dataset({"close": (("date", "asset"), _values(200))},
                    coords={"date": np.arange(200, dtype="int64")})
    ds.to_zarr(s.store, group="p", mode="w", consolidated=False, zarr_format=3,
               encoding={"close": {"chunks": (128, 512)}})
    built = s.commit("regular build")
    snap = _append(repo, 200, 2)
    assert _close(repo, snap).chunks[0] == (128, 72, 1, 1)
    assert _changed(repo, built, snap)[0] == "p/close/1/0"
    assert "p/close/0/0" not in _changed(repo, built, snap)
    np.testing.assert_array_equal(_close(repo, snap).values, _values(202))


def test_direct_chunk_reader_reads_the_date_grid(tmp_path):
    """quantlib.store.chunkread.ChunkedArray (chunk files read and decoded directly)
    gives zarr's values on a grid of blocks, a merged tail and 1-date chunks."""
    from quantlib.store.chunkread import ChunkedArray

    repo = _repo(tmp_path / "r")
    _build(repo, 250)
    n = 250
    for k in (1, 1, 2):
        snap = _append(repo, n, k)
        n += k
    _compact(repo)
    snap = _append(repo, n, 2)
    n += 2
    store = repo.readonly_session(snapshot_id=snap).store
    assert _close(repo, snap).chunks[0] == (128, *[16] * 7, 10, 4, 1, 1)
    for chunk_dir in (None, str(tmp_path / "r" / "chunks")):
        arr = ChunkedArray(store, "p/close", chunk_dir)
        assert arr.direct
        np.testing.assert_array_equal(arr[:, :], _values(n))
        np.testing.assert_array_equal(arr[120:253, 1:3], _values(n)[120:253, 1:3])


def test_an_empty_panel_is_sealed_later_and_grows_on_append():
    """A panel written with no date (a one-currency store's fx) keeps its grid until its
    first append, which gives each new date its own chunk (sealing [0] used to raise)."""
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    group.create_array("rate", shape=(0, 2), chunks=(128, 512), dtype="f8",
                       dimension_names=("date", "currency"))
    group.create_array("date", shape=(0,), chunks=(1,), dtype="i8", dimension_names=("date",))
    dategrid.seal(group)
    assert not dategrid.is_rectilinear(group["rate"])
    rate = dategrid.resize(group["rate"], (2, 2))
    rate[:] = [[1.0, 2.0], [3.0, 4.0]]
    assert rate.read_chunk_sizes[0] == (1, 1)
    assert group["rate"][:].tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_table_appends_add_one_chunk_each_and_compaction_merges_them():
    """A table append (statements) writes its rows as one new chunk per column and
    rewrites no stored chunk; compact_table merges the per-append chunks (and folds them
    into full blocks) keeping every row."""
    import pandas as pd

    from quantlib.store.tables import append_table, read_table_group, write_table

    root = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    first = pd.DataFrame({"v": np.arange(5.0), "s": list("abcde")})
    write_table(root, "t", first)
    parts = [first]
    for k, size in enumerate((3, 2, 4)):
        part = pd.DataFrame({"v": np.arange(size) + 10.0 * (k + 1),
                             "s": [None if i == 0 else f"x{i}" for i in range(size)]})
        before = {key: bytes(v.to_bytes()) for key, v in root.store._store_dict.items()
                  if "/c/" in key}
        append_table(root, "t", part)
        after = root.store._store_dict
        if k:  # the first append switches the regular grid (its partly filled chunk once)
            assert all(bytes(after[key].to_bytes()) == b for key, b in before.items())
        parts.append(part)
    whole = pd.concat(parts, ignore_index=True)
    assert root["t"]["v"].read_chunk_sizes[0] == (5, 3, 2, 4)
    pd.testing.assert_frame_equal(read_table_group(root, "t"), whole, check_dtype=False)
    assert dategrid.table_pending(root["t"], 8)
    dategrid.compact_table(root["t"], "t", 8)
    assert root["t"]["v"].read_chunk_sizes[0] == (8, 6)
    assert not dategrid.table_pending(root["t"], 8)
    pd.testing.assert_frame_equal(read_table_group(root, "t"), whole, check_dtype=False)
