"""A dask-kubernetes operator ``KubeCluster`` that fails fast, with the reason and fix.

Before creating anything, :func:`preflight` asks the API server three questions,
each bounded by the caller's timeout:

1. is there a kube config or in-cluster service account at all?
2. are the operator's custom resources (``kubernetes.dask.org/v1``) installed?
3. may this identity create ``daskclusters`` and ``daskautoscalers`` and read pods
   in the namespace (``SelfSubjectAccessReview``)?

Only then is the cluster created from :func:`~quantlib.cluster.make_cluster_spec`,
again under the timeout, and put in adaptive mode.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from typing import Any

from quantlib.cluster.spec import make_cluster_spec
from quantlib.errors import ClusterError

__all__ = ["preflight", "start_kubernetes", "notebook_image", "REQUIRED_PERMISSIONS"]

#: (verb, API group, resource) a user pod needs to run its own Dask clusters
REQUIRED_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("create", "kubernetes.dask.org", "daskclusters"),
    ("create", "kubernetes.dask.org", "daskautoscalers"),
    ("patch", "kubernetes.dask.org", "daskworkergroups"),
    ("list", "", "pods"),
    ("get", "", "services"),
)
_RBAC_FIX = ("bind the single-user service account to the quantlib-dask-user Role "
             "(hub-config/k8s/rbac/dask-user.yaml)")


def notebook_image(environ: dict[str, str] | None = None) -> str | None:
    """The single-user server's own image (``JUPYTER_IMAGE_SPEC`` or ``JUPYTER_IMAGE``).

    Examples
    --------
    >>> notebook_image({"JUPYTER_IMAGE": "reg/quantlib:1"})
    'reg/quantlib:1'
    >>> notebook_image({}) is None
    True
    """
    env = os.environ if environ is None else environ
    return env.get("JUPYTER_IMAGE_SPEC") or env.get("JUPYTER_IMAGE") or None


def _run_bounded(fn: Any, timeout: float, what: str) -> Any:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantlib-k8s")
    future = pool.submit(fn)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise ClusterError(f"{what} must answer within the start timeout",
                           found=f"no answer after {timeout:g}s",
                           fix="check that the API server is reachable from this pod and the "
                               "dask-kubernetes operator is running (kubectl get pods -n "
                               "dask-operator), or raise timeout=") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


async def _check(namespace: str | None, kubeconfig: str | None) -> str:
    import httpx
    import kr8s

    try:
        api = await kr8s.asyncio.api(namespace=namespace, kubeconfig=kubeconfig)
    except (kr8s.ServerError, httpx.HTTPError, OSError) as exc:
        raise ClusterError("the Kubernetes API server must be reachable",
                           found=f"{type(exc).__name__}: {exc}",
                           fix="check KUBECONFIG / the pod's network policy to the API server"
                           ) from exc
    except Exception as exc:  # noqa: BLE001 - kr8s raises ValueError/OSError/... here
        raise ClusterError("a kube config or in-cluster service account is needed to start a "
                           "Kubernetes Dask cluster", found=f"{type(exc).__name__}: {exc}",
                           fix="run inside the hub's Kubernetes deployment, set KUBECONFIG, or "
                               "use kind='local'") from exc
    ns = namespace or api.namespace
    try:
        async with api.call_api("GET", version="kubernetes.dask.org/v1", base="/apis",
                                raise_for_status=False) as resp:
            status = resp.status_code
    except (httpx.HTTPError, OSError) as exc:
        raise ClusterError("the Kubernetes API server must be reachable",
                           found=f"{type(exc).__name__}: {exc}",
                           fix="check KUBECONFIG / the pod's network policy to the API server"
                           ) from exc
    if status == 404:
        raise ClusterError("the dask-kubernetes operator's custom resources must be installed",
                           found="API group kubernetes.dask.org/v1 not served (HTTP 404)",
                           fix="install the operator: helm install dask-operator "
                               "dask/dask-kubernetes-operator -n dask-operator --create-namespace "
                               "(see docs/deploy.md)")
    if status >= 400 and status not in (401, 403):
        raise ClusterError("the Kubernetes API server must answer discovery requests",
                           found=f"HTTP {status}", fix="check the API server's health")
    denied = []
    for verb, group, resource in REQUIRED_PERMISSIONS:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"namespace": ns, "verb": verb,
                                                  "group": group, "resource": resource}}}
        async with api.call_api("POST", version="authorization.k8s.io/v1", base="/apis",
                                url="selfsubjectaccessreviews", json=review,
                                raise_for_status=False) as resp:
            allowed = resp.status_code < 400 and bool(
                resp.json().get("status", {}).get("allowed"))
        if not allowed:
            denied.append(f"{verb} {resource}")
    if denied:
        raise ClusterError("this service account must be allowed to manage Dask clusters",
                           found="missing permissions: " + ", ".join(denied) + f" in namespace {ns}",
                           fix=_RBAC_FIX)
    return ns


def preflight(namespace: str | None = None, *, timeout: float = 30.0,
              kubeconfig: str | None = None) -> str:
    """Check kube config, operator CRDs and RBAC; return the namespace to use.

    Raises
    ------
    ClusterError
        Naming the missing piece (no kube config, CRDs not installed, missing
        permissions, API server not answering within ``timeout``) and its fix.
    """
    return _run_bounded(lambda: asyncio.run(_check(namespace, kubeconfig)), timeout,
                        "the Kubernetes API server")


def start_kubernetes(*, profile: str, min_workers: int | None, max_workers: int | None,
                     timeout: float, idle_timeout_s: int | None = None,
                     image: str | None = None, namespace: str | None = None,
                     kubeconfig: str | None = None, **kw: Any) -> Any:
    """Create an adaptive operator ``KubeCluster`` running the notebook's own image.

    Raises
    ------
    ClusterError
        From :func:`preflight`, when no image is known, or when the cluster does not
        come up within ``timeout`` seconds.
    """
    from quantlib.cluster.profiles import get_profile

    prof = get_profile(profile)
    image = image or notebook_image()
    if not image:
        raise ClusterError("the notebook's image must be known to start matching Dask workers",
                           found="neither JUPYTER_IMAGE_SPEC nor JUPYTER_IMAGE is set",
                           fix="pass image='registry/quantlib:<tag>'", field="image")
    ns = preflight(namespace, timeout=timeout, kubeconfig=kubeconfig)
    lo = prof["min_workers"] if min_workers is None else min_workers
    hi = prof["max_workers"] if max_workers is None else max_workers
    spec = make_cluster_spec(prof, image, n_workers=lo, idle_timeout_s=idle_timeout_s)

    def _create() -> Any:
        from dask_kubernetes.operator import KubeCluster

        cluster = KubeCluster(custom_cluster_spec=spec, namespace=ns, quiet=True,
                              resource_timeout=max(1, int(timeout)), shutdown_on_close=True, **kw)
        cluster.adapt(minimum=lo, maximum=hi)
        return cluster

    return _run_bounded(_create, timeout, "the Dask operator")
