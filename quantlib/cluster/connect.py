"""``connect()``: one call for a Dask client, on a laptop or inside Kubernetes.

Choosing the backend (``kind``):

1. the ``kind`` argument, else the config's ``cluster.kind``;
2. ``"auto"`` means ``"kubernetes"`` when ``KUBERNETES_SERVICE_HOST`` is set (we are
   in a pod), ``"local"`` otherwise.

Bounds, threads, memory, idle timeout and start timeout default to the config's
``cluster.*`` section (local) or to the named profile (Kubernetes). The returned
client owns its cluster: closing the client (or leaving its ``with`` block) shuts
the cluster down.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from distributed import Client
from distributed.core import Status

from quantlib.cluster.local import ADAPT_KEYS, start_local
from quantlib.config import load_config
from quantlib.errors import ClusterError
from quantlib.lab.clusters import register_cluster, unregister_cluster

__all__ = ["connect", "resolve_kind", "ClusterClient"]

_KINDS = ("auto", "local", "kubernetes")


class ClusterClient(Client):
    """A :class:`distributed.Client` that closes the cluster it was made for.

    In a platform JupyterLab the cluster is also listed in the Dask sidebar while the
    client is open (:mod:`quantlib.lab.clusters`).
    """

    _lab_registration: Path | None = None

    def close(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        cluster = getattr(self, "cluster", None)
        scheduler = getattr(cluster, "scheduler", None)
        if getattr(scheduler, "status", None) in (Status.closing, Status.closed):
            # the scheduler shut itself down (idle timeout): do not spend the client's
            # reconnect timeout on a scheduler that is gone
            kwargs.setdefault("timeout", 2)
        try:
            return super().close(*args, **kwargs)
        finally:
            unregister_cluster(self._lab_registration)
            self._lab_registration = None
            cluster = getattr(self, "cluster", None)
            if cluster is not None:
                with suppress(Exception):
                    cluster.close()


def resolve_kind(kind: str | None = None, environ: dict[str, str] | None = None) -> str:
    """Pick ``"local"`` or ``"kubernetes"``.

    Examples
    --------
    >>> resolve_kind("auto", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    'kubernetes'
    >>> resolve_kind("auto", {})
    'local'
    >>> resolve_kind("yarn", {})
    Traceback (most recent call last):
    ...
    quantlib.errors.ClusterError: cluster kind must be one of auto, local, kubernetes; found 'yarn' [field=kind]. Fix: pass kind='local' or kind='kubernetes'
    """
    env = os.environ if environ is None else environ
    chosen = kind or load_config()["cluster"]["kind"]
    if chosen not in _KINDS:
        raise ClusterError("cluster kind must be one of " + ", ".join(_KINDS),
                           found=repr(chosen), fix="pass kind='local' or kind='kubernetes'",
                           field="kind")
    if chosen == "auto":
        return "kubernetes" if env.get("KUBERNETES_SERVICE_HOST") else "local"
    return chosen


def connect(kind: str | None = None, *, min_workers: int | None = None,
            max_workers: int | None = None, profile: str | None = None,
            timeout: float | None = None, **kw: Any) -> Client:
    """Start an adaptive Dask cluster and return a client connected to it.

    Parameters
    ----------
    kind : {"auto", "local", "kubernetes"}, optional
        Backend; default the config's ``cluster.kind`` (``"auto"``).
    min_workers, max_workers : int, optional
        Adaptive bounds; default ``cluster.min_workers/max_workers`` (local) or the
        profile's bounds (Kubernetes).
    profile : str, optional
        Kubernetes resource profile (``"small"``, ``"large"``); default
        ``QUANTLIB_CLUSTER_PROFILE`` (set by the hub's profile list), else ``cluster.profile``.
    timeout : float, optional
        Seconds to wait for the cluster before raising :class:`ClusterError`
        (default ``cluster.start_timeout_s``).
    **kw
        ``idle_timeout`` (scheduler idle shutdown, e.g. ``"20 minutes"``; seconds for
        Kubernetes), ``interval``/``wait_count``/``target_duration`` (adaptive
        tuning), ``image``/``namespace`` (Kubernetes); the rest goes to the cluster class.

    Raises
    ------
    ClusterError
        If the cluster cannot start, saying why (no kube config, operator CRDs not
        installed, missing permissions, timeout) and how to fix it.

    Examples
    --------
    >>> with connect("local", max_workers=1, memory_limit="1GiB") as client:
    ...     client.submit(sum, [1, 2, 3]).result()
    6
    """
    cfg = load_config()["cluster"]
    chosen = resolve_kind(kind)
    timeout = float(cfg["start_timeout_s"] if timeout is None else timeout)
    adapt = {k: kw.pop(k) for k in ADAPT_KEYS if k in kw}
    if chosen == "kubernetes":
        from quantlib.cluster.kube import start_kubernetes

        idle = kw.pop("idle_timeout", None)
        profile = profile or os.environ.get("QUANTLIB_CLUSTER_PROFILE") or cfg["profile"]
        cluster = start_kubernetes(profile=profile, min_workers=min_workers,
                                   max_workers=max_workers, timeout=timeout,
                                   idle_timeout_s=None if idle is None else int(idle), **kw)
    else:
        lo = cfg["min_workers"] if min_workers is None else min_workers
        hi = cfg["max_workers"] if max_workers is None else max_workers
        if lo > hi:
            raise ClusterError("min_workers must not exceed max_workers", found=f"{lo} > {hi}",
                               fix="lower min_workers or raise max_workers", field="min_workers")
        cluster = start_local(
            min_workers=lo, max_workers=hi,
            threads_per_worker=kw.pop("threads_per_worker", cfg["threads_per_worker"]),
            memory_limit=kw.pop("memory_limit", cfg["memory_limit"]),
            idle_timeout=kw.pop("idle_timeout", cfg["idle_timeout"]), adapt=adapt, **kw)
    try:
        client = ClusterClient(cluster, timeout=timeout)
    except Exception as exc:
        cluster.close()
        raise ClusterError("the client must reach the new cluster's scheduler",
                           found=f"{type(exc).__name__}: {exc}",
                           fix="raise timeout= or check the network policy") from exc
    client._lab_registration = register_cluster(cluster)
    return client
