"""Dask sweeps against REAL scheduler and worker processes (subprocesses on loopback).

One worker is killed with SIGKILL mid-sweep: the sweep must still finish with the
same numbers as the one-process sweep. A task that fails once is retried.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest
import xarray as xr

from quantlib.backtest import Param, register_strategy
from quantlib.backtest import signals as sg
from quantlib.backtest.strategies import STRATEGIES
from quantlib.backtest.sweep import sweep
from quantlib.platform.hubconfig import free_port

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("dask-logs")
    addr = f"tcp://127.0.0.1:{port}"
    procs = {"scheduler": subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"],
        stdout=open(log / "scheduler.log", "w"), stderr=subprocess.STDOUT)}
    for name in ("w1", "w2"):
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", addr, "--name", name,
             "--nthreads", "1", "--memory-limit", "1GiB", "--no-dashboard", "--no-nanny"],
            stdout=open(log / f"{name}.log", "w"), stderr=subprocess.STDOUT)
    client = distributed.Client(addr, timeout=60)
    client.wait_for_workers(2, timeout=120)
    try:
        yield client, procs
    finally:
        client.close()
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def _key(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["fast", "slow"]).reset_index(drop=True)


def test_sweep_on_real_workers_survives_a_killed_worker(cluster, panel):
    client, procs = cluster
    grid = {"fast": list(range(2, 42)), "slow": [60, 90]}
    expected = sweep("ma_crossover", grid, panel, rebalance="W", full_metrics=False)
    result: dict[str, pd.DataFrame] = {}
    errors: list[BaseException] = []

    def go() -> None:
        try:
            result["df"] = sweep("ma_crossover", grid, panel, client=client, batch_size=2,
                                 rebalance="W", full_metrics=False, retries=2)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=go)
    t.start()
    w1 = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "w1")
    deadline = time.time() + 120
    killed = False
    while time.time() < deadline and t.is_alive():
        if client.processing().get(w1):
            procs["w1"].kill()  # SIGKILL mid-task: no graceful hand-off
            killed = True
            break
        time.sleep(0.02)
    t.join(300)
    assert killed, "the sweep finished before a worker could be killed"
    assert not errors, errors
    df = result["df"]
    assert df.attrs["n_tasks"] == 40
    assert df.attrs["bytes_scattered"] > panel.nbytes  # the panel, once per worker
    pd.testing.assert_frame_equal(_key(df), _key(expected), rtol=1e-12)
    assert len(client.scheduler_info()["workers"]) == 1


def test_failed_task_is_retried(cluster, panel, tmp_path):
    client, _ = cluster
    marker = tmp_path / "failed-once"

    @register_strategy("test_flaky", params={"k": Param(5, "top k", 1, 50)}, replace=True)
    def flaky(data: xr.Dataset, k: int) -> xr.DataArray:
        """Fails the first time it runs anywhere (a transient error)."""
        if not Path(marker).exists():
            Path(marker).write_text("x")
            raise RuntimeError("transient failure")
        return sg.equal_weight(sg.top_k(sg.returns_over(data["returns"], 20)
                                        .where(data["in_universe"]), k))

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        df = sweep("test_flaky", {"k": [3, 5]}, panel, client=client, batch_size=1,
                   full_metrics=False, retries=2)
        assert marker.exists() and len(df) == 2
        assert df["sharpe"].notna().all()
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        STRATEGIES.pop("test_flaky")


def test_walk_forward_folds_on_the_cluster_match_local(cluster, small_panel):
    from quantlib.backtest.walkforward import walk_forward

    client, _ = cluster
    grid = {"fast": [5, 10], "slow": [30, 60]}
    local = walk_forward("ma_crossover", grid, small_panel, train=120, test=60, n_boot=100)
    remote = walk_forward("ma_crossover", grid, small_panel, train=120, test=60, n_boot=100,
                          client=client)
    assert local.folds["params"].tolist() == remote.folds["params"].tolist()
    pd.testing.assert_frame_equal(local.oos.returns, remote.oos.returns)


def test_panel_is_sent_once_per_dataset_and_resent_when_it_changes(cluster, small_panel):
    client, _ = cluster
    grid = {"fast": [3, 5, 8], "slow": [20, 40]}
    data = small_panel.copy(deep=True)
    first = sweep("ma_crossover", grid, data, client=client, per_asset=True, costs="flat:10")
    again = sweep("ma_crossover", grid, data, client=client, per_asset=True, costs="flat:10")
    assert first.attrs["bytes_scattered"] > data.nbytes * 0.5
    assert again.attrs["bytes_scattered"] == 0  # reused on the workers
    pd.testing.assert_frame_equal(first, again)
    changed = data.copy(deep=True)
    changed["close"][:, 0] = changed["close"][:, 0] * 2  # same shape, other content
    moved = sweep("ma_crossover", grid, changed, client=client, per_asset=True, costs="flat:10")
    assert moved.attrs["bytes_scattered"] > 0
    local = sweep("ma_crossover", grid, changed, per_asset=True, costs="flat:10")
    pd.testing.assert_frame_equal(moved, local)
