"""The catalog over an S3 store (a real moto S3 server on loopback): no credentials leak."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from quantlib import open_catalog
from quantlib.sandbox import generate
from quantlib.store import CuratedStore

pytestmark = [pytest.mark.s3, pytest.mark.slow]

SECRET = "s3cr3t-never-in-a-catalog"


def test_catalog_reads_an_s3_store_with_credentials_only_in_env(moto_endpoint, monkeypatch):
    import boto3

    for var, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "catalog-key",
                       "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="pit-catalog")
    url = "s3://pit-catalog/data"
    truth = generate(n_assets=5, years=1, seed=5, markets=("US",))
    CuratedStore(url).commit({k: getattr(truth, k) for k in (
        "assets", "symbols", "prices", "corporate_actions", "fx", "statements")},
        message="truth", tag="v1")
    monkeypatch.setenv("QUANTLIB_STORE", url)
    cat = open_catalog(markets=["US"], start="2025-04-01", end="2025-06-30")
    ds = cat["prices"].read()
    p = truth.prices.set_index(["date", "asset_id"])["close"]
    got = ds["close"].to_series().dropna()
    np.testing.assert_array_equal(got.to_numpy(), p.reindex(got.index).to_numpy())
    assert len(got) > 100
    entry = cat["prices"].to_entry().to_dict()
    assert entry["kwargs"]["params"]["store"] == url
    dumped = yaml.safe_dump(cat.to_dict()) + yaml.safe_dump(entry) + repr(ds.attrs)
    assert SECRET not in dumped and "catalog-key" not in dumped
