"""Per-user Kubernetes identities: each hub user's pod and Dask pods run as their own account.

On Kubernetes (Zero-to-JupyterHub + KubeSpawner) every hub user ``NAME`` gets, in the
hub's namespace:

- a ServiceAccount ``<service_account_prefix><slug>`` annotated with the user's own IAM
  role ``arn:aws:iam::<account>:role/<role_prefix><slug>`` (IRSA), labelled
  ``quantlib.io/owner: <slug>``;
- a Role of the same name: what ``quantlib.cluster.connect`` needs to run Dask clusters
  through the operator (:data:`DASK_RULES`), and a RoleBinding of that Role to that
  account only.

:func:`pre_spawn_hook` applies them before each spawn and makes KubeSpawner run the pod
as that account; the pod's environment names it (``QUANTLIB_K8S_SERVICE_ACCOUNT``), so the
Dask scheduler and workers it starts run under the same identity
(:func:`quantlib.cluster.make_cluster_spec`). The ValidatingAdmissionPolicy in
``hub-config/k8s/rbac/dask-owner-policy.yaml`` refuses any change by a user's account to
a Dask resource whose ``quantlib.io/owner`` is not that user.

The IAM side (:func:`iam_role`): the role trusts only that ServiceAccount's token, is
tagged ``quantlib-user: <slug>``, and may read the curated store and read/write
``s3://<bucket>/<user_prefix><slug>/`` only; the bucket policy
(``hub-config/k8s/storage/results-bucket-policy.json``) says the same with
``${aws:PrincipalTag/quantlib-user}``. Settings: ``hub-config/k8s/identity/identity.yaml``.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantlib.errors import ConfigError
from quantlib.platform.settings import HUB_CONFIG_DIR
from quantlib.yamlfile import load_schema, load_yaml

__all__ = ["IdentitySettings", "load_identity_settings", "user_slug", "identity_manifests",
           "iam_role", "apply_manifests", "pre_spawn_hook", "DASK_RULES", "OWNER_LABEL",
           "IDENTITY_FILE"]

IDENTITY_FILE = HUB_CONFIG_DIR / "k8s" / "identity" / "identity.yaml"
OWNER_LABEL = "quantlib.io/owner"
ENV_VAR = "QUANTLIB_K8S_SERVICE_ACCOUNT"
_RBAC = "rbac.authorization.k8s.io"
#: what a user's account may do in the namespace: run Dask clusters through the operator
#: (the same rules as hub-config/k8s/rbac/dask-user.yaml's shared Role)
DASK_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": ["kubernetes.dask.org"],
     "resources": ["daskclusters", "daskworkergroups", "daskworkergroups/scale", "daskjobs",
                   "daskautoscalers"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods", "pods/status", "services"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
)


@dataclass(frozen=True)
class IdentitySettings:
    """Where the identities live and which AWS account, bucket and OIDC provider they use."""

    namespace: str
    service_account_prefix: str
    aws_account_id: str
    role_prefix: str
    bucket: str
    user_prefix: str
    oidc_provider: str


def load_identity_settings(path: str | Path | None = None) -> IdentitySettings:
    """Read and validate ``identity.yaml`` (default: the one in ``hub-config/k8s``).

    Examples
    --------
    >>> load_identity_settings().namespace
    'quantlib'
    """
    file = Path(path) if path else IDENTITY_FILE
    schema = load_schema(IDENTITY_FILE.with_name("identity.schema.json"))
    raw = load_yaml(file, schema, what="the Kubernetes identity settings")
    return IdentitySettings(**raw)


def user_slug(name: str) -> str:
    """A DNS-1123 label for hub user ``name``, distinct for distinct names.

    A name that is already a short lowercase label is kept; any other gets its cleaned
    form plus a hash of the original, so ``Alice`` and ``alice`` never share an identity.

    Examples
    --------
    >>> user_slug("alice")
    'alice'
    >>> user_slug("Alice.Smith@corp")
    'alice-smith-corp-03dd7c'
    >>> user_slug("alice") != user_slug("Alice")
    True
    """
    if not name:
        raise ConfigError("a hub user name must not be empty", found="''",
                          fix="name the user", field="user")
    if re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?", name):
        return name
    clean = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24].strip("-") or "user"
    return f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def _names(user: str, settings: IdentitySettings) -> tuple[str, str, str]:
    """(slug, ServiceAccount/Role name, IAM role ARN) of ``user``."""
    slug = user_slug(user)
    arn = f"arn:aws:iam::{settings.aws_account_id}:role/{settings.role_prefix}{slug}"
    return slug, f"{settings.service_account_prefix}{slug}", arn


def identity_manifests(user: str, settings: IdentitySettings | None = None
                       ) -> list[dict[str, Any]]:
    """The ServiceAccount, Role and RoleBinding of hub user ``user``.

    Examples
    --------
    >>> sa, role, binding = identity_manifests("alice")
    >>> sa["metadata"]["name"], sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    ('ql-alice', 'arn:aws:iam::123456789012:role/quantlib-user-alice')
    >>> binding["subjects"]
    [{'kind': 'ServiceAccount', 'name': 'ql-alice', 'namespace': 'quantlib'}]
    """
    settings = settings or load_identity_settings()
    slug, name, arn = _names(user, settings)
    meta: dict[str, Any] = {
        "name": name, "namespace": settings.namespace,
        "labels": {"app.kubernetes.io/part-of": "quantlib",
                   "app.kubernetes.io/component": "user-identity", OWNER_LABEL: slug},
        "annotations": {"quantlib.io/hub-user": user}}
    account: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount",
                               "metadata": copy.deepcopy(meta),
                               "automountServiceAccountToken": True}
    account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = arn
    role = {"apiVersion": f"{_RBAC}/v1", "kind": "Role", "metadata": copy.deepcopy(meta),
            "rules": copy.deepcopy(list(DASK_RULES))}
    binding = {"apiVersion": f"{_RBAC}/v1", "kind": "RoleBinding",
               "metadata": copy.deepcopy(meta),
               "roleRef": {"apiGroup": _RBAC, "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": name,
                             "namespace": settings.namespace}]}
    return [account, role, binding]


def iam_role(user: str, settings: IdentitySettings | None = None) -> dict[str, Any]:
    """The IAM role of ``user``: name, tags, trust policy and permissions (for review/apply).

    Examples
    --------
    >>> role = iam_role("alice")
    >>> role["RoleName"], role["Tags"]
    ('quantlib-user-alice', [{'Key': 'quantlib-user', 'Value': 'alice'}])
    >>> role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"][
    ...     "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub"]
    'system:serviceaccount:quantlib:ql-alice'
    """
    settings = settings or load_identity_settings()
    slug, name, arn = _names(user, settings)
    oidc = settings.oidc_provider
    bucket = f"arn:aws:s3:::{settings.bucket}"
    own = f"{settings.user_prefix}{slug}/"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": f"arn:aws:iam::{settings.aws_account_id}:oidc-provider/{oidc}"},
        "Condition": {"StringEquals": {
            f"{oidc}:sub": f"system:serviceaccount:{settings.namespace}:{name}",
            f"{oidc}:aud": "sts.amazonaws.com"}}}]}
    permissions = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadTheCuratedStore", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": f"{bucket}/curated/*"},
        {"Sid": "OwnResults", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": f"{bucket}/{own}*"},
        {"Sid": "ListTheCuratedStoreAndOwnResults", "Effect": "Allow",
         "Action": ["s3:ListBucket"], "Resource": bucket,
         "Condition": {"StringLike": {"s3:prefix": ["curated/*", f"{own}*"]}}}]}
    return {"RoleName": arn.rsplit("/", 1)[1], "Arn": arn,
            "Tags": [{"Key": "quantlib-user", "Value": slug}],
            "AssumeRolePolicyDocument": trust, "Policy": permissions}


async def apply_manifests(docs: list[dict[str, Any]], api: Any = None) -> None:
    """Create each object, or patch it to ``docs`` where it exists (kr8s, in-cluster)."""
    import kr8s.asyncio
    from kr8s.asyncio.objects import object_from_spec

    api = api or await kr8s.asyncio.api()
    for doc in docs:
        obj = await object_from_spec(copy.deepcopy(doc), api=api)
        if await obj.exists():
            await obj.patch({k: v for k, v in doc.items() if k not in ("apiVersion", "kind")})
        else:
            await obj.create()


async def pre_spawn_hook(spawner: Any) -> None:
    """KubeSpawner's ``pre_spawn_hook``: the user's identity, then their pod runs as it.

    Set in ``hub.extraConfig`` (values/common.yaml)::

        c.KubeSpawner.pre_spawn_hook = quantlib.platform.kubeusers.pre_spawn_hook
    """
    settings = load_identity_settings()
    docs = identity_manifests(spawner.user.name, settings)
    await apply_manifests(docs)
    name = docs[0]["metadata"]["name"]
    spawner.namespace = settings.namespace
    spawner.service_account = name
    spawner.automount_service_account_token = True
    slug = docs[0]["metadata"]["labels"][OWNER_LABEL]
    spawner.environment = {**spawner.environment, ENV_VAR: name, "QUANTLIB_K8S_OWNER": slug}
    spawner.extra_labels = {**spawner.extra_labels, OWNER_LABEL: slug}
