"""An adaptive :class:`distributed.LocalCluster` on loopback, dashboard behind the hub proxy.

Workers are separate processes (``processes=True``) so numpy kernels run in
parallel; the cluster adapts between ``min_workers`` and ``max_workers`` and its
scheduler closes itself after ``idle_timeout`` without work, which is how idle
clusters are culled on a laptop or inside a single-user server.
"""

from __future__ import annotations

import os
from typing import Any

import dask
from distributed import LocalCluster

from quantlib.errors import ClusterError

__all__ = ["start_local", "configure_dashboard_link", "ADAPT_KEYS"]

#: keyword arguments of ``connect`` forwarded to ``Cluster.adapt`` rather than the cluster
ADAPT_KEYS = ("interval", "wait_count", "target_duration")
_DEFAULT_LINK = "{scheme}://{host}:{port}/status"


def configure_dashboard_link(environ: dict[str, str] | None = None) -> str | None:
    """Point ``distributed.dashboard.link`` at jupyter-server-proxy inside a hub session.

    With ``JUPYTERHUB_SERVICE_PREFIX`` set (``/user/<name>/``) the dashboard of a
    cluster on loopback is reachable only through the single-user server's proxy,
    at ``/user/<name>/proxy/<port>/status``. A link the user configured is kept.

    Returns the link template now in effect, or ``None`` outside a hub session.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"distributed.dashboard.link": _DEFAULT_LINK}):
    ...     configure_dashboard_link({"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"})
    '{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status'
    """
    env = os.environ if environ is None else environ
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if not prefix:
        return None
    current = dask.config.get("distributed.dashboard.link")
    if current == _DEFAULT_LINK:
        # format_dashboard_link fills {JUPYTERHUB_SERVICE_PREFIX} from os.environ
        current = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
        dask.config.set({"distributed.dashboard.link": current})
    return current


def start_local(*, min_workers: int, max_workers: int, threads_per_worker: int,
                memory_limit: str, idle_timeout: str | float | None,
                adapt: dict[str, Any] | None = None, **kw: Any) -> LocalCluster:
    """Start an adaptive LocalCluster bound to 127.0.0.1.

    Parameters
    ----------
    min_workers, max_workers : int
        Adaptive bounds; with ``min_workers=0`` an idle cluster holds no workers.
    threads_per_worker : int
    memory_limit : str
        Per-worker memory limit (``"4GiB"``).
    idle_timeout : str or float or None
        The scheduler shuts down after this long without work (``"20 minutes"``).
    adapt : dict, optional
        Extra ``Adaptive`` options (``interval``, ``wait_count``, ``target_duration``).
    **kw
        Passed to :class:`distributed.LocalCluster`.

    Raises
    ------
    ClusterError
        If the cluster cannot start (the underlying reason is in ``found``).
    """
    configure_dashboard_link()
    scheduler_kwargs = dict(kw.pop("scheduler_kwargs", {}) or {})
    if idle_timeout:
        scheduler_kwargs["idle_timeout"] = idle_timeout
    options: dict[str, Any] = {
        "n_workers": min_workers, "threads_per_worker": threads_per_worker,
        "processes": True, "memory_limit": memory_limit, "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0", "scheduler_kwargs": scheduler_kwargs,
    }
    options.update(kw)
    try:
        cluster = LocalCluster(**options)
    except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
        raise ClusterError("a local Dask cluster must start", found=f"{type(exc).__name__}: {exc}",
                           fix="check free memory/ports, or lower max_workers") from exc
    cluster.adapt(minimum=min_workers, maximum=max_workers, **(adapt or {}))
    return cluster
