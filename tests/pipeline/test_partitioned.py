"""The partitioned full build (market x time partition Dask tasks) against the one-frame
build: same panels and tables cell for cell, threaded and on a real 2-process
LocalCluster; the jump check across partition boundaries; a killed build commits
nothing and the next one completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from quantlib.errors import SnapshotNotFoundError
from quantlib.pipeline import refresh
from quantlib.pipeline.partitions import PartitionResult, boundary_jumps
from quantlib.store import WRITE_DELAY_ENV, CuratedStore

TABLES = ("assets", "symbols", "corporate_actions", "statements", "fx")


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory, sandbox):
    """The one-frame full build of the module sandbox (the reference)."""
    store = str(tmp_path_factory.mktemp("reference") / "store")
    refresh(store, connection=sandbox.connection(), partitioned=False)
    return CuratedStore(store)


def _same_store(a: CuratedStore, b: CuratedStore) -> None:
    assert a.markets() == b.markets() == ["EU", "KR", "US"]
    for m in a.markets():
        x, y = a.open_prices(m).load(), b.open_prices(m).load()
        xr.testing.assert_identical(x.drop_attrs(), y.drop_attrs())
        assert np.isfinite(y["returns"].values).sum() > 1000   # real data compared
    for name in TABLES:
        pd.testing.assert_frame_equal(a.read_table(name), b.read_table(name))


@pytest.mark.slow
def test_partitioned_build_equals_one_frame_build(tmp_path, sandbox, reference_store):
    store = str(tmp_path / "store")
    # ~2,000 bars a partition: partitions straddle the 128-session chunks and the
    # market's first bars, so boundaries and returns seeds are exercised
    result = refresh(store, connection=sandbox.connection(), partitioned=True,
                     partition_rows=2000)
    assert result.mode == "full"
    assert result.rows["partitions"] >= 15
    _same_store(reference_store, CuratedStore(store))
    assert len(CuratedStore(store).snapshots()) == 1    # one commit
    tmp = CuratedStore(store).location.filesystem()
    assert not tmp.exists(CuratedStore(store).location.fs_path("tmp", "builds",
                                                                result.refresh_id))


@pytest.mark.slow
def test_partitioned_build_on_local_cluster(tmp_path, sandbox, reference_store):
    from distributed import Client, LocalCluster, get_task_stream

    store = str(tmp_path / "store")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as ts:
            result = refresh(store, connection=sandbox.connection(), client=client,
                             partitioned=True, partition_rows=3000)
        tasks = [t for t in ts.data if str(t["key"]).find(result.refresh_id) >= 0
                 or "chunk" in str(t["key"])]
    kinds = {k for t in tasks for k in ("fetch", "reference", "partition", "chunk")
             if k in str(t["key"])}
    assert kinds == {"fetch", "reference", "partition", "chunk"}
    assert len({t["worker"] for t in tasks}) == 2      # both worker processes worked
    _same_store(reference_store, CuratedStore(store))


def _part(i: int, first: list, last: list) -> PartitionResult:
    def frame(rows: list) -> pd.DataFrame:
        return pd.DataFrame({"asset_id": [r[0] for r in rows],
                             "date": pd.to_datetime([r[1] for r in rows]),
                             "close": [r[2] for r in rows], "source": "s", "file": f"f{i}",
                             "row": [k + 1 for k in range(len(rows))]})
    return PartitionResult("KR", i, f"p{i}", None, None, frame(first), frame(last),
                           frame(last)[["asset_id", "date", "close"]], None, [])  # type: ignore[arg-type]


def test_boundary_jumps_check_first_bar_against_previous_partition():
    parts = [_part(0, [("A", "2024-01-02", 100.0), ("B", "2024-01-02", 10.0)],
                   [("A", "2024-01-31", 100.0), ("B", "2024-01-31", 10.0)]),
             # A jumps +150 % at the boundary; B's move is explained by a split
             _part(1, [("A", "2024-02-01", 250.0), ("B", "2024-02-01", 30.0)],
                   [("A", "2024-02-29", 250.0), ("B", "2024-02-29", 30.0)]),
             # C first appears here: nothing before, nothing to check
             _part(2, [("A", "2024-03-01", 251.0), ("C", "2024-03-01", 5.0)],
                   [("A", "2024-03-29", 251.0), ("C", "2024-03-29", 5.0)])]
    actions = pd.DataFrame({"asset_id": ["B"], "ex_date": pd.to_datetime(["2024-02-01"])})
    q, dropped = boundary_jumps(parts, actions, 0.5, "KR")
    assert q[["asset_id", "file", "check", "severity"]].values.tolist() == \
        [["A", "f1", "unexplained_jump", "bad"]]
    assert "+150.0%" in q["reason"].iloc[0]
    assert dropped.values.tolist() == [["A", pd.Timestamp("2024-02-01")]]


@pytest.mark.slow
def test_killed_partitioned_build_commits_nothing_and_rerun_completes(
        tmp_path, sandbox, reference_store, monkeypatch):
    store = str(tmp_path / "store")
    conn = {k: getattr(sandbox.connection(), k) for k in
            ("ftp_host", "ftp_port", "ftp_user", "ftp_password", "http_url", "api_key")}
    code = ("import json, sys; from quantlib.sources.connection import Connection; "
            "from quantlib.pipeline import refresh; "
            "refresh(sys.argv[1], connection=Connection(**json.loads(sys.argv[2])), "
            "partitioned=True, partition_rows=4000)")
    proc = subprocess.Popen([sys.executable, "-c", code, store, json.dumps(conn)],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, WRITE_DELAY_ENV: "30"})
    try:
        deadline = time.monotonic() + 240
        assert proc.stderr is not None
        for line in proc.stderr:   # killed inside the commit, after its first write
            if "quantlib-store: wrote" in line or time.monotonic() > deadline:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    st = CuratedStore(store)
    assert st.snapshots().empty
    with pytest.raises(SnapshotNotFoundError):
        st.resolve(None)
    # the killed build's spill is still there (nobody ran its cleanup) ...
    fs, builds = st.location.open_fs("tmp", "builds")
    killed = [p.rsplit("/", 1)[-1] for p in fs.ls(builds, detail=False)]
    assert len(killed) == 1 and fs.glob(f"{builds}/{killed[0]}/*/*.arrow")
    # ... and the next build removes it (it stopped beating; seconds ago, so the
    # staleness limit is lowered here; tests/pipeline/test_spill.py covers live builds)
    monkeypatch.setattr("quantlib.pipeline.spill.STALE_S", 0.0)
    result = refresh(store, connection=sandbox.connection(), partitioned=True,
                     partition_rows=4000)
    assert killed[0] in result.note
    assert not fs.exists(builds) or fs.ls(builds, detail=False) == []
    _same_store(reference_store, CuratedStore(store))


@pytest.mark.slow
def test_first_build_is_partitioned_by_default_above_the_size_threshold(
        tmp_path, sandbox, reference_store, monkeypatch):
    # the module sandbox (~46k bars) is under ONE_FRAME_MAX_ROWS: one frame per market,
    # built from the deliveries the size check fetched (not fetched twice)
    small = refresh(str(tmp_path / "small"), connection=sandbox.connection())
    assert small.mode == "full" and "partitions" not in small.rows
    assert small.rows["fetch"] == small.rows["standardize"] > 40_000
    _same_store(reference_store, CuratedStore(str(tmp_path / "small")))
    monkeypatch.setattr("quantlib.pipeline.build.ONE_FRAME_MAX_ROWS", 10_000)
    big = refresh(str(tmp_path / "big"), connection=sandbox.connection(),
                  partition_rows=20_000)
    assert big.rows["partitions"] >= 3
    _same_store(reference_store, CuratedStore(str(tmp_path / "big")))


@pytest.mark.slow
def test_partitioned_statements_by_parts_equal_one_frame_build(
        tmp_path, sandbox, reference_store, monkeypatch):
    """Statements fetched in pages of 150 rows, read in page groups of ~400 rows and
    checked in asset buckets of ~400 (several of each per market: an asset's filings and
    restatements straddle pages and groups): the stored table and its Parquet export
    equal the one-frame build's (5,000-row pages) row for row."""
    import dataclasses

    import pyarrow.parquet as pq

    from quantlib.pipeline import build
    from quantlib.sources import SOURCES
    from quantlib.sources.http import HttpApiSource
    from quantlib.store import sql
    from quantlib.store.parquet import statements_files

    for name, source in SOURCES.items():
        if isinstance(source, HttpApiSource) and "fundamentals" in source.endpoints:
            monkeypatch.setitem(SOURCES, name, dataclasses.replace(source, page_size=150))
    checked: list[str] = []
    check = build.check_statements

    def counting(market, *args, **kwargs):
        checked.append(market)
        return check(market, *args, **kwargs)

    monkeypatch.setattr(build, "STATEMENT_ROWS", 400)
    monkeypatch.setattr(build, "check_statements", counting)
    # the one-frame build of the same pages (the stored rows follow the page order)
    one = str(tmp_path / "one")
    refresh(one, connection=sandbox.connection(), partitioned=False)
    store = str(tmp_path / "store")
    refresh(store, connection=sandbox.connection(), partitioned=True, partition_rows=20_000)
    st = CuratedStore(store)
    _same_store(CuratedStore(one), st)
    table = st.read_table("statements")
    key = ["asset_id", "field", "period_end", "known_at"]
    pd.testing.assert_frame_equal(   # the same rows as with 5,000-row pages
        table.sort_values(key, ignore_index=True),
        reference_store.read_table("statements").sort_values(key, ignore_index=True))
    assert set(checked) == {"KR", "US", "EU"} and \
        min(checked.count(m) for m in ("KR", "US", "EU")) >= 2
    restated = table.groupby(["asset_id", "field", "period_end"]).size()
    assert (restated > 1).sum() > 10                      # restatements were compared
    files = statements_files(st)          # the export, written by parts
    assert len(files) == 1
    pd.testing.assert_frame_equal(pq.read_table(files[0]).to_pandas(), table)
    assert int(sql("select count(*) as n from statements", store=store)["n"][0]) == \
        len(table) > 1000
