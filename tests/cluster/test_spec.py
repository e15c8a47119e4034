"""DaskCluster / DaskAutoscaler specs built from profiles, checked against real schemas.

The DaskCluster is validated against the operator's own CRD schema (shipped in the
dask-kubernetes helm chart), and the worker/scheduler pod specs against the
Kubernetes PodSpec schema (kubernetes-validate, strict).
"""

from __future__ import annotations

from pathlib import Path

import dask_kubernetes
import jsonschema
import kubernetes_validate
import pytest
import yaml

from quantlib.cluster import (
    get_profile,
    load_profiles,
    make_autoscaler_spec,
    make_cluster_spec,
)
from quantlib.errors import ClusterError

K8S_VERSION = "1.31"
CRDS = (Path(dask_kubernetes.__file__).parent / "operator" / "deployment" / "helm"
        / "dask-kubernetes-operator" / "crds")
IMAGE = "registry.example.org/quantlib/singleuser:2026.11.1"


def _crd_schema(kind: str) -> dict:
    crd = yaml.safe_load((CRDS / f"{kind}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("profile", ["small", "large"])
def test_cluster_spec_applies_profile(profile: str) -> None:
    prof = get_profile(profile)
    spec = make_cluster_spec(profile, IMAGE, name="dask-alice-1", owner="alice")
    assert spec["apiVersion"] == "kubernetes.dask.org/v1"
    assert spec["metadata"]["name"] == "dask-alice-1"
    assert spec["metadata"]["labels"]["quantlib.io/owner"] == "alice"
    assert spec["spec"]["idleTimeout"] == prof["idle_timeout_s"]
    assert spec["spec"]["worker"]["replicas"] == prof["min_workers"]
    worker = spec["spec"]["worker"]["spec"]
    (wc,) = worker["containers"]
    assert wc["image"] == IMAGE
    assert wc["resources"]["requests"] == prof["worker"]["requests"]
    assert wc["resources"]["limits"] == prof["worker"]["limits"]
    args = wc["args"]
    assert args[:2] == ["dask", "worker"]
    assert args[args.index("--nthreads") + 1] == str(prof["worker"]["nthreads"])
    assert args[args.index("--memory-limit") + 1] == prof["worker"]["limits"]["memory"]
    assert worker["nodeSelector"] == {"quantlib.io/node-pool": "dask-workers"}
    scheduler = spec["spec"]["scheduler"]["spec"]
    assert scheduler["containers"][0]["image"] == IMAGE
    assert scheduler["containers"][0]["resources"]["requests"] == prof["scheduler"]["requests"]
    assert scheduler["nodeSelector"] == worker["nodeSelector"]
    if profile == "large":
        assert worker["tolerations"][0]["key"] == "quantlib.io/dask-worker"
    else:
        assert "tolerations" not in worker
    # no null leftovers from the operator's template (env=None, resources=None)
    assert "env" not in wc


def test_cluster_spec_overrides() -> None:
    spec = make_cluster_spec("small", IMAGE, name="dask-bob", n_workers=3, idle_timeout_s=60,
                             env={"QUANTLIB_STORE": "s3://bucket/store"})
    assert spec["spec"]["worker"]["replicas"] == 3
    assert spec["spec"]["idleTimeout"] == 60
    wc = spec["spec"]["worker"]["spec"]["containers"][0]
    assert wc["env"] == [{"name": "QUANTLIB_STORE", "value": "s3://bucket/store"}]


@pytest.mark.parametrize("profile", ["small", "large"])
def test_cluster_spec_matches_operator_crd_and_podspec(profile: str) -> None:
    spec = make_cluster_spec(profile, IMAGE, name="dask-carol")
    jsonschema.validate(spec, _crd_schema("daskcluster"))
    for part in ("worker", "scheduler"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{part}"},
               "spec": spec["spec"][part]["spec"]}
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": spec["spec"]["scheduler"]["service"]}
    kubernetes_validate.validate(service, K8S_VERSION, strict=True)
    ports = {p["port"] for p in service["spec"]["ports"]}
    assert ports == {8786, 8787}


def test_autoscaler_spec_bounds() -> None:
    prof = get_profile("large")
    scaler = make_autoscaler_spec("dask-dan", prof["min_workers"], prof["max_workers"])
    jsonschema.validate(scaler, _crd_schema("daskautoscaler"))
    assert scaler["spec"] == {"cluster": "dask-dan", "minimum": 0, "maximum": 32}
    with pytest.raises(ClusterError, match="0 <= minimum <= maximum; found minimum=3, maximum=1"):
        make_autoscaler_spec("dask-dan", 3, 1)


def test_bad_cluster_name_and_missing_image() -> None:
    with pytest.raises(ClusterError, match="DNS-1123 label.*found 'Dask_Alice'"):
        make_cluster_spec("small", IMAGE, name="Dask_Alice")
    with pytest.raises(ClusterError, match="pass image= or set JUPYTER_IMAGE_SPEC"):
        make_cluster_spec("small", "", name="dask-a")


def test_profiles_file_errors_name_field(tmp_path: Path) -> None:
    bad = tmp_path / "profiles.yaml"
    bad.write_text(yaml.safe_dump({"profiles": {"tiny": {
        "worker": {"requests": {"cpu": "one", "memory": "1Gi"}},
        "min_workers": 0, "max_workers": 2, "idle_timeout_s": 10}}}))
    with pytest.raises(ClusterError) as info:
        load_profiles(bad)
    msg = str(info.value)
    assert "field=profiles.tiny.worker.requests.cpu" in msg
    assert "'one' does not match" in msg
    bad.write_text(yaml.safe_dump({"profiles": {"tiny": {
        "worker": {"requests": {"cpu": "1", "memory": "1Gi"}},
        "min_workers": 5, "max_workers": 2, "idle_timeout_s": 10}}}))
    with pytest.raises(ClusterError, match=r"found 5 > 2 .*field=profiles.tiny.min_workers"):
        load_profiles(bad)
    with pytest.raises(ClusterError, match="found 'huge'.*use one of: large, small"):
        get_profile("huge")
