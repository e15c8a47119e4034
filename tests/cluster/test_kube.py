"""kind="kubernetes" fails fast with the reason and the fix, never hangs.

A small real HTTP server on loopback plays the Kubernetes API server (discovery,
SelfSubjectAccessReview), reached by the real kr8s client through a kubeconfig.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from quantlib.cluster import REQUIRED_PERMISSIONS, connect, preflight
from quantlib.errors import ClusterError


class FakeApiServer(BaseHTTPRequestHandler):
    mode = "ok"  # "ok" | "no-crds" | "denied" | "hang"
    denied: set[str] = {"daskautoscalers", "pods"}
    reviews: list[dict] = []

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.mode == "hang":
            time.sleep(20)
        if self.path.rstrip("/") == "/version":
            self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"})
        elif self.path.startswith("/apis/kubernetes.dask.org/v1"):
            if self.mode == "no-crds":
                self._send(404, {"kind": "Status", "message": "the server could not find the "
                                 "requested resource", "code": 404})
            else:
                self._send(200, {"kind": "APIResourceList", "groupVersion":
                                 "kubernetes.dask.org/v1", "resources": []})
        else:
            self._send(404, {"kind": "Status", "code": 404, "message": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).reviews.append(body)
        resource = body["spec"]["resourceAttributes"]["resource"]
        allowed = not (self.mode == "denied" and resource in self.denied)
        self._send(201, {**body, "status": {"allowed": allowed}})


@pytest.fixture
def api_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeApiServer]]:
    handler = type("Handler", (FakeApiServer,), {"reviews": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "fake", "cluster": {
            "server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "alice", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "alice",
                                                  "namespace": "research"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    yield handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setenv("JUPYTER_IMAGE_SPEC", "registry.example.org/quantlib:1")


def test_kubernetes_without_a_cluster_fails_fast(no_kube: None) -> None:
    start = time.monotonic()
    with pytest.raises(ClusterError) as info:
        connect("kubernetes", timeout=10)
    elapsed = time.monotonic() - start
    assert elapsed < 10
    msg = str(info.value)
    assert msg.startswith("a kube config or in-cluster service account is needed")
    assert "use kind='local'" in msg
    assert info.value.exit_code == 7


def test_auto_inside_a_pod_picks_kubernetes(no_kube: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(ClusterError, match="kube config or in-cluster service account"):
        connect(timeout=10)


def test_missing_image_is_named(no_kube: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTER_IMAGE_SPEC")
    monkeypatch.delenv("JUPYTER_IMAGE", raising=False)
    with pytest.raises(ClusterError, match="neither JUPYTER_IMAGE_SPEC nor JUPYTER_IMAGE"):
        connect("kubernetes", timeout=10)


def test_operator_crds_not_installed(api_server: type[FakeApiServer]) -> None:
    api_server.mode = "no-crds"
    with pytest.raises(ClusterError) as info:
        preflight(timeout=10)
    msg = str(info.value)
    assert "custom resources must be installed" in msg
    assert "kubernetes.dask.org/v1 not served (HTTP 404)" in msg
    assert "helm install dask-operator dask/dask-kubernetes-operator" in msg


def test_missing_permissions_are_listed(api_server: type[FakeApiServer]) -> None:
    api_server.mode = "denied"
    with pytest.raises(ClusterError) as info:
        preflight(timeout=10)
    msg = str(info.value)
    assert "missing permissions: create daskautoscalers, list pods in namespace research" in msg
    assert "hub-config/k8s/rbac/dask-user.yaml" in msg
    asked = [r["spec"]["resourceAttributes"] for r in api_server.reviews]
    assert [(a["verb"], a["resource"]) for a in asked] == [
        (v, r) for v, _g, r in REQUIRED_PERMISSIONS]
    assert {a["namespace"] for a in asked} == {"research"}  # from the kubeconfig context


def test_all_checks_pass_returns_namespace(api_server: type[FakeApiServer]) -> None:
    api_server.mode = "ok"
    assert preflight(timeout=10) == "research"
    assert preflight("risk", timeout=10) == "risk"


def test_unresponsive_api_server_times_out(api_server: type[FakeApiServer]) -> None:
    api_server.mode = "hang"
    start = time.monotonic()
    with pytest.raises(ClusterError, match=r"found no answer after 2s"):
        preflight(timeout=2)
    assert time.monotonic() - start < 4
