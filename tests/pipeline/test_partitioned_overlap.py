"""The partitioned build starts a market's tasks as soon as that market is fetched (and
the build is known to be partitioned), while slower markets are still being fetched:
threaded and on a real (in-process) distributed cluster. Deterministic: the slow
market's fetch waits until the fast market's task has run, so a build that waited for
every fetch first would never finish (the wait's timeout fails the test)."""

from __future__ import annotations

import threading

import dask
import pandas as pd
import pytest

from quantlib.pipeline import build
from quantlib.pipeline.result import RefreshResult
from quantlib.raw import Delivery

T = pd.Timestamp("2024-01-02", tz="UTC")


def _deliveries(market: str, rows: int) -> list[Delivery]:
    return [Delivery("s", market, f"{market.lower()}/prices/2024010{i + 2}.csv",
                     "kr-ftp-csv", "a" * 64, 1, rows, T, "f", "") for i in range(2)]


# module state, not closures: an in-process cluster still pickles the graph's functions
# (module-level functions travel by reference, so the worker sees these objects)
_STATE: dict = {}


def _task(market: str, n: int) -> str:
    _STATE["started"].set()
    return f"{market}:{n}"


def _fetch(market, url, connection, fetch_id, retries=2):
    if market == "SLOW" and not _STATE["started"].wait(timeout=120):
        raise TimeoutError("the FAST market's task never ran while SLOW was fetched")
    _STATE["order"].append(market)
    return _deliveries(market, 100)


@pytest.fixture(autouse=True)
def state(monkeypatch):
    _STATE.update(started=threading.Event(), order=[])
    monkeypatch.setattr(build, "_fetch", _fetch)
    yield _STATE
    _STATE.clear()


@pytest.fixture(params=["threads", "client"])
def client(request):
    if request.param == "threads":
        yield None
        return
    from distributed import Client, LocalCluster

    # an HTTP server on a port of its own (``None`` still tries 8787 and warns)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      protocol="tcp://", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as c:
        yield c


def test_fast_market_tasks_run_while_slow_market_fetches(client, state):
    def tasks(market, deliveries):
        return [dask.delayed(_task, pure=False)(market, len(deliveries))]

    result = RefreshResult(refresh_id="r1", mode="full")
    fetched, done = build._fetch_and_fan_out(["SLOW", "FAST"], "unused", None, "r1", tasks,
                                             result, client, "threads", 0)
    assert state["order"] == ["FAST", "SLOW"]
    assert [[d.market for d in ds] for ds in fetched] == [["SLOW"] * 2, ["FAST"] * 2]
    assert done == [["SLOW:2"], ["FAST:2"]]     # in target order, not finish order
    assert result.seconds["fetch"] >= 0 and result.seconds["fan_out"] >= 0


def test_small_build_starts_nothing_and_returns_the_deliveries(client, state):
    ran: list[str] = []
    state["started"].set()

    def tasks(market, deliveries):
        ran.append(market)
        return []

    result = RefreshResult(refresh_id="r2", mode="full")
    # 2 markets x 2 files x 100 bars = 400 bars: below 401 nothing starts
    fetched, done = build._fetch_and_fan_out(["SLOW", "FAST"], "unused", None, "r2", tasks,
                                             result, client, "threads", 401)
    assert done is None and ran == []
    assert [len(ds) for ds in fetched] == [2, 2]
    # at 400 the second fetch crosses the limit: both markets start, the first one too
    fetched, done = build._fetch_and_fan_out(["SLOW", "FAST"], "unused", None, "r3", tasks,
                                             result, client, "threads", 400)
    assert sorted(ran) == ["FAST", "SLOW"] and done == [[], []]
