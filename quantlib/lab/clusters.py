"""Clusters started in notebooks appear in JupyterLab's Dask sidebar.

dask-labextension lists the clusters held by its server-side manager (those it started
itself). A cluster from ``quantlib.cluster.connect()`` lives in the notebook's kernel,
so the two sides meet through a folder:

- the kernel (:func:`register_cluster`) writes ``<folder>/<id>.json`` with the
  scheduler's address, the dashboard link (through jupyter-server-proxy) and a name, and
  removes it when the client closes (:func:`unregister_cluster`);
- the server (:class:`LabClusterSync`, started by :mod:`quantlib.lab.server`) polls the
  folder and keeps one :class:`RegisteredCluster` per file in dask-labextension's
  manager, so the sidebar's cluster list shows it and a click connects the dashboard
  panes. A scheduler that stops answering (closed, idle-timed-out, kernel killed) is
  dropped with its file. "Shutdown" in the sidebar terminates the scheduler.

The folder is announced to kernels by the server in ``QUANTLIB_LAB_CLUSTERS``; outside a
Jupyter server with the extension nothing is written.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

from quantlib.errors import ClusterError

__all__ = ["ENV_VAR", "register_cluster", "unregister_cluster", "RegisteredCluster",
           "LabClusterSync"]

#: set by the server extension: the folder where kernels register their clusters
ENV_VAR = "QUANTLIB_LAB_CLUSTERS"


def register_cluster(cluster: Any, *, environ: dict[str, str] | None = None) -> Path | None:
    """Announce ``cluster`` to the Jupyter server's Dask sidebar; its file, or ``None``.

    Examples
    --------
    >>> import tempfile
    >>> from types import SimpleNamespace
    >>> folder = tempfile.mkdtemp()
    >>> fake = SimpleNamespace(scheduler_address="tcp://127.0.0.1:1",
    ...                        dashboard_link="/user/a/proxy/2/status", name="x")
    >>> path = register_cluster(fake, environ={ENV_VAR: folder})
    >>> json.loads(path.read_text())["scheduler_address"]
    'tcp://127.0.0.1:1'
    >>> register_cluster(fake, environ={}) is None
    True
    """
    env = os.environ if environ is None else environ
    folder = env.get(ENV_VAR)
    if not folder:
        return None
    cluster_id = str(uuid.uuid4())
    info = {"id": cluster_id, "scheduler_address": cluster.scheduler_address,
            "dashboard_link": getattr(cluster, "dashboard_link", "") or "",
            "name": f"{type(cluster).__name__} ({os.getpid()})",
            "pid": os.getpid(), "registered_at": time.time()}
    path = Path(folder) / f"{cluster_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)
    return path


def unregister_cluster(path: Path | None) -> None:
    """Remove a registration written by :func:`register_cluster` (if any)."""
    if path is not None:
        with suppress(FileNotFoundError):
            path.unlink()


class RegisteredCluster:
    """What dask-labextension's manager needs of a cluster living in a kernel."""

    def __init__(self, info: dict[str, Any], path: Path) -> None:
        self.info, self.path = info, path
        self.scheduler_address: str = info["scheduler_address"]
        self.dashboard_link: str = info.get("dashboard_link", "")
        self.scheduler_info: dict[str, Any] = {"workers": {}}
        self.last_seen = time.monotonic()

    async def refresh(self, timeout: float = 3.0) -> bool:
        """Ask the scheduler who it is and which workers it has; ``False`` if it is gone."""
        from distributed.core import rpc

        try:
            async with rpc(self.scheduler_address, timeout=timeout) as r:
                self.scheduler_info = await r.identity()
        except Exception:  # noqa: BLE001 - any failure means "not answering now"
            return False
        self.last_seen = time.monotonic()
        return True

    async def close(self) -> None:
        """The sidebar's "Shutdown": stop the scheduler (its kernel's client sees it close)."""
        from distributed.core import rpc

        with suppress(Exception):
            async with rpc(self.scheduler_address, timeout=3) as r:
                await r.terminate()
        unregister_cluster(self.path)

    def scale(self, n: int) -> None:
        """Scaling is the notebook's job (its adaptive bounds live there)."""
        raise ClusterError("a notebook's cluster must be scaled from its notebook",
                           found=f"scale({n}) from the Dask sidebar",
                           fix="call client.cluster.adapt(minimum=..., maximum=...) in the notebook")

    adapt = scale


class LabClusterSync:
    """Keep dask-labextension's manager in step with the registrations in ``folder``."""

    def __init__(self, folder: str | Path, manager: Any, *, grace_s: float = 10.0) -> None:
        self.folder, self.manager, self.grace_s = Path(folder), manager, grace_s
        self.known: dict[str, RegisteredCluster] = {}

    def _add(self, path: Path) -> None:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # being written, or not ours
        cluster = RegisteredCluster(info, path)
        self.known[info["id"]] = cluster
        self.manager._clusters[info["id"]] = cluster
        self.manager._cluster_names[info["id"]] = info.get("name") or "notebook cluster"

    def _drop(self, cluster_id: str) -> None:
        cluster = self.known.pop(cluster_id)
        self.manager._clusters.pop(cluster_id, None)
        self.manager._cluster_names.pop(cluster_id, None)
        unregister_cluster(cluster.path)

    async def sync(self) -> None:
        """One pass: add new registrations, refresh known ones, drop the gone."""
        files = {p.stem: p for p in self.folder.glob("*.json")} if self.folder.is_dir() else {}
        for cluster_id in [c for c in self.known if c not in files]:
            self._drop(cluster_id)
        for cluster_id, path in files.items():
            if cluster_id not in self.known:
                self._add(path)
        for cluster_id, cluster in list(self.known.items()):
            if cluster_id not in self.manager._clusters:  # shut down from the sidebar
                self.known.pop(cluster_id)
                continue
            if not await cluster.refresh() and \
                    time.monotonic() - cluster.last_seen > self.grace_s:
                self._drop(cluster_id)
