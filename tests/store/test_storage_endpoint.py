"""One storage location: every store URL becomes a filesystem through quantlib.storage.

The S3 endpoint here comes from the config file only (``s3.endpoint_url``), with
``AWS_ENDPOINT_URL`` unset, so botocore cannot find the moto server by itself: the
results store, the raw zone, the curated store and the health page reach it only if
they take their filesystem from :func:`quantlib.storage.resolve_location`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest

from quantlib.backtest.result import Result
from quantlib.raw import RawZone
from quantlib.results import ResultStore, load_result, publish, read_index
from quantlib.results.view import ResultsView, Viewer
from quantlib.serving.views.health import data_health
from quantlib.storage import resolve_location
from quantlib.store import CuratedStore
from quantlib.validate import validate
from quantlib.validate.report import write_report

pytestmark = pytest.mark.s3
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def configured_s3(moto_endpoint, monkeypatch, tmp_path, request):
    """A bucket on moto, reachable only through the config's ``s3.endpoint_url``."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"s3:\n  endpoint_url: {moto_endpoint}\n  region: eu-west-1\n")
    monkeypatch.setenv("QUANTLIB_CONFIG", str(cfg))
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = "ep-" + request.node.name.lower().replace("_", "-")[:40]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    return bucket, s3


def _keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _result(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-02", periods=40, freq="B", name="date")
    net = rng.normal(0, 0.01, 40)
    return Result(pd.DataFrame({"net": net, "gross": net, "turnover": 0.1, "costs": 0.0},
                               index=idx),
                  pd.DataFrame(rng.random((40, 2)), index=idx, columns=["A", "B"]),
                  provenance={"strategy": "ep", "snapshot": f"s{seed}"}, metrics={"sharpe": 1.0})


def test_the_location_carries_the_configured_endpoint(configured_s3, moto_endpoint):
    opts = resolve_location("s3://b/p").storage_options()
    assert opts["client_kwargs"] == {"endpoint_url": moto_endpoint, "region_name": "eu-west-1"}


def test_results_store_and_view_use_the_configured_endpoint(configured_s3):
    bucket, s3 = configured_s3
    url = f"s3://{bucket}/results"
    res = _result(1)
    rid = publish(res, "On S3", author="ann", url=url)
    assert f"results/objects/{rid}/meta.json" in _keys(s3, bucket)
    assert "results/index/published.json" in _keys(s3, bucket)
    assert [m["result_id"] for m in read_index(url)] == [rid]
    pd.testing.assert_frame_equal(load_result(rid, url).returns, res.returns, check_exact=True)
    view = ResultsView(url)
    assert [m["title"] for m in view.list(Viewer("mo", ("managers",)))] == ["On S3"]
    assert float(view.returns(rid)["net"].sum()) == pytest.approx(float(res.net.sum()))
    assert ResultStore(url).get(rid).result_id == rid


def test_raw_zone_uses_the_configured_endpoint(configured_s3):
    bucket, s3 = configured_s3
    raw = RawZone(f"s3://{bucket}/data")
    d = raw.put(b"date,close\n2024-01-02,1\n", source="drop", market="US", file="a.csv",
                fetch_id="f1", fmt="yahoo-csv", rows=1)
    assert f"data/{d.path}" in _keys(s3, bucket)
    assert RawZone(f"s3://{bucket}/data").get(d.sha256) == b"date,close\n2024-01-02,1\n"


def test_curated_store_and_health_page_use_the_configured_endpoint(configured_s3, make_frames):
    bucket, s3 = configured_s3
    url = f"s3://{bucket}/data"
    snap = CuratedStore(url).commit(make_frames(n_assets=2, seed=9), message="one", tag="v1")
    write_report(validate(_empty_batch()), url, "r-ep")
    keys = _keys(s3, bucket)
    assert any(k.startswith("data/curated/") for k in keys)
    assert "data/reports/r-ep.md" in keys
    health = data_health(url)
    assert health.report is not None and health.report[0] == "r-ep"
    assert snap in set(health.versions["snapshot_id"])
    assert not [e for e in health.errors if "s3" in e.lower()]


def _empty_batch():
    from quantlib.standardize import CanonicalBatch

    return CanonicalBatch.empty()


#: calls that turn a URL into a filesystem or storage; only quantlib/storage.py makes them
_FORBIDDEN = {"url_to_fs", "S3FileSystem", "get_fs_token_paths", "s3_storage",
              "local_filesystem_storage"}


def _violations(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN | {"filesystem"}:
            owner = node.value.id if isinstance(node.value, ast.Name) else ""
            if node.attr in _FORBIDDEN or owner == "fsspec":
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if names & _FORBIDDEN or (node.module == "fsspec" and "filesystem" in names) or (
                    node.module.split(".")[0] == "s3fs" and node.module != "s3fs.utils"):
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import) and any(a.name == "s3fs" for a in node.names):
            out.append(f"{path.relative_to(ROOT)}:{node.lineno} import s3fs")
    return out


def test_no_module_but_storage_turns_a_url_into_a_filesystem():
    files = [*sorted((ROOT / "quantlib").rglob("*.py")), *sorted((ROOT / "dashboards").rglob("*.py"))]
    bad = [v for f in files if f.name != "storage.py" or f.parent.name != "quantlib"
           for v in _violations(f)]
    assert not bad, bad
    assert _violations(ROOT / "quantlib" / "storage.py")  # the check does see such calls
