"""Kubernetes isolation as data: the results service is the only writer of the results
prefix, user pods read the curated store and nothing of results/, and the pieces agree.

``storage/results-bucket-policy.json`` is evaluated by a small S3 policy evaluator (explicit
Deny wins, then any Allow; ``*`` wildcards; ``ArnNotEquals``/``StringLike`` conditions),
cell by cell: principal x action x object.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantlib.platform.kubeusers import iam_role, identity_manifests

ROOT = Path(__file__).parents[2]
K8S = ROOT / "hub-config" / "k8s"
POLICY = json.loads((K8S / "storage" / "results-bucket-policy.json").read_text())
BUCKET = "arn:aws:s3:::quant-platform-store"
ROLE = "arn:aws:iam::123456789012:role/{}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


#: the tags IAM holds on each role (a user's role is tagged by quantlib.platform.kubeusers.iam_role)
TAGS: dict[str, dict[str, str]] = {}


def _resolve(pattern: str, principal: str) -> str | None:
    """``${aws:PrincipalTag/K}`` replaced by the principal's tag; None when it has none."""
    tags = TAGS.get(principal, {})
    for key in re.findall(r"\$\{aws:PrincipalTag/([^}]+)\}", pattern):
        if key not in tags:
            return None
        pattern = pattern.replace(f"${{aws:PrincipalTag/{key}}}", tags[key])
    return pattern


def _matches(value: str, patterns: Any, principal: str) -> bool:
    return any(p is not None and fnmatch.fnmatchcase(value, p)
               for p in (_resolve(q, principal) for q in _as_list(patterns)))


def _principal_matches(statement: dict[str, Any], principal: str) -> bool:
    spec = statement["Principal"]
    if spec == "*":
        return True
    return any(fnmatch.fnmatchcase(principal, p) for p in _as_list(spec["AWS"]))


def _condition_holds(statement: dict[str, Any], principal: str, prefix: str | None) -> bool:
    for op, tests in statement.get("Condition", {}).items():
        for key, expected in tests.items():
            if key == "aws:PrincipalArn":
                value = principal
            elif key == "s3:prefix":
                value = prefix
            elif key.startswith("aws:PrincipalTag/"):
                value = TAGS.get(principal, {}).get(key.split("/", 1)[1])
            else:
                raise AssertionError(f"unknown condition key {key}")
            if op == "Null":
                if (value is None) != (expected == "true"):
                    return False
                continue
            hit = value is not None and _matches(value, expected, principal)
            if op in ("ArnEquals", "ArnLike", "StringLike") and not hit:
                return False
            if op == "ArnNotEquals" and hit:
                return False
            if op not in ("ArnEquals", "ArnLike", "ArnNotEquals", "StringLike"):
                raise AssertionError(f"unknown condition operator {op}")
    return True


def _resource_matches(statement: dict[str, Any], resource: str, principal: str) -> bool:
    if "NotResource" in statement:
        return not _matches(resource, statement["NotResource"], principal)
    return _matches(resource, statement["Resource"], principal)


def allowed(principal: str, action: str, resource: str, prefix: str | None = None) -> bool:
    """S3's answer for one request under the bucket policy alone."""
    verdicts = set()
    for st in POLICY["Statement"]:
        if (_principal_matches(st, principal)
                and any(fnmatch.fnmatchcase(action, a) for a in _as_list(st["Action"]))
                and _resource_matches(st, resource, principal)
                and _condition_holds(st, principal, prefix)):
            verdicts.add(st["Effect"])
    return "Deny" not in verdicts and "Allow" in verdicts


def test_policy_is_well_formed() -> None:
    assert POLICY["Version"] == "2012-10-17"
    sids = [st["Sid"] for st in POLICY["Statement"]]
    assert len(sids) == len(set(sids))
    for st in POLICY["Statement"]:
        assert st["Effect"] in ("Allow", "Deny")
        assert set(st) <= {"Sid", "Effect", "Principal", "Action", "Resource", "NotResource",
                           "Condition"}
        assert ("Resource" in st) != ("NotResource" in st)
        for action in _as_list(st["Action"]):
            assert action.startswith("s3:")
        for res in _as_list(st.get("Resource", st.get("NotResource"))):
            assert res == BUCKET or res.startswith(BUCKET + "/")


WRITER, SCHEDULER = (ROLE.format(n) for n in ("quantlib-results-writer", "quantlib-scheduler"))
USER, BOB = (iam_role(name)["Arn"] for name in ("alice", "bob"))  # each user's own role
TAGS.update({iam_role(name)["Arn"]: {t["Key"]: t["Value"] for t in iam_role(name)["Tags"]}
             for name in ("alice", "bob")})
UNTAGGED = ROLE.format("quantlib-user-mallory")  # a user role created without its tag
OUTSIDER = "arn:aws:iam::123456789012:role/someone-else"
MATRIX = [  # principal, action, object key, allowed?
    (WRITER, "s3:PutObject", "results/objects/abc/meta.json", True),
    (WRITER, "s3:PutObject", "results/index/published.json", True),
    (WRITER, "s3:GetObject", "results/objects/abc/meta.json", True),
    (WRITER, "s3:GetObject", "curated/repo/config.yaml", True),
    (WRITER, "s3:PutObject", "curated/repo/config.yaml", False),
    (USER, "s3:PutObject", "results/objects/abc/meta.json", False),
    (USER, "s3:PutObject", "results/index/published.json", False),
    (USER, "s3:DeleteObject", "results/objects/abc/meta.json", False),
    (USER, "s3:GetObject", "results/objects/abc/meta.json", False),  # unpublished what-ifs too
    (USER, "s3:GetObject", "curated/repo/config.yaml", True),
    (USER, "s3:PutObject", "curated/repo/config.yaml", False),
    (USER, "s3:PutObject", "users/alice/objects/abc/meta.json", True),  # her own prefix
    (USER, "s3:GetObject", "users/alice/objects/abc/meta.json", True),
    (USER, "s3:DeleteObject", "users/alice/objects/abc/meta.json", True),
    (USER, "s3:GetObject", "users/bob/objects/abc/meta.json", False),  # bob's: nothing
    (USER, "s3:PutObject", "users/bob/objects/abc/meta.json", False),
    (USER, "s3:DeleteObject", "users/bob/objects/abc/meta.json", False),
    (USER, "s3:PutObject", "users/alice-x/objects/abc/meta.json", False),  # no prefix tricks
    (USER, "s3:PutObject", "elsewhere/file", False),
    (BOB, "s3:PutObject", "users/bob/objects/abc/meta.json", True),
    (BOB, "s3:GetObject", "users/alice/objects/abc/meta.json", False),
    (BOB, "s3:GetObject", "curated/repo/config.yaml", True),
    (UNTAGGED, "s3:GetObject", "curated/repo/config.yaml", False),
    (UNTAGGED, "s3:PutObject", "users/mallory/x", False),
    (SCHEDULER, "s3:PutObject", "curated/repo/config.yaml", True),
    (SCHEDULER, "s3:PutObject", "results/objects/abc/meta.json", False),
    (OUTSIDER, "s3:GetObject", "curated/repo/config.yaml", False),
    (OUTSIDER, "s3:PutObject", "results/objects/abc/meta.json", False),
]


@pytest.mark.parametrize(("principal", "action", "key", "expected"), MATRIX,
                         ids=[f"{p.rsplit('/', 1)[-1]}-{a}-{k}" for p, a, k, _ in MATRIX])
def test_bucket_policy_matrix(principal: str, action: str, key: str, expected: bool) -> None:
    assert allowed(principal, action, f"{BUCKET}/{key}") is expected


def test_listing_follows_the_same_split() -> None:
    assert allowed(WRITER, "s3:ListBucket", BUCKET, prefix="results/objects/")
    assert not allowed(USER, "s3:ListBucket", BUCKET, prefix="results/objects/")
    assert allowed(USER, "s3:ListBucket", BUCKET, prefix="curated/repo/")
    assert allowed(USER, "s3:ListBucket", BUCKET, prefix="users/alice/objects/")
    assert not allowed(USER, "s3:ListBucket", BUCKET, prefix="users/bob/objects/")
    assert not allowed(USER, "s3:ListBucket", BUCKET, prefix="users/")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_service_accounts_carry_the_roles_the_policy_names() -> None:
    accounts = {d["metadata"]["name"]: d for f in ("rbac/dask-user.yaml", "services/results-api.yaml")
                for d in _docs(K8S / f) if d["kind"] == "ServiceAccount"}
    for name, arn in (("quantlib-results-writer", WRITER), ("quantlib-scheduler", SCHEDULER)):
        assert accounts[name]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == arn
    for name, arn in (("alice", USER), ("bob", BOB)):  # users: their own account and role
        account = identity_manifests(name)[0]
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == arn
    # what the bucket policy grants a user is what their role's own policy grants
    own = iam_role("alice")["Policy"]["Statement"]
    for st in own:
        for res in _as_list(st["Resource"]):
            if st["Action"] != ["s3:ListBucket"]:
                assert all(allowed(USER, a, res.replace("*", "x")) for a in st["Action"]), st


def test_results_service_runs_as_the_writer_and_user_pods_publish_through_it() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs(K8S / "services" / "results-api.yaml")}
    pod = docs[("Deployment", "quantlib-results-api")]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "quantlib-results-writer"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "secretKeyRef" in env["JUPYTERHUB_API_TOKEN"]["valueFrom"]
    values = yaml.safe_load((K8S / "values" / "common.yaml").read_text())
    su = values["singleuser"]
    assert "serviceAccountName" not in su  # each user's own (quantlib.platform.kubeusers)
    assert su["extraEnv"]["QUANTLIB_RESULTS"].startswith("/home/jovyan/")  # own volume
    service_url = values["hub"]["services"]["results-api"]["url"]
    assert su["extraEnv"]["QUANTLIB_RESULTS_API"].startswith(service_url)
    port = int(service_url.rsplit(":", 1)[1])
    egress = su["networkPolicy"]["egress"]
    assert any(rule.get("to", [{}])[0].get("podSelector", {}).get("matchLabels") ==
               {"app.kubernetes.io/name": "quantlib-results-api"}
               and rule["ports"][0]["port"] == port for rule in egress)
    ingress = docs[("NetworkPolicy", "quantlib-results-api")]["spec"]["ingress"][0]
    assert {"component": "singleuser-server"} in [p["podSelector"]["matchLabels"]
                                                   for p in ingress["from"]]
