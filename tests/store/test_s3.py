"""The curated store and its Parquet tables on a real S3-compatible server (moto, loopback)."""

from __future__ import annotations

import boto3
import pandas as pd
import pytest

from quantlib.store import CuratedStore, sql, write_table_file

pytestmark = pytest.mark.s3


def test_commit_read_and_pin_on_s3(s3_store, make_frames, moto_endpoint):
    st = CuratedStore(s3_store)
    v1 = make_frames(n_assets=3, seed=3)
    s1 = st.commit(v1, message="one", tag="v1")
    v2 = make_frames(n_assets=3, seed=4)
    s2 = st.commit(v2, message="two", tag="v2")
    again = CuratedStore(s3_store)
    assert list(again.snapshots()["snapshot_id"]) == [s2, s1]
    pd.testing.assert_frame_equal(again.read_table("assets"), v2["assets"])
    pd.testing.assert_frame_equal(again.read_table("statements", "v1"), v1["statements"])
    pd.testing.assert_frame_equal(
        again.read_table("prices", s1),
        v1["prices"].sort_values(["asset_id", "date"]).reset_index(drop=True))
    eu = again.open_prices("EU", "v2")
    want = v2["prices"][v2["prices"]["asset_id"].str.startswith("EU")]["close"].sum()
    assert float(eu["close"].sum()) == pytest.approx(want)

    # the objects really are in the bucket, and no credentials were written there
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    bucket = s3_store.split("/")[2]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("data/curated/") for k in keys)
    assert f"data/tables/statements/{s2}.parquet" in keys
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert b"testing" not in body, key


def test_sql_over_s3_tables(s3_store, make_frames):
    st = CuratedStore(s3_store)
    frames = make_frames(n_assets=2, seed=5)
    snap = st.commit(frames, message="one")
    write_table_file(s3_store, "manifest", "fetch-1", pd.DataFrame(
        {"fetch_id": ["fetch-1"] * 2, "source": ["ftp-kr", "http-us"], "rows": [10, 32]}))
    got = sql("select sum(rows) as n, count(*) as files from manifest", store=s3_store)
    assert int(got["n"][0]) == 42 and int(got["files"][0]) == 2
    stm = sql("select field, sum(value) as v from statements group by field order by field",
              store=s3_store)
    want = frames["statements"].groupby("field")["value"].sum().sort_index()
    assert list(stm["field"]) == list(want.index)
    assert stm["v"].tolist() == pytest.approx(want.tolist())
    snaps = sql("select snapshot_id from snapshots", store=s3_store)
    assert snaps["snapshot_id"].tolist() == [snap]
