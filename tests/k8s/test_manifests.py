"""Every Kubernetes manifest validated against the Kubernetes schemas (kubernetes-validate,
strict, offline), the layered z2jh values merged and checked, the CronJobs re-rendered."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import dask_kubernetes
import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from quantlib.cluster import REQUIRED_PERMISSIONS, load_profiles
from quantlib.schedule import load_schedules, render_cronjobs
from quantlib.schedule.cli import schedule
from quantlib.schedule.render import DEFAULT_IMAGE, IMAGE_REPO_ROOT

ROOT = Path(__file__).parents[2]
K8S = ROOT / "hub-config" / "k8s"
K8S_VERSION = "1.31"
MANIFEST_DIRS = ["rbac", "network-policy", "storage", "rendered", "services"]
OPERATOR_CHART = (Path(dask_kubernetes.__file__).parent / "operator" / "deployment" / "helm"
                  / "dask-kubernetes-operator")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for folder in MANIFEST_DIRS:
        for path in sorted((K8S / folder).glob("*.yaml")):
            for doc in _docs(path):
                out.append((f"{folder}/{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def merge_values(*layers: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of -f files: maps merge recursively, lists and scalars replace, null deletes."""
    out: dict[str, Any] = {}
    for layer in layers:
        out = _merge(out, layer)
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _values(env: str) -> dict[str, Any]:
    layers = [yaml.safe_load((K8S / "values" / f"{name}.yaml").read_text())
              for name in ("common", env)]
    return merge_values(*layers)


MANIFESTS = _manifests()


def test_merge_is_helm_like() -> None:
    merged = merge_values({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "d": None})
    assert merged == {"a": {"b": 1, "c": [3]}}


@pytest.mark.parametrize(("name", "doc"), MANIFESTS, ids=[n for n, _ in MANIFESTS])
def test_manifest_matches_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "quantlib"


def test_validation_really_rejects_a_bad_manifest() -> None:
    doc = copy.deepcopy(next(d for n, d in MANIFESTS if d["kind"] == "CronJob"))
    doc["spec"]["concurrencyPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    doc = copy.deepcopy(next(d for n, d in MANIFESTS if d["kind"] == "Role"))
    doc["rules"][0]["verbz"] = ["get"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(verb, group, res) for rule in role["rules"] for group in rule["apiGroups"]
            for res in rule["resources"] for verb in rule["verbs"]}


def test_dask_user_role_grants_what_kubecluster_needs() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _n, d in MANIFESTS}
    granted = _granted(docs[("Role", "quantlib-dask-user")])
    for res in ["daskclusters", "daskworkergroups", "daskworkergroups/scale", "daskjobs",
                "daskautoscalers"]:
        for verb in ["get", "list", "watch", "create", "patch", "delete"]:
            assert (verb, "kubernetes.dask.org", res) in granted
    for res in ["pods", "pods/status", "services", "pods/log"]:
        assert ("get", "", res) in granted and ("list", "", res) in granted
    assert ("create", "", "pods") not in granted  # the operator makes pods, not the user
    for verb, group, res in REQUIRED_PERMISSIONS:  # what quantlib.cluster.preflight checks
        assert (verb, group, res) in granted
    binding = docs[("RoleBinding", "quantlib-dask-user")]
    subjects = {s["name"] for s in binding["subjects"]}
    assert "serviceAccountName" not in _values("prod")["singleuser"]  # users: their own
    crons = [d for _n, d in MANIFESTS if d["kind"] == "CronJob"]
    for cj in crons:
        sa = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
        assert sa in subjects
        assert ("ServiceAccount", sa) in docs


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def _allowed(policy: dict[str, Any], src: dict[str, str], port: int) -> bool:
    for rule in policy["spec"]["ingress"]:
        peers = [p["podSelector"] for p in rule.get("from", []) if "podSelector" in p]
        ports = {p["port"] for p in rule.get("ports", [])}
        if any(_selects(s, src) for s in peers) and (not ports or port in ports):
            return True
    return False


def test_network_policy_lets_user_pods_reach_their_dask_pods() -> None:
    policies = {d["metadata"]["name"]: d for _n, d in MANIFESTS if d["kind"] == "NetworkPolicy"}
    sched, worker = policies["quantlib-dask-scheduler"], policies["quantlib-dask-worker"]
    user = {"component": "singleuser-server", "app": "jupyterhub"}
    cron = {"app.kubernetes.io/component": "scheduled-notebook"}
    dask_worker = {"dask.org/component": "worker"}
    stranger = {"app": "something-else"}
    assert _selects(sched["spec"]["podSelector"], {"dask.org/component": "scheduler"})
    for port in (8786, 8787):
        assert _allowed(sched, user, port) and _allowed(sched, cron, port)
        assert _allowed(sched, dask_worker, port)
        assert not _allowed(sched, stranger, port)
    assert not _allowed(sched, user, 22)
    assert _allowed(worker, user, 40123) and _allowed(worker, {"dask.org/component": "scheduler"},
                                                      40123)
    assert not _allowed(worker, stranger, 40123)
    # and the user pod may leave towards them (z2jh singleuser egress)
    egress = _values("prod")["singleuser"]["networkPolicy"]["egress"]
    to_sched = [r for r in egress if any(
        _selects(t["podSelector"], {"dask.org/component": "scheduler"}) for t in r.get("to", [])
        if "podSelector" in t)]
    assert {p["port"] for r in to_sched for p in r["ports"]} == {8786, 8787}
    pol = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "singleuser-egress"},
           "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress}}
    kubernetes_validate.validate(pol, K8S_VERSION, strict=True)


SCHEMA = yaml.safe_load((Path(__file__).parent / "schemas" / "z2jh-subset.schema.yaml").read_text())


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_layered_values_match_schema_and_platform(env: str) -> None:
    values = _values(env)
    jsonschema.Draft202012Validator(SCHEMA).validate(values)
    su = values["singleuser"]
    # the image the CronJobs and the Dask workers run is the notebook image
    assert su["image"]["name"] == DEFAULT_IMAGE.rsplit(":", 1)[0]
    assert su["image"]["tag"] != "set-per-environment"
    # profiles small/large, matching the Dask cluster profiles
    slugs = [p["slug"] for p in su["profileList"]]
    assert slugs == ["small", "large"] and set(slugs) <= set(load_profiles())
    for prof in su["profileList"]:
        assert prof["kubespawner_override"]["environment"]["QUANTLIB_CLUSTER_PROFILE"] == prof["slug"]
    # groups and roles: the same as the local hub's platform.yaml
    platform = yaml.safe_load((ROOT / "hub-config" / "platform.yaml").read_text())
    roles = values["hub"]["loadRoles"]
    for group, spec in platform["groups"].items():
        assert roles[group]["groups"] == [group]
        assert sorted(roles[group]["scopes"]) == sorted(spec["scopes"])
    assert sorted(roles["user"]["scopes"]) == sorted(platform["base_user_scopes"])
    assert not any("servers" in s for s in roles["managers"]["scopes"])
    auth = values["hub"]["config"]["GenericOAuthenticator"]
    assert sorted(auth["allowed_groups"]) == sorted(platform["groups"])
    assert values["hub"]["config"]["JupyterHub"]["custom_scopes"] == platform["custom_scopes"]
    # idle culler, placeholders, user scheduler, user/worker node pools
    assert values["cull"]["enabled"] and values["cull"]["timeout"] > 0
    assert values["scheduling"]["userPlaceholder"]["replicas"] >= 1
    assert values["scheduling"]["userScheduler"]["enabled"]
    assert su["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}
    # shared read-only data + home volumes form a valid pod
    storage = su["storage"]
    assert storage["type"] == "dynamic" and "{username}" in storage["dynamic"]["pvcNameTemplate"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-alice"},
           "spec": {"volumes": storage["extraVolumes"], "containers": [{
               "name": "notebook", "image": f"{su['image']['name']}:{su['image']['tag']}",
               "volumeMounts": storage["extraVolumeMounts"]}]}}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    assert all(m["readOnly"] for m in storage["extraVolumeMounts"])


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in _walk(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_no_secret_in_values_only_references(env: str) -> None:
    values = _values(env)
    secretish = re.compile(r"(secret|password|token|crypt_?key|private_?key)", re.I)
    for path, leaf in _walk(values):
        last = path.rsplit(".", 1)[-1]
        if last.endswith("_url") or not isinstance(leaf, str):
            continue  # endpoints (token_url...) are public
        if secretish.search(last) and not re.search(r"secretKeyRef\.(name|key)$|existingSecret$"
                                                    r"|secretName$", path):
            pytest.fail(f"{env}: {path} holds a literal value {leaf!r}; reference a Secret")
    env_vars = values["hub"]["extraEnv"]
    assert env_vars["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "quantlib-hub-oidc"
    assert values["hub"]["existingSecret"]


def test_layers_differ_where_environments_differ() -> None:
    staging, prod = _values("staging"), _values("prod")
    s_auth = staging["hub"]["config"]["GenericOAuthenticator"]
    p_auth = prod["hub"]["config"]["GenericOAuthenticator"]
    assert "staging" in s_auth["token_url"] and "staging" not in p_auth["token_url"]
    assert s_auth["scope"] == p_auth["scope"]  # inherited from common.yaml
    assert staging["singleuser"]["image"]["tag"] != prod["singleuser"]["image"]["tag"]
    assert prod["scheduling"]["userPlaceholder"]["replicas"] > \
        staging["scheduling"]["userPlaceholder"]["replicas"]
    assert prod["cull"]["every"] == staging["cull"]["every"] == 300


def test_operator_values_are_keys_of_the_operator_chart() -> None:
    ours = yaml.safe_load((K8S / "operator" / "values.yaml").read_text())
    chart = yaml.safe_load((OPERATOR_CHART / "values.yaml").read_text())
    for key in ours:
        assert key in chart, f"operator values: unknown key {key!r}"
    assert ours["rbac"]["create"] and ours["rbac"]["cluster"]
    assert "--all-namespaces" in ours["kopfArgs"]
    crds = {p.stem for p in (OPERATOR_CHART / "crds").glob("*.yaml")}
    assert crds == {"daskcluster", "daskworkergroup", "daskjob", "daskautoscaler"}


def test_cronjobs_render_from_schedules_and_are_committed(tmp_path: Path) -> None:
    schedules = ROOT / "catalogs" / "schedules.yaml"
    jobs = load_schedules(schedules)
    crons = render_cronjobs(schedules)
    assert len(crons) == len(jobs)
    for cj, job in zip(crons, jobs.values(), strict=True):
        kubernetes_validate.validate(cj, K8S_VERSION, strict=True)
        spec = cj["spec"]
        jt = spec["jobTemplate"]["spec"]
        pod = jt["template"]["spec"]
        assert spec["schedule"] == job.cron and spec["concurrencyPolicy"] == "Forbid"
        assert jt["backoffLimit"] == job.retries
        assert pod["activeDeadlineSeconds"] == job.timeout_s
        assert jt["activeDeadlineSeconds"] == job.timeout_s * (job.retries + 1)
        (container,) = pod["containers"]
        assert container["image"] == DEFAULT_IMAGE
        assert container["command"][:4] == ["quantlib", "schedule", "run", job.name]
        assert f"{IMAGE_REPO_ROOT}/catalogs/schedules.yaml" in container["command"]
        assert cj["metadata"]["labels"]["quantlib.io/owner"] == job.owner
    out = tmp_path / "cronjobs.yaml"
    result = CliRunner().invoke(schedule, ["render-k8s", "--schedules", str(schedules),
                                           "--output", str(out)])
    assert result.exit_code == 0, result.output
    committed = _docs(K8S / "rendered" / "cronjobs.yaml")
    assert _docs(out) == committed == crons, "re-run `quantlib schedule render-k8s`"


def test_dockerfile_builds_the_image_the_manifests_expect() -> None:
    text = (ROOT / "hub-config" / "Dockerfile").read_text()
    assert "environment.yml" in text
    assert re.search(r"mamba env update --name base --file /tmp/environment.yml", text)
    for folder in ("notebooks", "catalogs", "quantlib"):
        assert f"{IMAGE_REPO_ROOT}/{folder}" in text
    assert f"QUANTLIB_SCHEDULES={IMAGE_REPO_ROOT}/catalogs/schedules.yaml" in text
