"""The manifest index: per-source, compacted, migrated from an older store's log."""

from __future__ import annotations

import threading

import pandas as pd

from quantlib.raw import RawZone
from quantlib.raw.index import COMPACT_AT, INDEX_DIR


def _put(raw: RawZone, data: bytes, source: str = "ftp-kr", file: str = "kr/a.csv", **kw):
    return raw.put(data, source=source, market="KR", file=file, fetch_id="f1",
                   fmt="kr-ftp-csv", **kw)


def _index_files(tmp_path, source: str) -> list:
    return sorted((tmp_path / INDEX_DIR / source).glob("*.parquet"))


def test_index_holds_the_log_rows_split_by_source(tmp_path):
    raw = RawZone(str(tmp_path))
    a = _put(raw, b"1")
    b = _put(raw, b"2", source="api-kr", file="api/v1/fundamentals?market=KR&page=1",
             known_at=pd.Timestamp("2024-01-02 09:00", tz="UTC"))
    raw.record([a], status="published")
    kr, api = raw.index.read("ftp-kr"), raw.index.read("api-kr")
    assert sorted(kr["status"]) == ["fetched", "published"] and set(kr["sha256"]) == {a.sha256}
    assert api["sha256"].tolist() == [b.sha256]
    assert str(api["known_at"].iloc[0]) == "2024-01-02 09:00:00+00:00"
    assert kr["known_at"].isna().all()
    # the same rows as the log (the log has no known_at)
    log = raw.manifest().sort_values(["source", "status"]).reset_index(drop=True)
    both = pd.concat([kr, api]).sort_values(["source", "status"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(both.drop(columns="known_at"), log)
    assert raw.index.sources() == ["api-kr", "ftp-kr"]
    # another process reads the same thing
    again = RawZone(str(tmp_path))
    assert again.has("ftp-kr", "kr/a.csv", a.sha256)
    assert not again.has("ftp-kr", "kr/a.csv", b.sha256)
    assert [d.file for d in again.unpublished([a, b])] == [b.file]
    assert again.known("api-kr")[(b.file, b.sha256)].known_at == b.known_at


def test_index_is_compacted_and_reads_stay_small(tmp_path):
    raw = RawZone(str(tmp_path))
    for k in range(3 * COMPACT_AT):
        _put(raw, f"day {k}".encode(), file=f"kr/prices/2024{k:04d}.csv")
    assert len(_index_files(tmp_path, "ftp-kr")) == 3 * COMPACT_AT
    assert len(raw.index.read("ftp-kr")) == 3 * COMPACT_AT
    files = _index_files(tmp_path, "ftp-kr")
    assert len(files) == 1 and files[0].name.endswith("-base.parquet")
    # the log is untouched: one file per record call
    assert len(list((tmp_path / "tables" / "manifest").glob("*.parquet"))) == 3 * COMPACT_AT
    assert len(RawZone(str(tmp_path)).index.read("ftp-kr")) == 3 * COMPACT_AT


def test_concurrent_readers_and_compaction_lose_nothing(tmp_path):
    raw = RawZone(str(tmp_path))
    for k in range(2 * COMPACT_AT):
        _put(raw, f"x{k}".encode(), file=f"kr/prices/{k}.csv")
    seen, errors = [], []

    def read() -> None:
        try:
            seen.append(len(RawZone(str(tmp_path)).index.read("ftp-kr")))
        except Exception as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and seen == [2 * COMPACT_AT] * 6


def test_a_store_written_before_the_index_is_migrated_on_first_read(tmp_path):
    raw = RawZone(str(tmp_path))
    a = _put(raw, b"old")
    raw.record([a], status="published")
    # an older store: the log only
    import shutil
    shutil.rmtree(tmp_path / INDEX_DIR)
    old = RawZone(str(tmp_path))
    assert old.has("ftp-kr", "kr/a.csv", a.sha256)
    assert old.unpublished([a]) == []
    assert (tmp_path / INDEX_DIR / "_migrated").exists()
    # once migrated, the log is not read again
    newer = RawZone(str(tmp_path))
    newer.manifest = None  # type: ignore[assignment,method-assign]
    b = _put(newer, b"new", file="kr/b.csv")
    assert sorted(newer.index.read("ftp-kr")["file"]) == ["kr/a.csv", "kr/a.csv", "kr/b.csv"]
    assert newer.known("ftp-kr")[("kr/b.csv", b.sha256)].fetch_id == "f1"


def test_high_water_counts_published_deliveries_only(tmp_path):
    raw = RawZone(str(tmp_path))
    t1, t2 = (pd.Timestamp(x, tz="UTC") for x in ("2024-01-02 21:20", "2024-01-03 21:20"))
    p1 = _put(raw, b"p1", source="api-us", file="api/v1/prices?market=US&page=1", known_at=t1)
    _put(raw, b"p2", source="api-us", file="api/v1/prices?market=US&updated_since=x&page=1",
         known_at=t2)
    f = _put(raw, b"f", source="api-us", file="api/v1/fundamentals?market=US&page=1",
             known_at=t2)
    raw.record([p1, f], status="published")
    assert raw.high_water("api-us", "api/v1/prices?") == t1      # p2 not published (yet)
    assert raw.high_water("api-us", "api/v1/fundamentals?") == t2
    assert raw.high_water("api-us", "api/v1/corporate_actions?") is None


def test_published_map_keeps_repeating_queries_and_drops_a_polled_endpoints_past(tmp_path):
    """The last-published map (what a re-delivered query is compared with): a query's
    pages replace its earlier pages; a polled query (updated_since, never asked twice)
    drops every earlier query of its endpoint, other endpoints stay."""
    raw = RawZone(str(tmp_path))
    full = [_put(raw, f"p{i}".encode(), source="api-us",
                 file=f"api/v1/prices?market=US&start=2024-01-02&page={i}") for i in (1, 2)]
    sec = _put(raw, b"s", source="api-us", file="api/v1/securities?market=US&page=1")
    raw.record([*full, sec], status="published")
    assert set(raw.index.published("api-us")) == {d.file for d in [*full, sec]}
    poll = _put(raw, b"q", source="api-us",
                file="api/v1/prices?market=US&updated_since=2024-01-03T00:00:00.000Z&page=1")
    raw.record([poll], status="published")
    assert raw.index.published("api-us") == {sec.file: sec.sha256, poll.file: poll.sha256}
    again = _put(raw, b"s2", source="api-us", file="api/v1/securities?market=US&page=1")
    raw.record([again], status="published")
    assert raw.index.published("api-us")[sec.file] == again.sha256
