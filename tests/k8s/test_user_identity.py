"""Per-user Kubernetes identities (quantlib.platform.kubeusers), checked as data.

There is no Kubernetes API here: what the hub would apply for each user is generated,
validated against the Kubernetes schemas (kubernetes-validate, strict), and checked
for what makes it an identity of its own: names, namespace, rules, the binding's only
subject, the IAM role's trust (only that account's token) and the owner label that the
admission policy compares; and that nothing generated for alice names or reaches bob.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from quantlib.cluster import REQUIRED_PERMISSIONS, make_cluster_spec
from quantlib.errors import ConfigError
from quantlib.platform import kubeusers
from quantlib.platform.cli import platform
from quantlib.platform.kubeusers import (
    DASK_RULES,
    OWNER_LABEL,
    iam_role,
    identity_manifests,
    load_identity_settings,
    user_slug,
)

ROOT = Path(__file__).parents[2]
K8S = ROOT / "hub-config" / "k8s"
SETTINGS = load_identity_settings()
USERS = ["alice", "bob", "Alice", "alice.smith@corp", "a-b", "a.b"]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("user", USERS)
def test_each_users_identity_is_valid_and_their_own(user: str) -> None:
    account, role, binding = identity_manifests(user, SETTINGS)
    slug = user_slug(user)
    for doc in (account, role, binding):
        kubernetes_validate.validate(doc, "1.31", strict=True)
        assert doc["metadata"]["name"] == f"ql-{slug}"
        assert doc["metadata"]["namespace"] == SETTINGS.namespace == "quantlib"
        assert doc["metadata"]["labels"][OWNER_LABEL] == slug
        assert doc["metadata"]["annotations"]["quantlib.io/hub-user"] == user
    assert account["kind"] == "ServiceAccount" and role["kind"] == "Role"
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == \
        f"arn:aws:iam::123456789012:role/quantlib-user-{slug}"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": f"ql-{slug}"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"ql-{slug}",
                                    "namespace": "quantlib"}]


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(verb, group, res) for rule in rules for group in rule["apiGroups"]
            for res in rule["resources"] for verb in rule["verbs"]}


def test_a_users_role_runs_dask_and_nothing_more() -> None:
    (_a, role, _b) = identity_manifests("alice", SETTINGS)
    granted = _granted(role["rules"])
    for verb, group, res in REQUIRED_PERMISSIONS:  # what quantlib.cluster.preflight asks
        assert (verb, group, res) in granted
    assert all("*" not in s for rule in role["rules"] for s in _strings(rule))
    groups = {g for _v, g, _r in granted}
    assert groups == {"", "kubernetes.dask.org"}  # no RBAC, no apps, no batch
    core = {r for _v, g, r in granted if g == ""}
    assert core == {"pods", "pods/status", "services", "pods/log"}  # no secrets, no exec
    assert not {v for v, g, _r in granted if g == ""} - {"get", "list", "watch"}
    shared = next(d for d in _docs(K8S / "rbac" / "dask-user.yaml") if d["kind"] == "Role")
    assert role["rules"] == shared["rules"] == list(DASK_RULES)  # one list of rules


@pytest.mark.parametrize(("a", "b"), [("alice", "bob"), ("alice", "Alice"), ("a-b", "a.b"),
                                      ("bob", "alice")])
def test_nothing_of_one_users_identity_reaches_anothers(a: str, b: str) -> None:
    mine, theirs = identity_manifests(a, SETTINGS), identity_manifests(b, SETTINGS)
    assert user_slug(a) != user_slug(b)
    their_names = {d["metadata"]["name"] for d in theirs}
    assert not their_names & {d["metadata"]["name"] for d in mine}
    assert not any(n in s for s in _strings(mine) for n in their_names)
    role_a, role_b = iam_role(a, SETTINGS), iam_role(b, SETTINGS)
    assert role_a["Arn"] != role_b["Arn"]
    theirs_prefix = f"users/{user_slug(b)}/"
    assert not any(theirs_prefix in s for s in _strings(role_a))
    # only a's own account token may assume a's IAM role
    condition = role_a["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"]
    sub = condition[f"{SETTINGS.oidc_provider}:sub"]
    assert sub == f"system:serviceaccount:quantlib:{mine[0]['metadata']['name']}"
    assert sub != f"system:serviceaccount:quantlib:{theirs[0]['metadata']['name']}"


def test_slugs_are_labels_and_refuse_empty_names() -> None:
    for user in USERS + ["x" * 80, "ÄÖÜ", "--"]:
        slug = user_slug(user)
        doc = identity_manifests(user, SETTINGS)[0]
        kubernetes_validate.validate(doc, "1.31", strict=True)
        assert len(f"ql-{slug}") <= 63 and len(f"quantlib-user-{slug}") <= 64
    assert len({user_slug(u) for u in USERS}) == len(USERS)
    with pytest.raises(ConfigError, match="must not be empty"):
        user_slug("")


def test_iam_role_reads_the_store_and_writes_its_own_prefix_only() -> None:
    role = iam_role("alice", SETTINGS)
    assert role["Tags"] == [{"Key": "quantlib-user", "Value": "alice"}]
    by_sid = {st["Sid"]: st for st in role["Policy"]["Statement"]}
    assert by_sid["ReadTheCuratedStore"]["Action"] == ["s3:GetObject"]
    writes = [st for st in role["Policy"]["Statement"]
              if set(st["Action"]) & {"s3:PutObject", "s3:DeleteObject"}]
    assert [st["Resource"] for st in writes] == ["arn:aws:s3:::quant-platform-store/users/alice/*"]
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"]["Federated"].endswith(f"oidc-provider/{SETTINGS.oidc_provider}")


def test_dask_pods_run_as_the_notebooks_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    account = identity_manifests("alice.smith@corp", SETTINGS)[0]["metadata"]
    monkeypatch.setenv("QUANTLIB_K8S_SERVICE_ACCOUNT", account["name"])
    monkeypatch.setenv("QUANTLIB_K8S_OWNER", account["labels"][OWNER_LABEL])
    monkeypatch.setenv("JUPYTERHUB_USER", "alice.smith@corp")
    spec = make_cluster_spec("small", "reg/quantlib:1", name="dask-alice")
    for part in ("worker", "scheduler"):
        assert spec["spec"][part]["spec"]["serviceAccountName"] == account["name"]
        assert spec["spec"][part]["metadata"]["labels"][OWNER_LABEL] == \
            account["labels"][OWNER_LABEL]
    assert spec["metadata"]["labels"][OWNER_LABEL] == account["labels"][OWNER_LABEL]
    monkeypatch.delenv("QUANTLIB_K8S_SERVICE_ACCOUNT")
    plain = make_cluster_spec("small", "reg/quantlib:1", name="dask-alice")
    assert "serviceAccountName" not in plain["spec"]["worker"]["spec"]


def test_admission_policy_compares_the_owner_with_the_calling_account() -> None:
    policy, binding = _docs(K8S / "rbac" / "dask-owner-policy.yaml")
    prefix = f"system:serviceaccount:{SETTINGS.namespace}:{SETTINGS.service_account_prefix}"
    (condition,) = policy["spec"]["matchConditions"]
    assert f"startsWith('{prefix}')" in condition["expression"]
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    # the user's slug is what follows the prefix: the same as the owner label it compares
    assert variables["user"] == f"request.userInfo.username.substring({len(prefix)})"
    username = prefix + identity_manifests("alice", SETTINGS)[0]["metadata"]["labels"][OWNER_LABEL]
    assert username[len(prefix):] == "alice"
    rules = policy["spec"]["matchConstraints"]["resourceRules"][0]
    assert set(rules["operations"]) == {"CREATE", "UPDATE", "DELETE"}
    assert {"daskclusters", "daskjobs"} <= set(rules["resources"])
    assert f"labels['{OWNER_LABEL}'] == variables.user" in policy["spec"]["validations"][0][
        "expression"]
    assert binding["spec"] == {"policyName": policy["metadata"]["name"],
                               "validationActions": ["Deny"]}


def test_hook_applies_the_identity_and_runs_the_pod_as_it(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    applied: list[dict[str, Any]] = []

    async def record(docs: list[dict[str, Any]], api: Any = None) -> None:
        applied.extend(docs)  # no Kubernetes API here: what would be applied, in order

    monkeypatch.setattr(kubeusers, "apply_manifests", record)
    spawner = SimpleNamespace(user=SimpleNamespace(name="bob"), namespace="default",
                              service_account=None, environment={"A": "1"}, extra_labels={},
                              automount_service_account_token=False)
    asyncio.run(kubeusers.pre_spawn_hook(spawner))
    assert applied == identity_manifests("bob", SETTINGS)
    assert [d["kind"] for d in applied] == ["ServiceAccount", "Role", "RoleBinding"]
    assert spawner.service_account == "ql-bob" and spawner.namespace == "quantlib"
    assert spawner.automount_service_account_token is True
    assert spawner.environment == {"A": "1", "QUANTLIB_K8S_SERVICE_ACCOUNT": "ql-bob",
                                   "QUANTLIB_K8S_OWNER": "bob"}
    assert spawner.extra_labels == {OWNER_LABEL: "bob"}


def test_values_install_the_hook_and_share_no_user_account() -> None:
    values = yaml.safe_load((K8S / "values" / "common.yaml").read_text())
    snippet = values["hub"]["extraConfig"]["quantlib-identities"]
    assert "c.KubeSpawner.pre_spawn_hook = pre_spawn_hook" in snippet
    exec(compile(snippet.splitlines()[0], "extraConfig", "exec"), {})  # the import resolves
    assert "serviceAccountName" not in values["singleuser"]
    accounts = {d["metadata"]["name"] for f in (K8S / "rbac").glob("*.yaml") for d in _docs(f)
                if d["kind"] == "ServiceAccount"}
    assert accounts == {"quantlib-scheduler"}  # no account shared by user pods


def test_cli_prints_the_committed_example_and_the_iam_role() -> None:
    runner = CliRunner()
    done = runner.invoke(platform, ["k8s-identity", "alice"])
    assert done.exit_code == 0, done.output
    assert list(yaml.safe_load_all(done.output)) == \
        _docs(K8S / "rendered" / "user-identity-example.yaml") == identity_manifests("alice")
    done = runner.invoke(platform, ["k8s-identity", "alice", "bob", "--iam"])
    assert done.exit_code == 0, done.output
    assert [r["RoleName"] for r in json.loads(done.output)] == ["quantlib-user-alice",
                                                                 "quantlib-user-bob"]


def test_settings_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "identity.yaml"
    raw = yaml.safe_load((K8S / "identity" / "identity.yaml").read_text())
    bad.write_text(yaml.safe_dump({**raw, "aws_account_id": "12345"}))
    with pytest.raises(ConfigError, match="aws_account_id"):
        load_identity_settings(bad)


def test_the_hub_may_create_identities_and_grant_nothing_it_lacks() -> None:
    docs = {d["kind"]: d for d in _docs(K8S / "rbac" / "hub-identities.yaml")}
    held = _granted(docs["Role"]["rules"])
    for doc in identity_manifests("alice", SETTINGS):  # apply_manifests: get, then create/patch
        group = doc["apiVersion"].rpartition("/")[0]
        resource = doc["kind"].lower() + "s"
        for verb in ("get", "create", "patch"):
            assert (verb, group, resource) in held, (verb, group, resource)
    assert _granted(list(DASK_RULES)) <= held  # RBAC refuses to grant what one lacks
    assert not any(v in {"escalate", "bind", "impersonate", "*"} for v, _g, _r in held)
    assert ("get", "", "secrets") not in held
    assert docs["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "hub",
                                                "namespace": SETTINGS.namespace}]
