"""Concurrent publishers x store kinds: the published index never loses an entry.

``publish`` updates ``index/published.json`` by compare-and-swap (a file lock on a local
folder, a conditional PUT on S3). N real processes released together each publish
several distinct results; every one of them is in the index at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from quantlib.results import list_results
from quantlib.store.cas import update_object

_PUBLISHER = """
import os, sys, time
import numpy as np, pandas as pd
from quantlib.backtest.result import Result
from quantlib.results import publish

url, writer, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
idx = pd.date_range("2023-01-02", periods=30, freq="B", name="date")
results = []
for k in range(count):
    net = np.random.default_rng(100 * writer + k).normal(0, 0.01, 30)
    rets = pd.DataFrame({"net": net, "gross": net, "turnover": 0.1, "costs": 0.0}, index=idx)
    results.append(Result(rets, pd.DataFrame({"A": 1.0}, index=idx),
                          params={"writer": writer, "k": k},
                          provenance={"strategy": "demo", "snapshot": "s"}))
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
for k, r in enumerate(results):
    print(publish(r, f"w{writer}-{k}", author=f"user{writer}", url=url), flush=True)
"""


def _publish_concurrently(url: str, tmp_path, writers: int, count: int) -> set[str]:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _PUBLISHER, url, str(w), str(count),
                               str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for w in range(writers)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.write_text("go")
    ids: set[str] = set()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        ids |= set(out.split())
    return ids


@pytest.mark.slow
def test_concurrent_publish_local_folder(tmp_path):
    url = str(tmp_path / "results")
    ids = _publish_concurrently(url, tmp_path, writers=3, count=4)
    assert len(ids) == 12
    index = list_results(url=url)
    assert {m["result_id"] for m in index} == ids  # nobody's entry lost
    assert sorted(m["title"] for m in index) == sorted(f"w{w}-{k}" for w in range(3)
                                                      for k in range(4))


@pytest.fixture
def s3_results(moto_endpoint, monkeypatch, request):
    for var, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    bucket = "res-" + request.node.name.lower().replace("_", "-")[:40]
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/results"


@pytest.mark.s3
@pytest.mark.slow
def test_concurrent_publish_s3(s3_results, tmp_path):
    ids = _publish_concurrently(s3_results, tmp_path, writers=3, count=2)
    assert len(ids) == 6
    assert {m["result_id"] for m in list_results(url=s3_results)} == ids


def _appender(item: str, rival_url: str | None = None, rival_item: str = ""):
    calls = []

    def update(current: bytes | None) -> bytes:
        calls.append(current)
        if rival_url and len(calls) == 1:  # another writer replaces it under our feet
            update_object(rival_url, _appender(rival_item)[0])
        return json.dumps(json.loads(current or b"[]") + [item]).encode()
    return update, calls


@pytest.mark.s3
def test_cas_on_s3_reapplies_after_a_lost_race(s3_results):
    url = f"{s3_results}/index/x.json"
    update_object(url, _appender("a")[0])
    update, calls = _appender("mine", rival_url=url, rival_item="rival")
    assert json.loads(update_object(url, update)) == ["a", "rival", "mine"]
    assert len(calls) == 2  # the first PUT lost (If-Match on a stale ETag), then re-applied
    assert json.loads(calls[1]) == ["a", "rival"]


@pytest.mark.s3
def test_cas_on_s3_create_race(s3_results):
    url = f"{s3_results}/index/new.json"
    update, calls = _appender("mine", rival_url=url, rival_item="first")
    assert json.loads(update_object(url, update)) == ["first", "mine"]
    assert calls[0] is None and len(calls) == 2  # If-None-Match: * lost to the creator
