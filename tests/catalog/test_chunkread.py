"""The direct chunk reader returns zarr's values cell for cell.

Real Icechunk repositories on disk; arrays with NaN cells, chunks never written (all
fill), chunks small enough to be stored inline in the manifest, partial last chunks on
both axes, a grown array (an append's resize), and each codec chain the reader decodes
itself (zstd, blosc, none) or leaves to zarr (sharding).
"""

from __future__ import annotations

import os

import icechunk
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from quantlib.errors import StoreError
from quantlib.store import CuratedStore
from quantlib.store.chunkread import COLUMN_BLOCK, ChunkedArray, _collect_refs

SHAPE, CHUNKS = (300, 1100), (128, 512)        # last chunk 44 x 76: partial on both axes


def _values(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.round(100 + np.cumsum(rng.normal(size=SHAPE), axis=0), 2)
    x[rng.random(SHAPE) < 0.25] = np.nan                 # cells without a bar
    x[:128, :512] = np.nan                               # a whole chunk of fill: not written
    x[128:256, 512:1024] = 1.0                           # constant: inlined in the manifest
    return x


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A repository with one array per codec chain, committed."""
    path = str(tmp_path_factory.mktemp("chunkread") / "curated")
    rep = icechunk.Repository.create(icechunk.local_filesystem_storage(path))
    session = rep.writable_session("main")
    x = _values()
    known = np.where(np.isnan(x), np.iinfo(np.int64).min,
                     np.arange(x.size, dtype=np.int64).reshape(SHAPE) * 1_000_003)
    for name, kw, data in [
        ("zstd", dict(compressors=[ZstdCodec(level=0)]), x),
        ("blosc", dict(compressors=[BloscCodec(cname="lz4", shuffle="shuffle")]), x),
        ("raw", dict(compressors=None), x),
        ("sharded", dict(compressors=[ZstdCodec(level=0)], shards=(256, 1024)), x),
        ("known", dict(compressors=[ZstdCodec(level=0)]), known),
    ]:
        arr = zarr.create_array(session.store, name=name, shape=SHAPE, chunks=CHUNKS,
                                dtype=data.dtype, fill_value=np.nan if data.dtype.kind == "f"
                                else 0, **kw)
        arr[:] = data
    snap = session.commit("arrays")
    return rep, snap, path


KEYS = [
    (slice(None), slice(None)),
    (slice(0, 1), slice(0, 1)),
    (slice(100, 300), slice(500, 1100)),
    (slice(-3, None), slice(None)),                      # a tail read
    (slice(127, 129), slice(511, 513)),                  # four chunks' corners
    (slice(250, 1000), slice(1090, 5000)),               # past the end
    (slice(None, None, 7), slice(3, 1000, 11)),
    (slice(None, None, -1), slice(1099, 0, -3)),
    (np.array([299, 0, 130]), slice(None)),
    (slice(None), np.array([1099, 512, 3, 3])),
    (5, slice(None)),
    (Ellipsis, 1023),
    (slice(10, 10), slice(None)),                        # empty
]


def _check(arr: ChunkedArray, ref: zarr.Array) -> None:
    """Every key of :data:`KEYS` reads what numpy picks out of zarr's whole read (zarr
    itself refuses negative steps)."""
    whole = ref[:]
    for key in KEYS:
        got, want = arr[key], whole[key]
        assert got.shape == want.shape and got.dtype == want.dtype, key
        np.testing.assert_array_equal(got, want, err_msg=str(key))


@pytest.mark.parametrize("name", ["zstd", "blosc", "raw", "known"])
@pytest.mark.parametrize("from_files", [True, False])
def test_direct_reads_equal_zarr_cell_for_cell(repo, name, from_files):
    rep, snap, path = repo
    store = rep.readonly_session(snapshot_id=snap).store
    arr = ChunkedArray(store, name, os.path.join(path, "chunks") if from_files else None)
    assert arr.direct
    _check(arr, zarr.open_array(store, path=name, mode="r"))


def test_the_reader_meets_missing_and_inline_chunks(repo):
    """The fixture exercises what a stored panel holds: a chunk never written (all
    NaN) and chunks small enough to be kept in the manifest."""
    from zarr.core.sync import sync

    rep, snap, _ = repo
    refs = sync(_collect_refs(rep.readonly_session(snapshot_id=snap).store, "zstd"))
    assert (0, 0) not in refs                      # all fill: never written
    assert refs[(1, 1)][0] == 3                    # constant: inline
    assert {r[0] for r in refs.values()} == {1, 3}
    assert len(refs) == 3 * 3 - 1


def test_sharded_arrays_are_left_to_zarr(repo):
    rep, snap, path = repo
    store = rep.readonly_session(snapshot_id=snap).store
    arr = ChunkedArray(store, "sharded", os.path.join(path, "chunks"))
    assert not arr.direct
    _check(arr, zarr.open_array(store, path="sharded", mode="r"))


def test_a_grown_array_reads_its_new_partial_chunk(repo):
    """An append resizes along the first axis and writes the new rows: the old partial
    last chunk is rewritten, a new one starts."""
    rep, snap, path = repo
    session = rep.writable_session("main")
    arr = zarr.open_array(session.store, path="zstd", mode="a")
    new = np.round(np.random.default_rng(1).normal(size=(100, SHAPE[1])), 2)
    arr.resize((SHAPE[0] + 100, SHAPE[1]))
    arr[SHAPE[0]:] = new
    grown = session.commit("append 100 rows")
    store = rep.readonly_session(snapshot_id=grown).store
    direct = ChunkedArray(store, "zstd", os.path.join(path, "chunks"))
    np.testing.assert_array_equal(direct[SHAPE[0]:], new)
    _check(direct, zarr.open_array(store, path="zstd", mode="r"))
    old = ChunkedArray(rep.readonly_session(snapshot_id=snap).store, "zstd",
                       os.path.join(path, "chunks"))
    np.testing.assert_array_equal(old[:], _values())           # the old version unchanged


def test_a_truncated_or_missing_chunk_file_is_reported(repo, tmp_path):
    import shutil

    _, snap, path = repo
    copy = str(tmp_path / "curated")
    shutil.copytree(path, copy)
    rep = icechunk.Repository.open(icechunk.local_filesystem_storage(copy))
    arr = ChunkedArray(rep.readonly_session(snapshot_id=snap).store, "zstd",
                       os.path.join(copy, "chunks"))
    from zarr.core.sync import sync

    chunk_id = sync(_collect_refs(arr.store, "zstd"))[(2, 2)][1]
    with open(os.path.join(copy, "chunks", chunk_id), "r+b") as f:
        f.truncate(10)
    with pytest.raises(StoreError, match="must hold the bytes its manifest records") as exc:
        arr[:]
    assert chunk_id in str(exc.value) and "10 of" in str(exc.value)
    os.remove(os.path.join(copy, "chunks", chunk_id))
    with pytest.raises(StoreError, match="must exist in the store") as exc:
        arr[:]
    assert chunk_id in str(exc.value) and "restore it or rebuild it" in str(exc.value)


def test_open_prices_reads_by_column_block_and_fuses_tail_reads(tmp_path, monkeypatch):
    """The store's panel: each 2-D variable one dask task per 512 assets; values equal
    xarray's own zarr read; a tail read reads only the last date chunk of each block."""
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2024-01-01", periods=300)
    assets = [f"US{i:04d}" for i in range(1100)]
    close = _values(3)
    prices = pd.DataFrame({
        "asset_id": np.repeat(assets, len(dates)), "date": np.tile(dates, len(assets)),
        "close": close.T.ravel()}).dropna()
    for var in ("open", "high", "low"):
        prices[var] = prices["close"]
    prices["volume"] = rng.integers(1, 1000, len(prices)).astype(float)
    prices["known_at"] = (prices["date"] + pd.Timedelta(hours=21)).dt.tz_localize("UTC")
    frame = pd.DataFrame({"asset_id": assets, "market": "US", "currency": "USD",
                          "sector": "x", "listed": dates[0], "delisted": pd.NaT})
    st = CuratedStore(str(tmp_path))
    st.commit({"assets": frame, "prices": prices}, message="prices")
    ds = st.open_prices("US")
    session = st.repo.readonly_session(snapshot_id=st.resolve(None))
    plain = xr.open_zarr(session.store, group="prices/US", consolidated=False, zarr_format=3)
    n = ds.sizes["date"]
    for var in ds.data_vars:
        assert ds[var].data.chunks == ((n,), (512, 512, 76)), var
        assert ds[var].dtype == plain[var].dtype
        np.testing.assert_array_equal(ds[var].values, plain[var].values, err_msg=var)
    assert COLUMN_BLOCK == 512

    reads: list[str] = []
    direct = ChunkedArray._chunk_bytes

    def counted(self, ref):
        reads.append(self.path)
        return direct(self, ref)

    monkeypatch.setattr(ChunkedArray, "_chunk_bytes", counted)
    tail = ds["close"].isel(date=slice(-2, None)).values
    np.testing.assert_array_equal(tail, plain["close"].values[-2:])
    stored = plain["close"].values[(n - 1) // 128 * 128:]      # the last date chunk row
    written = [c for c in range(3) if np.isfinite(stored[:, c * 512:(c + 1) * 512]).any()]
    assert len(written) >= 2 and reads == ["prices/US/close"] * len(written)
