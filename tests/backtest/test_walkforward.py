"""Walk-forward: folds, in-sample choice, stitched OOS returns, bootstrap CI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlib.backtest import run
from quantlib.backtest.sweep import sweep
from quantlib.backtest.walkforward import bootstrap_sharpe_ci, fold_bounds, walk_forward
from quantlib.errors import BacktestError

GRID = {"fast": [5, 10, 20], "slow": [40, 80]}


@pytest.mark.parametrize("mode", ["rolling", "expanding"])
def test_walk_forward_picks_in_sample_best_and_stitches_oos(panel, mode):
    wf = walk_forward("ma_crossover", GRID, panel, train=200, test=100, mode=mode,
                      rebalance="W", n_boot=300)
    assert len(wf.folds) == 4
    dates = pd.DatetimeIndex(panel["date"].values)
    for k, fold in wf.folds.iterrows():
        a, b, c, d = fold_bounds(len(dates), 200, 100, mode)[k]
        ins = sweep("ma_crossover", GRID, panel.isel(date=slice(a, b)), rebalance="W",
                    full_metrics=False)
        best = ins.loc[ins["sharpe"].idxmax()]
        assert fold["params"] == {"fast": int(best.fast), "slow": int(best.slow)}
        assert fold["test_start"] == dates[c] and fold["test_end"] == dates[d - 1]
        # the OOS piece equals a plain run on data up to the test end, sliced
        res = run("ma_crossover", panel.isel(date=slice(0, d)), rebalance="W", **fold["params"])
        np.testing.assert_allclose(wf.oos.returns["net"].iloc[k * 100:(k + 1) * 100],
                                   res.returns["net"].iloc[c:d], rtol=0, atol=1e-14)
    assert len(wf.oos.returns) == 400
    assert wf.oos.returns.index[0] == dates[200]
    lo, hi = wf.sharpe_ci
    assert lo < wf.oos.metrics["sharpe"] < hi
    assert wf.metrics["sharpe_ci_low"] == lo


def test_bootstrap_ci_covers_and_narrows():
    rng = np.random.default_rng(1)
    r = rng.normal(0.0005, 0.01, 4000)
    lo, hi = bootstrap_sharpe_ci(r, n_boot=2000)
    lo2, hi2 = bootstrap_sharpe_ci(r[:500], n_boot=2000)
    true = 0.0005 / 0.01 * np.sqrt(252)
    assert lo < true < hi
    assert (hi - lo) < (hi2 - lo2)


def test_fold_errors():
    with pytest.raises(BacktestError, match="windows must fit the sample"):
        fold_bounds(100, 90, 20)
    with pytest.raises(BacktestError, match="mode must be 'rolling' or 'expanding'"):
        fold_bounds(100, 50, 10, "anchored")


def test_walk_forward_uses_and_records_the_strategy_default_settings(panel):
    """xs_momentum rebalances monthly (its sim_defaults): in-sample, out-of-sample and in
    the record; each OOS segment equals ``run`` with the chosen parameters."""
    grid = {"window": [40, 80], "skip": [5]}
    wf = walk_forward("xs_momentum", grid, panel, train=200, test=100, n_boot=100)
    assert wf.oos.params["rebalance"] == "M"
    dates = pd.DatetimeIndex(panel["date"].values)
    month_end = pd.Series(dates.month, index=dates).diff().shift(-1).fillna(0).ne(0)
    for k, fold in wf.folds.iterrows():
        _, _, c, d = fold_bounds(len(dates), 200, 100)[k]
        res = run("xs_momentum", panel.isel(date=slice(0, d)), **fold["params"])
        assert res.params["rebalance"] == "M"
        np.testing.assert_allclose(wf.oos.returns["net"].iloc[k * 100:(k + 1) * 100],
                                   res.returns["net"].iloc[c:d], rtol=0, atol=1e-14)
    # trades only happen at month ends (plus forced delisting sales), never daily
    traded = wf.oos.returns["turnover"] > 1e-12
    assert traded.sum() <= month_end.loc[traded.index].sum() + 3
    assert traded.sum() < 0.2 * len(traded)
