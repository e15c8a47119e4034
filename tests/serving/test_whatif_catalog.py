"""What-if on a registered strategy run on catalog data, and the content address.

A result computed on ``quantlib.load_dataset(...)`` records its snapshot and the
selection it read (markets, dates, clock); the what-if rerun reads exactly that again.
"""

from __future__ import annotations

import numpy as np
import pytest

import quantlib
from quantlib.backtest import run
from quantlib.results import has_result, load_result
from quantlib.serving.views import whatif


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import os

    from quantlib.pipeline import refresh

    home = tmp_path_factory.mktemp("whatif-home")
    old = os.environ.get("QUANTLIB_HOME")
    os.environ["QUANTLIB_HOME"] = str(home)
    try:
        refresh(str(home / "store"), markets=["US", "KR"], sandbox=True, n_assets=12, years=2)
    finally:
        if old is None:
            os.environ.pop("QUANTLIB_HOME")
        else:
            os.environ["QUANTLIB_HOME"] = old
    return str(home / "store")


@pytest.mark.slow
def test_whatif_reruns_a_registered_strategy_on_its_catalog_selection(store, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("QUANTLIB_STORE", store)  # as the dashboards service has it
    results = str(tmp_path / "results")
    us = quantlib.load_dataset(store, markets=["US"], compute=True)
    base = run("xs_momentum", us, window=120, skip=5, quantile=4)
    assert base.provenance["data"]["markets"] == ["US"]
    rid = quantlib.publish(base, "momentum US", allowed_params={"window": {"min": 20,
                                                                           "max": 200}},
                           url=results)
    meta = load_result(rid, results).meta()
    assert meta["data"] == base.provenance["data"]

    spec = {"meta": meta, "changes": {"window": 60}, "user": "ann", "results_url": results}
    new_id = whatif.execute(spec)
    assert new_id != rid and has_result(new_id, results)
    rerun = load_result(new_id, results)
    direct = run("xs_momentum", quantlib.load_dataset(store, markets=["US"], compute=True,
                                                      snapshot=meta["snapshot"]),
                 window=60, skip=5, quantile=4)
    np.testing.assert_allclose(rerun.returns["net"].to_numpy(),
                               direct.returns["net"].to_numpy(), rtol=0, atol=1e-14)
    assert rerun.metrics["sharpe"] == pytest.approx(direct.metrics["sharpe"], abs=1e-12)
    assert whatif.execute(spec) == new_id  # identical request: served from the store


@pytest.mark.slow
def test_same_snapshot_other_selection_is_another_result(store):
    us = quantlib.load_dataset(store, markets=["US"], compute=True)
    both = quantlib.load_dataset(store, markets=["US", "KR"], compute=True)
    assert us.attrs["snapshot"] == both.attrs["snapshot"]
    a = run("reversal", us, window=5)
    b = run("reversal", both, window=5)
    assert a.result_id != b.result_id
