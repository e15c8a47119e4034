"""File-drop ingest (bokeh-sampledata stocks) and a whole refresh against moto S3."""

from __future__ import annotations

import gzip

import boto3
import pandas as pd
import pytest

from quantlib.pipeline import bokeh_stocks_path, ingest, refresh, status
from quantlib.store import CuratedStore, sql


def _aapl_row(day: str) -> dict:
    with gzip.open(bokeh_stocks_path(), "rt") as fh:
        frame = pd.read_csv(fh)
    row = frame[(frame["Ticker"] == "AAPL") & (frame["Date"] == day)].iloc[0]
    return row.to_dict()


def test_ingest_bokeh_stocks_adds_assets(tmp_path, sandbox):
    store = str(tmp_path / "store")
    first = refresh(store, connection=sandbox.connection(), markets=("US",))
    st = CuratedStore(store)
    us_before = st.open_prices("US").load()
    result = ingest(bokeh_stocks_path(), "yahoo-csv", "US", store)
    assert result.snapshot_id != first.snapshot_id
    assert list(st.snapshots()["snapshot_id"]) == [result.snapshot_id, first.snapshot_id]
    assets = st.read_table("assets").set_index("asset_id")
    assert {"YAHOO:AAPL", "YAHOO:IBM", "YAHOO:MSFT"} <= set(assets.index)
    assert assets.loc["YAHOO:AAPL", "market"] == "US"
    panel = st.open_prices("US")
    row = _aapl_row("2010-03-01")
    cell = panel.sel(asset="YAHOO:AAPL", date="2010-03-01").compute()
    assert float(cell["close"]) == pytest.approx(row["Close"])
    assert float(cell["volume"]) == row["Volume"]
    # the vendor's US assets are still there, bar for bar
    kept = panel.sel(asset=us_before["asset"], date=us_before["date"])["close"].values
    pd.testing.assert_frame_equal(pd.DataFrame(kept), pd.DataFrame(us_before["close"].values))
    # the previous version is unchanged and pinnable
    assert "YAHOO:AAPL" not in set(st.read_table("assets", first.snapshot_id)["asset_id"])
    assert status(store).versions["snapshot_id"].iloc[0] == result.snapshot_id


@pytest.mark.s3
@pytest.mark.slow
def test_refresh_on_moto_s3(sandbox, moto_endpoint, monkeypatch):
    for var, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="quant-refresh")
    store = "s3://quant-refresh/platform"
    result = refresh(store, connection=sandbox.connection(), markets=("EU", "US"))
    st = CuratedStore(store)
    assert st.resolve(None) == result.snapshot_id
    truth = sandbox.universe.prices
    eu_ids = sandbox.universe.market_assets("EU")["asset_id"]
    eu_truth = truth[truth["asset_id"].isin(eu_ids)]
    assert float(st.open_prices("EU")["close"].sum()) == pytest.approx(eu_truth["close"].sum())
    n = sql("select count(*) as n from manifest where status = 'published'", store=store)
    assert int(n["n"][0]) > 0
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=moto_endpoint)
            .list_objects_v2(Bucket="quant-refresh", MaxKeys=1000)["Contents"]]
    assert any(k.startswith("platform/raw/") for k in keys)
    assert any(k.startswith("platform/curated/") for k in keys)
    assert f"platform/reports/{result.refresh_id}.json" in keys
