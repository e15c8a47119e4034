"""Array-batched sweeps: parity with single runs and with plain numpy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlib.backtest import run
from quantlib.backtest.kernels import long_flat_pnl
from quantlib.backtest.metrics import sweep_metrics_numpy
from quantlib.backtest.signals import rolling_mean_np
from quantlib.backtest.strategies import get_strategy
from quantlib.backtest.sweep import expand_grid, sweep
from quantlib.errors import BacktestError, StrategyError

GRID = {"fast": [5, 10, 20], "slow": [20, 40, 60]}


def test_portfolio_sweep_rows_equal_single_runs(small_panel):
    df = sweep("ma_crossover", GRID, small_panel, rebalance="W")
    assert len(df) == 8 and df.attrs["skipped"] == 1
    for _, row in df.iterrows():
        res = run("ma_crossover", small_panel, fast=int(row.fast), slow=int(row.slow),
                  rebalance="W")
        for key in ("total_return", "sharpe", "max_drawdown", "sortino", "turnover_annual"):
            assert row[key] == pytest.approx(res.metrics[key], rel=1e-10, abs=1e-14), key


def test_sweep_without_batch_function_loops(small_panel):
    df = sweep("xs_momentum", {"window": [40, 60], "skip": [0, 5], "quantile": [4]},
               small_panel, batch_size=1, full_metrics=False)
    assert df.attrs["n_tasks"] == 4
    res = run("xs_momentum", small_panel, window=60, skip=5, quantile=4)
    row = df[(df.window == 60) & (df.skip == 5)].iloc[0]
    assert row["sharpe"] == pytest.approx(res.metrics["sharpe"], rel=1e-10)
    assert set(df.columns) == {"window", "skip", "quantile", "total_return", "max_drawdown",
                               "sharpe"}


def test_per_asset_sweep_matches_plain_numpy(small_panel):
    df = sweep("ma_crossover", GRID, small_panel, per_asset=True, costs="flat:10")
    N = small_panel.sizes["asset"]
    assert len(df) == 8 * N
    close = small_panel["close"].ffill("date").values
    r = np.nan_to_num(small_panel["returns"].values)
    for fast, slow in [(5, 20), (20, 60)]:
        pos = (rolling_mean_np(close, fast) > rolling_mean_np(close, slow)).astype(float)
        ref = sweep_metrics_numpy(long_flat_pnl(pos, r, 0.001))
        got = df[(df.fast == fast) & (df.slow == slow)].sort_values("asset")
        np.testing.assert_allclose(got[["total_return", "max_drawdown", "sharpe"]].to_numpy(),
                                   ref, rtol=1e-9, atol=1e-12)


def test_grid_errors(small_panel):
    strat = get_strategy("ma_crossover")
    with pytest.raises(StrategyError, match="unknown parameter"):
        expand_grid(strat, {"fastt": [1]})
    with pytest.raises(BacktestError, match="no valid parameter set"):
        sweep("ma_crossover", {"fast": [50], "slow": [10]}, small_panel)
    sets, skipped = expand_grid(strat, [{"fast": 5, "slow": 10}, {"fast": 10, "slow": 5}])
    assert sets == [{"fast": 5, "slow": 10}] and skipped == 1


def test_fused_ma_metrics_equal_materialized_positions(small_panel):
    """The fused kernel (positions compared on the fly from one cumulative sum) gives the
    same numbers as materializing every (fast, slow) position array first."""
    import dataclasses

    from quantlib.backtest.sweep import run_batch

    strat = get_strategy("ma_crossover")
    assert strat.metrics_func is not None
    plain = dataclasses.replace(strat, metrics_func=None)
    sets, _ = expand_grid(strat, {"fast": [1, 3, 5, 17], "slow": [2, 20, 61, 250]})
    fused = run_batch(strat, small_panel, sets, per_asset=True, settings={"costs": "flat:10"})
    ref = run_batch(plain, small_panel, sets, per_asset=True, settings={"costs": "flat:10"})
    for rule in ("W", 7):  # a rebalance calendar: positions held between rebalances
        kw = {"costs": "flat:10", "rebalance": rule}
        pd.testing.assert_frame_equal(run_batch(strat, small_panel, sets, True, kw),
                                      run_batch(plain, small_panel, sets, True, kw),
                                      check_exact=True)
    assert small_panel["close"].isnull().any()  # listings/delistings: leading NaN windows
    assert list(fused.columns) == ["fast", "slow", "asset", "total_return", "max_drawdown",
                                   "sharpe"]
    pd.testing.assert_frame_equal(fused, ref, check_exact=True)
    assert fused["max_drawdown"].min() < -0.05 and fused["total_return"].std() > 0


def test_per_asset_sweep_on_a_rebalance_calendar_matches_plain_numpy(small_panel):
    from quantlib.backtest.constraints import rebalance_mask

    df = sweep("ma_crossover", {"fast": [5], "slow": [40]}, small_panel, per_asset=True,
               costs="flat:10", rebalance="M")
    daily = sweep("ma_crossover", {"fast": [5], "slow": [40]}, small_panel, per_asset=True,
                  costs="flat:10")
    close = small_panel["close"].ffill("date").values
    r = np.nan_to_num(small_panel["returns"].values)
    pos = (rolling_mean_np(close, 5) > rolling_mean_np(close, 40)).astype(float)
    month_end = rebalance_mask(small_panel["date"].values, "M")
    last = np.maximum.accumulate(np.where(month_end, np.arange(len(month_end)), -1))
    held = np.where(last[:, None] >= 0, pos[np.maximum(last, 0)], 0.0)  # decided at month ends
    ref = sweep_metrics_numpy(long_flat_pnl(held, r, 0.001))
    got = df.sort_values("asset")[["total_return", "max_drawdown", "sharpe"]].to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    assert not np.allclose(got, daily.sort_values("asset")[["total_return", "max_drawdown",
                                                             "sharpe"]].to_numpy())


def test_per_asset_sweep_rejects_portfolio_settings(small_panel):
    with pytest.raises(BacktestError, match=r"single-asset long/flat.*found max_weight=0.1.*"
                                            r"per_asset=False"):
        sweep("ma_crossover", GRID, small_panel, per_asset=True, max_weight=0.1)
    with pytest.raises(BacktestError, match="execution='open'"):
        sweep("ma_crossover", GRID, small_panel, per_asset=True, execution="open")
