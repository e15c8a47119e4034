"""The per-market fan-out on a real distributed cluster (scheduler + worker processes).

The partitioned first build on a cluster is tested in test_partitioned.py; this one runs
the one-task-per-market path (``partitioned=False``, also what ``full=True`` takes on a
store with data)."""

from __future__ import annotations

import pytest

from quantlib.pipeline import refresh
from quantlib.store import CuratedStore

pytestmark = pytest.mark.slow


def test_refresh_on_local_cluster(tmp_path, sandbox):
    from distributed import Client, LocalCluster, get_task_stream

    store = str(tmp_path / "store")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as ts:
            result = refresh(store, connection=sandbox.connection(), client=client,
                             markets=("US", "EU"), partitioned=False)
        workers = {t["worker"] for t in ts.data if t["key"].startswith(result.refresh_id)}
        keys = {t["key"] for t in ts.data}
    assert {f"{result.refresh_id}-{m}" for m in ("US", "EU", "FX")} <= keys
    assert workers and all(w.startswith("tcp://127.0.0.1") for w in workers)
    st = CuratedStore(store)
    assert st.resolve(None) == result.snapshot_id
    truth = sandbox.universe
    us = truth.prices[truth.prices["asset_id"].isin(truth.market_assets("US")["asset_id"])]
    assert float(st.open_prices("US")["close"].sum()) == pytest.approx(us["close"].sum())
