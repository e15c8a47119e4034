"""The batched portfolio sweep (quantlib.backtest.batched) equals a loop of single runs
exactly, on one thread and on two; the numba constraints agree with plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from quantlib.backtest import run
from quantlib.backtest.batched import ma_crossover_portfolio, simulate_targets
from quantlib.backtest.constraints import Constraints, apply_constraints
from quantlib.backtest.engine import prepare_static
from quantlib.backtest.parallel import threads
from quantlib.backtest.settings import resolve_settings
from quantlib.backtest.strategies import get_strategy
from quantlib.backtest.sweep import sweep

MA_SETS = [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 60}, {"fast": 20, "slow": 40},
           {"fast": 3, "slow": 120}]
SETTINGS = [
    {"costs": "flat:10"},
    {"rebalance": "W"},  # default costs: square-root impact and borrow
    {"execution": "open", "rebalance": 5},
    {"long_only": False, "max_weight": 0.03, "gross_leverage": 0.8, "costs": "flat:5"},
]


def both(fn):
    """``fn()`` on one thread (serial kernel) and on two (parallel kernel)."""
    with threads(1):
        one = fn()
    with threads(2):
        two = fn()
    return one, two


def assert_single_runs(nets, turns, strategy, data, sets, settings):
    for j, p in enumerate(sets):
        res = run(strategy, data, **p, **settings)
        assert np.array_equal(nets[j], res.returns["net"].to_numpy()), (p, settings)
        assert np.array_equal(turns[j], res.returns["turnover"].to_numpy()), (p, settings)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(map(str, s.values())))
def test_ma_crossover_weights_built_in_the_kernel_equal_single_runs(panel, settings):
    """Three markets, holidays, listings and delistings (forced closes exercised)."""
    st = prepare_static(panel, resolve_settings(get_strategy("ma_crossover"), None,
                                                **settings))
    assert st["force_rows"].any() and st["universe"] is not None
    one, two = both(lambda: ma_crossover_portfolio(panel, MA_SETS, st))
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert np.abs(one[1]).sum() > 0  # the portfolios trade
    assert_single_runs(one[0], one[1], "ma_crossover", panel, MA_SETS, settings)


def test_targets_path_with_neutral_and_net_constraints_equals_single_runs(panel):
    """A strategy without a fused kernel: its (P, T, N) batch, then per-set universe mask,
    sector neutrality, max weight, gross and net leverage in the parallel kernel."""
    sets = [{"window": 60, "skip": 5, "quantile": 4, "long_short": True},
            {"window": 120, "skip": 21, "quantile": 5, "long_short": True}]
    settings = {"long_only": False, "neutral": "sector", "max_weight": 0.08,
                "gross_leverage": 1.5, "net_leverage": 0.02, "rebalance": "W"}
    strat = get_strategy("xs_momentum")
    st = prepare_static(panel, resolve_settings(strat, sets[0], **settings))
    raw = strat.batch(panel, sets)
    one, two = both(lambda: simulate_targets(raw, st))
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert_single_runs(one[0], one[1], "xs_momentum", panel, sets, settings)


def test_sweep_rows_equal_single_run_metrics_exactly(panel):
    grid = {"fast": [5, 10], "slow": [20, 60]}
    one, two = both(lambda: sweep("ma_crossover", grid, panel, rebalance="W"))
    assert one.attrs["n_tasks"] == 1  # the fused sweep needs no (P, T, N) batch memory
    cols = ["total_return", "sharpe", "max_drawdown", "sortino", "turnover_annual"]
    assert np.array_equal(one[cols].to_numpy(), two[cols].to_numpy(), equal_nan=True)
    for _, row in one.iterrows():
        res = run("ma_crossover", panel, fast=int(row.fast), slow=int(row.slow), rebalance="W")
        for key in cols:
            assert row[key] == res.metrics[key], key


def test_sweep_without_portfolio_func_equals_single_run_metrics_exactly(panel):
    """xs_momentum: its signals on the month-end decision rows only, as run() computes them."""
    grid = {"window": [60, 120], "skip": [5], "quantile": [4]}
    one, two = both(lambda: sweep("xs_momentum", grid, panel, costs="flat:10"))
    cols = ["total_return", "sharpe", "max_drawdown", "turnover_annual"]
    assert np.array_equal(one[cols].to_numpy(), two[cols].to_numpy(), equal_nan=True)
    for _, row in one.iterrows():
        res = run("xs_momentum", panel, window=int(row.window), skip=5, quantile=4,
                  costs="flat:10")
        for key in cols:
            assert row[key] == res.metrics[key], key


def numpy_constraints(w, c, groups=None):
    """The constraints in plain numpy (the formulas of the module docstring)."""
    w = np.nan_to_num(np.asarray(w, dtype=float)).copy()
    if c.long_only:
        w = np.maximum(w, 0.0)
    if c.neutral is not None:
        held = w != 0
        for g in np.unique(groups):
            cols = groups == g
            sub, h = w[:, cols], held[:, cols]
            n = h.sum(axis=1, keepdims=True)
            mu = np.where(n > 0, sub.sum(axis=1, keepdims=True) / np.maximum(n, 1), 0.0)
            w[:, cols] = np.where(h, sub - mu, 0.0)
    if c.max_weight is not None:
        w = np.clip(w, -c.max_weight, c.max_weight)
    if c.gross_leverage is not None:
        gross = np.abs(w).sum(axis=1, keepdims=True)
        w = np.where(gross > c.gross_leverage, w * c.gross_leverage / gross, w)
    if c.net_leverage is not None:
        long = np.where(w > 0, w, 0).sum(axis=1, keepdims=True)
        short = -np.where(w < 0, w, 0).sum(axis=1, keepdims=True)
        net = long - short
        excess = np.abs(net) - c.net_leverage
        with np.errstate(invalid="ignore", divide="ignore"):
            f_long = np.where((excess > 0) & (net > 0), (short + c.net_leverage) / long, 1.0)
            f_short = np.where((excess > 0) & (net < 0), (long + c.net_leverage) / short, 1.0)
        w = np.where(w > 0, w * f_long, w * f_short)
    return w


@pytest.mark.parametrize("c", [
    Constraints(),
    Constraints(long_only=True, gross_leverage=0.7, max_weight=0.2),
    Constraints(long_only=False, neutral="sector", max_weight=0.3, gross_leverage=2.0),
    Constraints(long_only=False, gross_leverage=None, net_leverage=0.5),
    Constraints(long_only=False, gross_leverage=1.0, net_leverage=0.1, neutral="market"),
], ids=str)
def test_numba_constraints_agree_with_plain_numpy(c):
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.3, (200, 37))
    w[rng.random(w.shape) < 0.1] = np.nan
    w[rng.random(w.shape) < 0.1] = 0.0
    w[:3, :3] = np.abs(w[:3, :3]) + 2.0  # rows where the long side dominates
    groups = np.array(list("abcab") * 7 + ["c", "a"])
    got = apply_constraints(w, c, groups)
    np.testing.assert_allclose(got, numpy_constraints(w, c, groups), rtol=1e-13, atol=1e-15)
    assert not np.isnan(got).any() and np.array_equal(np.isnan(w), np.isnan(w))  # input kept
