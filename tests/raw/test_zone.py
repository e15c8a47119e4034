"""RawZone on a local folder: immutable objects, append-only manifest, idempotency."""

from __future__ import annotations

import hashlib
import os
import threading

import pandas as pd
import pytest

from quantlib.errors import StoreError
from quantlib.raw import MANIFEST_COLUMNS, RawZone


def _put(raw: RawZone, data: bytes, file: str = "kr/master.csv", fetch_id: str = "f1",
         **kw):
    return raw.put(data, source="ftp-kr", market="KR", file=file, fetch_id=fetch_id,
                   fmt="kr-ftp-csv", **kw)


def test_put_stores_bytes_unchanged_at_content_path(tmp_path):
    raw = RawZone(str(tmp_path))
    data = "표준코드\nKR1\n".encode("cp949")
    d = _put(raw, data, rows=1)
    sha = hashlib.sha256(data).hexdigest()
    assert d.sha256 == sha and d.path == f"raw/{sha[:2]}/{sha}" and d.bytes == len(data)
    assert (tmp_path / d.path).read_bytes() == data
    assert raw.get(sha) == data
    assert d.fetched_at.tz is not None and str(d.fetched_at.tz) == "UTC"
    m = raw.manifest()
    assert list(m.columns) == list(MANIFEST_COLUMNS)
    assert m.iloc[0][["fetch_id", "source", "file", "sha256", "rows", "status"]].tolist() == [
        "f1", "ftp-kr", "kr/master.csv", sha, 1, "fetched"]
    assert str(m["fetched_at"].dtype) == "datetime64[ns, UTC]"


def test_put_is_idempotent_and_never_rewrites(tmp_path):
    raw = RawZone(str(tmp_path))
    d1 = _put(raw, b"a\n1\n")
    obj = tmp_path / d1.path
    mtime = os.stat(obj).st_mtime_ns
    d2 = _put(raw, b"a\n1\n", fetch_id="f2")
    assert d2.path == d1.path and os.stat(obj).st_mtime_ns == mtime
    assert len(raw.manifest()) == 1
    # a fresh RawZone (another process) sees the same manifest and still does not duplicate
    again = RawZone(str(tmp_path))
    _put(again, b"a\n1\n", fetch_id="f3")
    assert len(again.manifest()) == 1
    assert again.has("ftp-kr", "kr/master.csv", d1.sha256)
    assert not again.has("ftp-kr", "kr/other.csv", d1.sha256)


def test_same_bytes_under_another_file_is_another_delivery(tmp_path):
    raw = RawZone(str(tmp_path))
    a = _put(raw, b"x\n", file="kr/prices/20250102.csv")
    b = _put(raw, b"x\n", file="kr/prices/20250103.csv")
    assert a.path == b.path
    assert sorted(raw.manifest()["file"]) == ["kr/prices/20250102.csv", "kr/prices/20250103.csv"]
    assert len(list((tmp_path / "raw").rglob("*"))) == 2   # one folder, one object


def test_manifest_is_append_only_one_file_per_record_call(tmp_path):
    raw = RawZone(str(tmp_path))
    ds = [_put(raw, f"v{i}\n".encode(), file=f"f{i}", record=False) for i in range(5)]
    assert raw.manifest().empty
    assert raw.record(ds[:3]) == 3
    first = sorted((tmp_path / "tables" / "manifest").glob("*.parquet"))
    before = {p: p.read_bytes() for p in first}
    assert raw.record(ds) == 2            # the three already there are not repeated
    files = sorted((tmp_path / "tables" / "manifest").glob("*.parquet"))
    assert len(files) == 2 and all(p.read_bytes() == before[p] for p in first)
    assert raw.record(ds) == 0 and len(list((tmp_path / "tables" / "manifest").iterdir())) == 2
    assert raw.record(ds[:1], status="standardized") == 1
    m = raw.manifest()
    assert m["status"].value_counts().to_dict() == {"fetched": 5, "standardized": 1}
    assert not list((tmp_path / "tables" / "manifest").glob(".tmp-*"))


def test_record_rejects_bad_status(tmp_path):
    raw = RawZone(str(tmp_path))
    d = _put(raw, b"x", record=False)
    with pytest.raises(StoreError, match="manifest status must be one of fetched"):
        raw.record([d], status="done")


def test_get_detects_corruption_and_missing_objects(tmp_path):
    raw = RawZone(str(tmp_path))
    d = _put(raw, b"good bytes")
    (tmp_path / d.path).write_bytes(b"evil bytes")
    with pytest.raises(StoreError, match="raw object must match its content hash"):
        raw.get(d.sha256)
    with pytest.raises(StoreError, match=r"raw zone must hold the requested delivery; found no "
                                         r"object \[file=raw/00/0{64}\]"):
        raw.get("0" * 64)


def test_truncated_object_is_rewritten_by_a_later_put(tmp_path):
    raw = RawZone(str(tmp_path))
    d = _put(raw, b"0123456789")
    (tmp_path / d.path).write_bytes(b"01234")          # a crash mid-write elsewhere
    _put(raw, b"0123456789", fetch_id="f2")
    assert raw.get(d.sha256) == b"0123456789"


def test_latest_deliveries_picks_newest_per_source_file(tmp_path):
    raw = RawZone(str(tmp_path))
    t = pd.Timestamp("2025-01-02", tz="UTC")
    _put(raw, b"v1", file="a", fetched_at=t)
    _put(raw, b"v2", file="a", fetched_at=t + pd.Timedelta(days=1))
    _put(raw, b"b1", file="b", fetched_at=t)
    raw.put(b"us", source="api-us", market="US", file="p", fetch_id="f", fmt="api-json")
    latest = raw.latest_deliveries("KR")
    assert [(d.file, raw.get(d.sha256)) for d in latest] == [("a", b"v2"), ("b", b"b1")]
    assert len(raw.latest_deliveries()) == 3


def test_concurrent_puts_from_threads(tmp_path):
    raw = RawZone(str(tmp_path))
    errors = []

    def work(i: int) -> None:
        try:
            for k in range(10):
                _put(raw, f"{k}".encode(), file=f"f{k}", fetch_id=f"t{i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    m = raw.manifest()
    assert len(m) == 10 and not m.duplicated(["source", "file", "sha256"]).any()


def test_deliveries_and_mappings_record_the_same_rows(tmp_path):
    # record() builds Delivery rows column by column (a fetch's per-file cost); a
    # mapping takes the row-by-row path: both must write the same manifest and index
    from quantlib.raw import Delivery

    t = pd.Timestamp("2024-01-02 21:20", tz="UTC")
    ds = [Delivery("api-us", "US", f"api/v1/prices?page={i}", "api-json", f"{i:064x}",
                   100 + i, None if i == 1 else 5000, t + pd.Timedelta(seconds=i), "f1",
                   f"raw/00/{i:064x}", known_at=None if i == 2 else t) for i in range(4)]
    a, b = RawZone(str(tmp_path / "a")), RawZone(str(tmp_path / "b"))
    assert a.record(ds) == 4
    assert b.record([{**d.manifest_row(), "known_at": d.known_at} for d in ds]) == 4
    pd.testing.assert_frame_equal(a.manifest(), b.manifest())
    pd.testing.assert_frame_equal(a.index.read("api-us"), b.index.read("api-us"))
    m = a.index.read("api-us")
    assert m["rows"].isna().tolist() == [False, True, False, False]
    assert m["known_at"].isna().tolist() == [False, False, True, False]
    assert a.record(ds, status="published") == 4 and a.record(ds) == 0
