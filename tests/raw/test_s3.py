"""The raw zone and a file drop on a real S3-compatible server (moto server, loopback)."""

from __future__ import annotations

import time

import pytest

from quantlib.raw import RawZone
from quantlib.sources import ingest_files
from quantlib.standardize import standardize

pytestmark = pytest.mark.s3


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": moto_endpoint})
    bucket = f"b{time.monotonic_ns()}"
    fs.mkdir(bucket)
    return fs, bucket


def test_raw_zone_on_s3(s3):
    fs, bucket = s3
    raw = RawZone(f"s3://{bucket}/store")
    d = raw.put(b"a,b\n1,2\n", source="drop", market="US", file="x.csv", fetch_id="f1",
                fmt="yahoo-csv", rows=1)
    assert fs.cat_file(f"{bucket}/store/{d.path}") == b"a,b\n1,2\n"
    assert raw.get(d.sha256) == b"a,b\n1,2\n"
    raw.put(b"a,b\n1,2\n", source="drop", market="US", file="x.csv", fetch_id="f2",
            fmt="yahoo-csv", rows=1)
    again = RawZone(f"s3://{bucket}/store")
    assert len(again.manifest()) == 1 and again.has("drop", "x.csv", d.sha256)
    assert [x.sha256 for x in again.latest_deliveries("US")] == [d.sha256]
    assert len(fs.ls(f"{bucket}/store/tables/manifest")) == 1


def test_file_drop_from_s3_into_s3_raw_zone(s3):
    fs, bucket = s3
    text = ("Ticker,Date,Open,High,Low,Close,Volume,Adj Close\n"
            "IBM,2013-02-28,200.0,202.0,199.0,200.83,1000,190.0\n"
            "IBM,2013-03-01,200.6,202.9,199.4,202.91,1200,192.0\n")
    fs.pipe_file(f"{bucket}/drop/ibm.csv", text.encode())
    raw = RawZone(f"s3://{bucket}/store")
    [d] = ingest_files(f"s3://{bucket}/drop", "yahoo-csv", "US", raw=raw, fetch_id="f")
    assert (d.file, d.rows, d.source) == ("ibm.csv", 2, "file-drop")
    b = standardize([d], raw)
    assert b.prices["close"].tolist() == [200.83, 202.91]
    assert ingest_files(f"s3://{bucket}/drop", "yahoo-csv", "US", raw=raw, fetch_id="g",
                        new_only=True) == []
