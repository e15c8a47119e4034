"""A large catch-up through the partitioned path, against real vendor servers.

The store is built at ``E1``; the sandbox's vendor clock then moves months on
(``Sandbox.advance``: new daily KR files, EU month files re-delivered, the US API
serving the new range and ``updated_since``, corrections of bars stored before ``E1``
and corporate actions announced after their ex dates). The catch-up refresh run by
market x time partition must equal, cell for cell, the one-frame incremental refresh
and a full build of the same vendor data; it commits once, loses no correction or late
action (data and manifest), and a catch-up killed inside its commit leaves the previous
version readable while the next refresh completes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from quantlib.pipeline import refresh
from quantlib.raw import RawZone
from quantlib.sandbox import generate, start_sandbox
from quantlib.store import WRITE_DELAY_ENV, CuratedStore

pytestmark = pytest.mark.slow

# US over the API: 60 assets make its catch-up three 5,000-row pages (three partitions)
ARGS = {"n_assets": {"KR": 25, "US": 60, "EU": 25}, "years": 1.5, "seed": 5,
        "start": "2024-01-02"}
E2 = pd.Timestamp("2025-06-30")
TABLES = ("assets", "symbols", "corporate_actions", "statements")
MARKET = {"KR": "KR", "US": "US", "DE": "EU"}


def _e1(u2) -> pd.Timestamp:
    """A clock some eight months before ``E2`` with a correction dated before it and
    published after it: the catch-up must correct a stored bar."""
    fix = u2.price_corrections
    lag = fix["known_at"].dt.tz_localize(None) - fix["date"]
    late = fix[(fix["date"] >= E2 - pd.Timedelta(days=250))
               & (fix["date"] <= E2 - pd.Timedelta(days=120)) & (lag >= pd.Timedelta(days=1.5))]
    return late["date"].min() + pd.Timedelta(days=1)


def _file_of(asset: str, date: pd.Timestamp) -> str | None:
    """The FTP file that delivers a bar (``None``: the API)."""
    return {"KR": f"kr/prices/{date:%Y%m%d}.csv", "DE": f"eu/prices/prices_{date:%Y%m}.csv"
            }.get(asset[:2])


@pytest.fixture(scope="module")
def caught_up(tmp_path_factory):
    """Stores at ``E1`` caught up to ``E2`` three ways, plus the sandbox's truth."""
    root = tmp_path_factory.mktemp("catchup")
    u2 = generate(end=str(E2.date()), **ARGS)
    e1 = _e1(u2)
    with start_sandbox(end=str(e1.date()), write_state=False, rate_limit=(1000.0, 1000.0),
                       **ARGS) as sb:
        base = str(root / "base")
        first = refresh(base, connection=sb.connection(), partitioned=False)
        assert first.mode == "full"
        stores = {k: str(root / k) for k in ("parts", "one", "killed", "cluster")}
        for path in stores.values():
            shutil.copytree(base, path)
        sb.advance(E2)
        results = {
            "parts": refresh(stores["parts"], connection=sb.connection(), partitioned=True,
                             partition_rows=600),
            "one": refresh(stores["one"], connection=sb.connection(), partitioned=False),
            "full": refresh(str(root / "full"), connection=sb.connection(),
                            partitioned=False)}
        stores["full"] = str(root / "full")
        yield {"stores": stores, "results": results, "e1": e1, "truth": sb.universe,
               "first": first, "sandbox": sb}


def _same(a: CuratedStore, b: CuratedStore) -> None:
    """Same panels and tables, every row (statements of assets listed during the
    catch-up, published before their listing, included: the vendor's feed serves them
    from the listing on and ``updated_since`` polls get them then)."""
    assert a.markets() == b.markets() == ["EU", "KR", "US"]
    for m in a.markets():
        x, y = a.open_prices(m).load(), b.open_prices(m).load()
        xr.testing.assert_equal(x.drop_attrs(), y.drop_attrs())
        assert np.isfinite(y["returns"].values).sum() > 1000    # real data compared
    xr.testing.assert_equal(a.open_fx().load().drop_attrs(), b.open_fx().load().drop_attrs())
    for name in TABLES:   # the same rows (a delta appends them in another order)
        x, y = a.read_table(name), b.read_table(name)
        assert len(x) > 0
        pd.testing.assert_frame_equal(
            x.sort_values(list(x.columns), kind="stable").reset_index(drop=True),
            y.sort_values(list(x.columns), kind="stable").reset_index(drop=True))


def _listed_during(store: CuratedStore, after: pd.Timestamp) -> pd.DataFrame:
    """Statements of assets listed after ``after`` that were published before their
    listing (the rows an ``updated_since`` poll used to miss)."""
    st = store.read_table("statements")
    listed = store.read_table("assets").set_index("asset_id")["listed"]
    at = listed.reindex(st["asset_id"]).to_numpy()
    return st[(at > np.datetime64(after)) & (st["known_at"].dt.tz_localize(None).to_numpy()
                                              < at)]


def test_catch_up_runs_partitioned_and_commits_once(caught_up):
    r = caught_up["results"]["parts"]
    assert r.mode == "incremental" and r.snapshot_id
    assert r.rows["partitions"] >= 10                 # market x time partitions ran
    assert r.rows["rewrites"] == 0 and r.rows["appended_dates"] > 150
    st = CuratedStore(caught_up["stores"]["parts"])
    assert len(st.snapshots()) == 2                   # the first build + ONE catch-up commit
    fs, builds = st.location.open_fs("tmp", "builds")
    assert not fs.exists(builds) or fs.ls(builds, detail=False) == []   # spill removed
    one = caught_up["results"]["one"]
    assert "partitions" not in one.rows and one.rows["standardize"] > 15_000
    # the EU month file of E1, re-delivered whole: its rows published then are not read
    assert one.rows["held"] > 0 and one.rows["standardize"] + one.rows["held"] > 20_000


def _date_edges(store: CuratedStore) -> dict[str, list[int]]:
    """Chunk edges along ``date`` of every 2-D panel array (by ``market/variable``)."""
    import zarr

    from quantlib.store import dategrid

    root = zarr.open_group(store.repo.readonly_session(snapshot_id=store.resolve()).store,
                           mode="r")
    return {f"{m}/{name}": dategrid.date_edges(arr) for m in [*store.markets(), "fx"]
            for name, arr in dategrid.date_arrays(root[m if m == "fx" else f"prices/{m}"])
            if arr.ndim == 2}


def test_catch_up_appends_whole_blocks_like_a_full_build(caught_up):
    """The catch-up writes its dates in the full build's date grid: whole blocks of
    128 dates, the partly filled last block in chunks of <= 16; nothing to compact."""
    import zarr

    from quantlib.store import dategrid

    r = caught_up["results"]["parts"]
    parts, full = (CuratedStore(caught_up["stores"][k]) for k in ("parts", "full"))
    first = CuratedStore(caught_up["stores"]["parts"])
    grown, built = _date_edges(parts), _date_edges(full)
    assert len(grown) == 3 * 9 + 2 and grown == built
    for key, edges in grown.items():
        n = sum(edges)
        assert edges == dategrid.sealed_edges(n), key
        assert n > 2 * dategrid.BLOCK and n % dategrid.BLOCK, key   # several blocks + a tail
    root = zarr.open_group(parts.repo.readonly_session(snapshot_id=parts.resolve()).store,
                           mode="r")
    assert not any(dategrid.pending(root[f"prices/{m}"]) for m in parts.markets())
    # the stored rows it rewrote (the tail, the corrected ones) and the chunks it wrote
    assert r.rows["block_chunks"] >= 3 * 2 and r.rows["region_cells"] > 0
    before = first.open_prices("KR", caught_up["first"].snapshot_id)
    assert r.rows["appended_dates"] >= sum(grown[f"{m}/close"][-1] for m in ("KR",)) \
        and len(before["date"]) < sum(grown["KR/close"]) - dategrid.BLOCK


def test_catch_up_equals_one_frame_refresh_and_full_build(caught_up):
    stores = {k: CuratedStore(v) for k, v in caught_up["stores"].items()}
    _same(stores["parts"], stores["one"])
    _same(stores["parts"], stores["full"])
    assert len(_listed_during(stores["full"], caught_up["e1"])) > 0   # compared, not left out


def test_catch_up_keeps_corrections_and_late_actions(caught_up):
    e1, u = caught_up["e1"], caught_up["truth"]
    st = CuratedStore(caught_up["stores"]["parts"])
    first = caught_up["first"].snapshot_id
    after = pd.Timestamp(e1).tz_localize("UTC")
    fix = u.price_corrections
    fix = fix[(fix["date"] < e1) & (fix["known_at"] >= after)]
    assert len(fix)
    for row in fix.itertuples():   # the stored bar before, the corrected one now
        m = MARKET[row.asset_id[:2]]
        now = float(st.open_prices(m).sel(asset=row.asset_id, date=row.date)["close"])
        was = float(st.open_prices(m, first).sel(asset=row.asset_id, date=row.date)["close"])
        assert now == pytest.approx(row.close) and now != was
    # the re-delivered files of the corrections are in the manifest, published
    manifest = RawZone(caught_up["stores"]["parts"]).manifest()
    files = {f for a, d in zip(fix["asset_id"], fix["date"], strict=True)
             if (f := _file_of(a, d)) is not None}
    mine = manifest[manifest["file"].isin(files)]
    assert set(mine["file"]) == files
    assert (mine.groupby("file")["status"].apply(lambda s: "published" in set(s))).all()
    # corporate actions announced after E1 with an ex date before it are stored and
    # priced in (the split/dividend grid on the ex date)
    ca = u.corporate_actions
    late = ca[(ca["ex_date"] < e1) & (ca["known_at"] >= after)]
    stored = st.read_table("corporate_actions")
    got = stored.merge(late[["asset_id", "ex_date", "kind"]], on=["asset_id", "ex_date", "kind"])
    assert len(got) == len(late)
    assert len(late) == 0 or len(st.read_table("corporate_actions", first)) < len(stored)


def test_catch_up_on_local_cluster(caught_up):
    from distributed import Client, LocalCluster, get_task_stream

    store = caught_up["stores"]["cluster"]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        with get_task_stream(client) as ts:
            result = refresh(store, connection=caught_up["sandbox"].connection(),
                             client=client, partitioned=True, partition_rows=600)
        keys = [str(t["key"]) for t in ts.data if result.refresh_id in str(t["key"])]
        workers = {t["worker"] for t in ts.data if result.refresh_id in str(t["key"])}
    assert {k for k in ("fetch", "reference", "partition") if any(k in x for x in keys)} \
        == {"fetch", "reference", "partition"}
    assert sum("partition" in k for k in keys) == result.rows["partitions"] >= 10
    assert len(workers) == 2                          # both worker processes worked
    _same(CuratedStore(store), CuratedStore(caught_up["stores"]["parts"]))


def test_killed_catch_up_keeps_previous_version_and_rerun_completes(caught_up, monkeypatch):
    store = caught_up["stores"]["killed"]
    before = CuratedStore(store).tip()
    code = ("import json, sys; from quantlib.sources.connection import Connection; "
            "from quantlib.pipeline import refresh; "
            "refresh(sys.argv[1], connection=Connection(**json.loads(sys.argv[2])), "
            "partitioned=True, partition_rows=600)")
    sb = caught_up["sandbox"]
    conn = {k: getattr(sb.connection(), k) for k in
            ("ftp_host", "ftp_port", "ftp_user", "ftp_password", "http_url", "api_key")}
    proc = subprocess.Popen([sys.executable, "-c", code, store, json.dumps(conn)],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, WRITE_DELAY_ENV: "10"})
    seen = False
    try:
        deadline = time.monotonic() + 400
        assert proc.stderr is not None
        for line in proc.stderr:   # killed inside the commit, the blocks merged
            if "quantlib-store: wrote prices blocks" in line:
                seen = True
                break
            if time.monotonic() > deadline:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert seen and proc.returncode == -signal.SIGKILL
    st = CuratedStore(store)
    assert st.tip() == before and len(st.snapshots()) == 1      # nothing committed
    kr = st.open_prices("KR").load()                             # the previous version
    assert kr["date"].values.max() <= np.datetime64(caught_up["e1"])
    fs, builds = st.location.open_fs("tmp", "builds")
    killed = [p.rsplit("/", 1)[-1] for p in fs.ls(builds, detail=False)]
    assert len(killed) == 1 and fs.glob(f"{builds}/{killed[0]}/*/0*")
    monkeypatch.setattr("quantlib.pipeline.spill.STALE_S", 0.0)
    # files the killed run fetched are in the raw zone, never published: the rerun
    # standardizes them again
    result = refresh(store, connection=sb.connection(), partitioned=True,
                     partition_rows=600)
    assert killed[0] in result.note
    assert result.rows["partitions"] >= 10
    assert not fs.exists(builds) or fs.ls(builds, detail=False) == []
    _same(CuratedStore(store), CuratedStore(caught_up["stores"]["parts"]))
