"""End-to-end refresh on the sandbox: store equals the truth; a bad batch publishes nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import quantlib
from quantlib.errors import BatchRejectedError
from quantlib.pipeline import refresh, status
from quantlib.pipeline.merge import canonical
from quantlib.raw import RawZone
from quantlib.store import CuratedStore


def _by(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_refresh_matches_sandbox_truth(tmp_path, sandbox):
    store = str(tmp_path / "store")
    result = refresh(store, connection=sandbox.connection(), tag="first")
    truth = sandbox.universe
    st = CuratedStore(store)
    assert st.resolve("first") == result.snapshot_id == st.resolve(None)
    assert result.markets == ["KR", "US", "EU", "FX"]
    assert result.rows["validate"] == result.rows["standardize"] > len(truth.prices)
    assert set(result.seconds) >= {"fetch", "standardize", "validate", "commit", "total"}

    got = st.read_table("prices")
    want = _by(truth.prices[got.columns.tolist()], ["asset_id", "date"])
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    for name, keys in [("assets", ["asset_id"]), ("symbols", ["asset_id", "valid_from"]),
                       ("corporate_actions", ["asset_id", "ex_date", "kind"]),
                       ("statements", ["asset_id", "field", "period_end", "known_at"])]:
        pd.testing.assert_frame_equal(_by(st.read_table(name), keys),
                                      _by(canonical(name, truth.frames()[name]), keys),
                                      check_exact=False, rtol=1e-9)
    fx = st.read_table("fx")
    want_fx = _by(truth.fx, ["date", "currency"])
    assert fx["rate"].to_numpy() == pytest.approx(want_fx["rate"].to_numpy(), rel=1e-9)
    # one panel per market; a known close lands in its (date, asset) cell
    assert st.markets() == ["EU", "KR", "US"]
    kr_ids = truth.market_assets("KR")["asset_id"]
    row = truth.prices[truth.prices["asset_id"].isin(kr_ids)].iloc[100]
    cell = st.open_prices("KR").sel(asset=row["asset_id"], date=row["date"])
    assert float(cell["close"]) == row["close"]

    # manifest rows of this run say published; report and SQL views agree
    manifest = RawZone(store).manifest()
    mine = manifest[manifest["fetch_id"] == result.refresh_id]
    assert set(mine["status"]) >= {"fetched", "published"}
    published = quantlib.sql(
        "select count(*) as n from manifest where status = 'published' and fetch_id = "
        f"'{result.refresh_id}'", store=store)
    assert int(published["n"][0]) == (mine["status"] == "fetched").sum()
    report = json.loads(open(result.report_paths["json"]).read())
    assert report["rows_in_total"] == result.rows["standardize"]
    assert report["rejected_markets"] == []

    # a second, full refresh of the same vendor state: new version, same data,
    # statements not duplicated (append-only with dedup)
    again = refresh(store, connection=sandbox.connection(), markets=("US",), full=True)
    assert again.snapshot_id != result.snapshot_id
    assert len(st.snapshots()) == 2
    # an incremental one finds nothing new at the vendor: no version (#12: the bars it
    # re-fetched made one)
    third = refresh(store, connection=sandbox.connection(), markets=("US",))
    assert third.mode == "incremental" and third.snapshot_id is None
    assert len(st.snapshots()) == 2
    assert len(st.read_table("statements")) == len(truth.statements)
    assert st.markets() == ["EU", "KR", "US"]
    pd.testing.assert_frame_equal(st.read_table("prices"), got)
    s = status(store)
    assert list(s.versions["snapshot_id"]) == [again.snapshot_id, result.snapshot_id]
    fresh = s.freshness.set_index(["market", "source"])
    assert fresh.loc[("US", "api-us"), "latest_known_at"] == \
        truth.prices[truth.prices["asset_id"].isin(truth.market_assets("US")["asset_id"])][
            "known_at"].max()
    assert sorted(fresh.index) == [("EU", "api-eu"), ("EU", "ftp-eu"), ("FX", "api-fx"),
                                   ("KR", "api-kr"), ("KR", "ftp-kr"), ("US", "api-us")]
    assert fresh["last_published_at"].notna().all()
    assert (fresh["last_fetched_at"] <= pd.Timestamp.now(tz="UTC")).all()


def test_garbage_batch_is_rejected_and_nothing_published(tmp_path, sandbox, clean_faults):
    store = str(tmp_path / "store")
    first = refresh(store, connection=sandbox.connection(), markets=("EU",))
    before = CuratedStore(store).read_table("prices")
    # a few garbage values in every US price page: 4 bad rows per 5000-row page
    clean_faults.add("garbage_values", "v1/prices*", times=None, protocol="http")
    with pytest.raises(BatchRejectedError) as info:
        refresh(store, connection=sandbox.connection(), markets=("US", "EU"),
                max_bad_row_fraction=0.0001)
    message = str(info.value)
    assert "nothing was published (rejected: US)" in message
    assert "v1/prices" in message
    assert info.value.exit_code == 4
    st = CuratedStore(store)
    assert list(st.snapshots()["snapshot_id"]) == [first.snapshot_id]
    pd.testing.assert_frame_equal(st.read_table("prices"), before)
    assert st.markets() == ["EU"]
    # the run's manifest rows are marked rejected, its report written with the bad rows
    run = info.value.result
    manifest = RawZone(store).manifest()
    mine = manifest[manifest["fetch_id"] == run.refresh_id]
    assert "rejected" in set(mine["status"]) and "published" not in set(mine["status"])
    report = json.loads(open(run.report_paths["json"]).read())
    assert report["rejected_markets"] == ["US"]
    assert report["markets"]["US"]["bad_rows"] > 0
    # EU is refreshed incrementally: the vendor has nothing new for it, so it adds no
    # rows (and no bad ones) to this run's report
    assert report["markets"].get("EU", {}).get("bad_rows", 0) == 0
    q = quantlib.sql("select market, count(*) as n from quarantine group by market",
                     store=store).set_index("market")["n"]
    assert int(q["US"]) == run.quarantine["US"] > 0
    counts = status(store).quarantine
    assert counts.iloc[0]["refresh_id"] == run.refresh_id
    assert np.int64(counts[counts["market"] == "US"]["rows"].iloc[0]) == run.quarantine["US"]
