"""Real adaptive LocalClusters: scale up under load, down when idle, idle shutdown."""

from __future__ import annotations

import time

import dask
import pytest
from distributed.core import Status

from quantlib.cluster import connect
from quantlib.errors import ClusterError


def _wait(predicate, timeout: float, step: float = 0.1) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise TimeoutError(f"condition not met within {timeout}s")


def _sleep_then(x: int) -> int:
    import time as _t

    _t.sleep(0.5)
    return x * x


@pytest.mark.slow
def test_adaptive_scales_up_to_max_then_down_to_zero() -> None:
    client = connect("local", min_workers=0, max_workers=2, memory_limit="512MiB",
                     interval="200ms", wait_count=3, target_duration="1s", timeout=60)
    try:
        scheduler = client.cluster.scheduler
        assert len(scheduler.workers) == 0  # min 0: nothing runs before there is work
        seen: list[int] = []
        futures = client.map(_sleep_then, range(24), pure=False)
        deadline = time.monotonic() + 90
        while not all(f.done() for f in futures) and time.monotonic() < deadline:
            seen.append(len(scheduler.workers))
            time.sleep(0.1)
        assert client.gather(futures) == [x * x for x in range(24)]
        assert max(seen) == 2  # scaled up to max_workers ...
        assert all(n <= 2 for n in seen)  # ... and never beyond it
        del futures  # results released: nothing left to keep workers for
        # idle: adaptive retires workers back down to min_workers=0
        _wait(lambda: len(scheduler.workers) == 0, timeout=60)
    finally:
        client.close()
    assert client.cluster.status == Status.closed  # the client owns its cluster


@pytest.mark.slow
def test_idle_scheduler_shuts_itself_down() -> None:
    # workers of a scheduler that is gone retry for `connect` seconds before closing, and so
    # does the cluster's adaptive loop (it would hold `client.close()` for the default 30 s):
    # the whole test, workers started later included, runs under the short timeout
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
        client = connect("local", min_workers=0, max_workers=1, memory_limit="512MiB",
                         idle_timeout="1.5s", timeout=60)
        try:
            scheduler = client.cluster.scheduler
            assert scheduler.idle_timeout == 1.5
            assert client.submit(_sleep_then, 3).result(timeout=60) == 9
            waited = _wait(lambda: scheduler.status in (Status.closing, Status.closed),
                           timeout=30)
            assert waited >= 1.0  # it waited for the idle timeout, not less
        finally:
            client.close()
    assert client.cluster.status == Status.closed


def test_dashboard_link_goes_through_the_hub_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    with dask.config.set({"distributed.dashboard.link": "{scheme}://{host}:{port}/status"}):
        with connect("local", min_workers=0, max_workers=1, memory_limit="512MiB") as client:
            port = client.cluster.scheduler.http_server.port
            assert client.dashboard_link == f"/user/alice/proxy/{port}/status"
            host, _ = client.scheduler.address.split("://")[1].rsplit(":", 1)
            assert host == "127.0.0.1"  # only loopback


def test_bad_bounds_and_kind_are_refused() -> None:
    with pytest.raises(ClusterError, match="found 3 > 1"):
        connect("local", min_workers=3, max_workers=1)
    with pytest.raises(ClusterError, match="found 'slurm'"):
        connect("slurm")
