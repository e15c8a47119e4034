"""quantlib agrees with the plain-NumPy references of bench/references.py (the ones the
benchmarks time it against), on data with listings and delistings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from quantlib.backtest import run
from quantlib.backtest.metrics import sweep_metrics
from quantlib.backtest.sweep import sweep
from quantlib.backtest.synthetic import make_dataset

_spec = importlib.util.spec_from_file_location(
    "bench_references", Path(__file__).resolve().parents[2] / "bench" / "references.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


@pytest.fixture(scope="module")
def listed_panel():
    return make_dataset(150, 800, seed=4, markets=(), start="2000-01-03",
                        delist_fraction=0.3, list_fraction=0.3)


def test_w2_equals_the_vectorized_reference_with_delistings(listed_panel):
    ds = listed_panel
    res = run("xs_momentum", ds, window=252, skip=21, quantile=10, rebalance="M",
              costs="flat:10")
    uni = np.asarray(ds["in_universe"].values, bool)
    net = ref.w2_reference(ds["returns"].values, uni, ds["date"].values)
    got = res.returns["net"].to_numpy()
    assert (~uni[-1]).sum() > 0 and (res.exposures["n_holdings"] > 0).sum() > 400
    # delisted holdings are sold at their last close: the rule is the engine's, so the
    # series agree on every day, delisting days included
    np.testing.assert_allclose(got, net, rtol=0, atol=1e-10)
    held_at_delisting = (res.returns["costs"] > 0) & ~ref.month_ends(ds["date"].values)
    assert held_at_delisting.sum() >= 1  # a held asset was delisted between rebalances


def test_w1_sweep_equals_the_cached_means_reference(listed_panel):
    ds = listed_panel.isel(asset=slice(0, 40))
    pairs = [(5, 20), (10, 20), (20, 60), (5, 60)]
    df = sweep("ma_crossover", [{"fast": f, "slow": s} for f, s in pairs], ds,
               per_asset=True, costs="flat:10")
    close = ds["close"].ffill("date").values
    want = ref.w1_reference(close, np.nan_to_num(ds["returns"].values), pairs)
    got = df[["total_return", "max_drawdown", "sharpe"]].to_numpy().reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("order", ["C", "F"])
def test_w1m_metrics_equal_the_reference_in_both_layouts(order):
    r = np.random.default_rng(2).normal(0.0002, 0.01, (900, 300))
    x = np.asarray(r, order=order)
    np.testing.assert_allclose(sweep_metrics(x), ref.series_metrics(x), rtol=1e-9)
