"""A notebook's cluster in dask-labextension's list: real scheduler, real manager."""

from __future__ import annotations

import asyncio
import json

import pytest
from distributed import LocalCluster

from quantlib.errors import ClusterError
from quantlib.lab.clusters import ENV_VAR, LabClusterSync, register_cluster, unregister_cluster


def run_async(coro):
    """``asyncio.run`` on a fresh thread: the main thread may hold a running loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _scenario(folder):
    from dask_labextension.manager import DaskClusterManager

    manager = DaskClusterManager()
    sync = LabClusterSync(folder, manager, grace_s=0.0)
    async with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                            protocol="tcp://", asynchronous=True, host="127.0.0.1",
                            dashboard_address="127.0.0.1:0", memory_limit="512MiB") as cluster:
        path = register_cluster(cluster, environ={ENV_VAR: str(folder)})
        await sync.sync()
        listed = manager.list_clusters()
        assert len(listed) == 1
        model = listed[0]
        assert model["scheduler_address"] == cluster.scheduler_address
        assert model["workers"] == 1 and model["cores"] == 2
        assert model["id"] == json.loads(path.read_text())["id"]
        with pytest.raises(ClusterError, match="scaled from its notebook"):
            await manager.scale_cluster(model["id"], 3)
        manager._clusters[model["id"]] = sync.known[model["id"]]  # scale_cluster pops adaptives
        unregister_cluster(path)  # the kernel's client closed
        await sync.sync()
        assert manager.list_clusters() == []
    return True


def test_registered_cluster_is_listed_then_dropped(tmp_path):
    assert run_async(_scenario(tmp_path))


async def _gone(folder):
    from dask_labextension.manager import DaskClusterManager

    manager = DaskClusterManager()
    sync = LabClusterSync(folder, manager, grace_s=0.0)
    cluster = await LocalCluster(n_workers=0, processes=False, protocol="tcp://",
                                 asynchronous=True, dashboard_address=None, host="127.0.0.1")
    path = register_cluster(cluster, environ={ENV_VAR: str(folder)})
    await sync.sync()
    assert len(manager.list_clusters()) == 1
    # "Shutdown" in the sidebar terminates the scheduler and removes the registration
    await manager.close_cluster(path.stem)
    assert not path.exists()
    await asyncio.sleep(0.5)
    assert cluster.scheduler.status.name in ("closing", "closed")
    await cluster.close()
    # a registration whose scheduler is gone (killed kernel) is dropped on the next pass
    stale = register_cluster(cluster, environ={ENV_VAR: str(folder)})
    await sync.sync()
    assert manager.list_clusters() == [] and not stale.exists()
    return True


def test_sidebar_shutdown_stops_the_scheduler_and_dead_ones_are_dropped(tmp_path):
    assert run_async(_gone(tmp_path))


def test_connect_registers_only_inside_a_lab_server(tmp_path, monkeypatch):
    from quantlib.cluster import connect

    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with connect("local", max_workers=1, memory_limit="1GiB") as client:
        files = list(tmp_path.glob("*.json"))
        assert len(files) == 1
        assert json.loads(files[0].read_text())["scheduler_address"] == client.scheduler.address
    assert list(tmp_path.glob("*.json")) == []  # closing the client unregisters it
    monkeypatch.delenv(ENV_VAR)
    with connect("local", max_workers=1, memory_limit="1GiB"):
        assert list(tmp_path.glob("*.json")) == []
