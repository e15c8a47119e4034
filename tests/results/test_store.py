"""Results store: exact round trips, content addressing, atomic publish, listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

import quantlib
from quantlib.backtest.result import Result, result_id_for
from quantlib.errors import StoreError
from quantlib.platform.hubconfig import free_port
from quantlib.results import has_result, list_results, load_meta, load_result, publish, save_result


def make_result(seed: int = 0, strategy: str = "demo", n: int = 50) -> Result:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2023-01-02", periods=n, freq="B", name="date")
    net = rng.normal(0, 0.01, n)
    rets = pd.DataFrame({"net": net, "gross": net + 1e-4, "turnover": rng.random(n),
                         "costs": np.full(n, 1e-4), "benchmark": rng.normal(0, 0.01, n)},
                        index=idx)
    w = pd.DataFrame(rng.random((n, 3)), index=idx, columns=["US0001", "KR0002", "EU0003"])
    w.iloc[3, 1] = np.nan
    return Result(rets, w, params={"fast": 5, "slow": seed + 20, "windows": (1, 2)},
                  provenance={"strategy": strategy, "source_hash": "h" * 8, "snapshot": "snap",
                              "quantlib_version": "0.1.0", "created_at": "2026-01-01T00:00:00"},
                  metrics={"sharpe": 1.234567890123, "max_drawdown": -0.1, "nanmetric": np.nan})


def assert_same(a: Result, b: Result) -> None:
    pd.testing.assert_frame_equal(a.returns, b.returns, check_exact=True)
    pd.testing.assert_frame_equal(a.weights, b.weights, check_exact=True)
    pd.testing.assert_frame_equal(a.exposures, b.exposures, check_exact=True)
    assert a.params == b.params
    assert a.provenance == b.provenance
    assert a.metrics.keys() == b.metrics.keys()
    for k in a.metrics:
        va, vb = a.metrics[k], b.metrics[k]
        assert (va == vb) or (np.isnan(va) and np.isnan(vb))
    assert a.result_id == b.result_id


def test_save_load_roundtrip_exact_local(tmp_path):
    r = make_result()
    r.save(str(tmp_path / "one"))
    back = Result.load(str(tmp_path / "one"))
    assert_same(r, back)
    assert back.params["windows"] == [1, 2]
    assert isinstance(back.weights.index, pd.DatetimeIndex)


def test_result_id_is_content_address():
    r1, r2 = make_result(0), make_result(0)
    assert r1.result_id == r2.result_id
    assert make_result(1).result_id != r1.result_id
    assert make_result(0, strategy="other").result_id != r1.result_id
    assert r1.result_id == result_id_for("demo", "h" * 8, {"slow": 20, "fast": 5,
                                         "windows": [1, 2]}, "snap", "0.1.0")


def test_store_uses_configured_url_and_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTLIB_RESULTS", str(tmp_path / "res"))
    r = make_result()
    rid = save_result(r)
    base = tmp_path / "res" / "objects" / rid
    assert sorted(p.name for p in base.iterdir()) == ["exposures.parquet", "meta.json",
                                                      "returns.parquet", "weights.parquet"]
    assert has_result(rid)
    meta = json.loads((base / "meta.json").read_text())
    for key in ("metrics", "params", "strategy", "snapshot", "author", "created_at",
                "published", "title", "description", "tags", "allowed_params",
                "source_hash", "quantlib_version"):
        assert key in meta
    assert meta["published"] is False
    assert meta["metrics"]["nanmetric"] is None  # strict JSON for the dashboards
    assert_same(r, load_result(rid))


def test_missing_result_error_says_what_and_fix(tmp_path):
    with pytest.raises(StoreError, match=r"result must exist.*no result 'deadbeef'.*list_results"):
        load_result("deadbeef", str(tmp_path))


def test_publish_index_and_listing(tmp_path):
    url = str(tmp_path)
    a, b, c = make_result(0), make_result(1), make_result(2)
    rid_a = quantlib.publish(a, "Alpha", "first", tags=["mom"], author="ann",
                             allowed_params={"fast": {"min": 5, "max": 50, "step": 5}}, url=url)
    rid_b = publish(b, "Beta", author="bob", url=url)
    save_result(c, url)  # stored, not published
    pub = list_results(url=url)
    assert [m["result_id"] for m in pub] == [rid_b, rid_a]
    assert [m["title"] for m in list_results(author="ann", url=url)] == ["Alpha"]
    every = list_results(published_only=False, url=url)
    assert {m["result_id"] for m in every} == {rid_a, rid_b, c.result_id}
    meta = load_meta(rid_a, url)
    assert meta["published"] is True and meta["tags"] == ["mom"]
    assert meta["allowed_params"] == {"fast": {"min": 5, "max": 50, "step": 5}}
    assert meta["metrics"]["sharpe"] == 1.234567890123
    # republishing replaces the entry instead of duplicating it
    publish(a, "Alpha v2", author="ann", url=url)
    pub = list_results(url=url)
    assert [m["title"] for m in pub] == ["Alpha v2", "Beta"]
    assert not [p for p in os.listdir(tmp_path / "index") if p.endswith(".tmp")]


def test_publish_requires_title(tmp_path):
    with pytest.raises(StoreError, match="needs a title"):
        publish(make_result(), "", url=str(tmp_path))


def test_index_never_half_written_under_concurrent_reads(tmp_path):
    url = str(tmp_path)
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        path = tmp_path / "index" / "published.json"
        while not stop.is_set():
            if path.exists():
                try:
                    json.loads(path.read_text())
                except json.JSONDecodeError as exc:  # pragma: no cover - the failure mode
                    bad.append(str(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(15):
            publish(make_result(i, n=400), f"R{i}", url=url)
    finally:
        stop.set()
        t.join()
    assert bad == []
    assert len(list_results(url=url)) == 15


@pytest.fixture
def moto_s3():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    import requests
    for _ in range(600):
        try:
            requests.get(endpoint, timeout=5)
            break
        except requests.RequestException:  # not listening yet, or too busy to answer
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.s3
def test_roundtrip_and_publish_on_real_s3_server(moto_s3, monkeypatch):
    import fsspec
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": moto_s3})
    s3fs.S3FileSystem.clear_instance_cache()
    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": moto_s3})
    fs.mkdir("results-bucket")
    url = "s3://results-bucket/team"
    r = make_result(3)
    rid = publish(r, "On S3", author="ann", url=url)
    assert_same(r, load_result(rid, url))
    assert [m["result_id"] for m in list_results(url=url)] == [rid]
    assert [m["result_id"] for m in list_results(published_only=False, url=url)] == [rid]


def test_publish_never_replaces_a_different_result_under_the_same_id(tmp_path):
    url = str(tmp_path)
    a = make_result(0)
    rid = publish(a, "Alpha", author="ann", url=url)
    forged = make_result(0)  # same request (same id), other returns: e.g. a changed engine
    forged.returns.loc[forged.returns.index[5], "net"] += 0.01
    assert forged.result_id == rid
    with pytest.raises(StoreError, match="same id, different returns or weights"):
        publish(forged, "Alpha", author="ann", url=url)
    assert load_result(rid, url).returns.equals(a.returns)
    publish(forged, "Alpha", author="ann", url=url, replace=True)
    meta = load_meta(rid, url)
    assert meta["replaces"][0]["why"] == "same id, different returns or weights"
    assert [m["result_id"] for m in list_results(url=url)] == [rid]


def test_publish_refuses_synthetic_data_unless_allowed(tmp_path):
    url = str(tmp_path)
    r = make_result(4)
    r.provenance["synthetic"] = True
    with pytest.raises(StoreError, match=r"must be computed on real data.*allow-synthetic"):
        publish(r, "Looks real", url=url)
    assert list_results(url=url) == []
    rid = publish(r, "Looks real", url=url, allow_synthetic=True)
    meta = load_meta(rid, url)
    assert meta["title"] == "[synthetic] Looks real" and meta["synthetic"] is True
