"""simulate/run: timing, drift, holidays, universe, delistings, costs, constraints, caching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from quantlib import __version__
from quantlib.backtest import CostModel, Param, register_strategy, run, simulate
from quantlib.backtest.kernels import simulate_kernel_numpy_reference
from quantlib.backtest.strategies import STRATEGIES
from quantlib.backtest.synthetic import make_dataset
from quantlib.errors import BacktestError, StrategyError
from quantlib.results import ResultStore


def tiny(returns: np.ndarray, **extra) -> xr.Dataset:
    T, N = returns.shape
    close = 100 * np.cumprod(1 + np.nan_to_num(returns), axis=0)
    close = np.where(np.isnan(returns), np.nan, close)
    dv = {"close": (("date", "asset"), close), "returns": (("date", "asset"), returns)}
    dv.update({k: (("date", "asset"), v) for k, v in extra.items()})
    return xr.Dataset(dv, coords={"date": pd.bdate_range("2024-01-01", periods=T),
                                  "asset": [f"A{i}" for i in range(N)],
                                  "sector": ("asset", ["x", "y"] * (N // 2) + ["x"] * (N % 2)),
                                  "market": ("asset", ["US"] * N)},
                      attrs={"snapshot": "tiny"})


def tw_like(ds: xr.Dataset, values) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, float), dims=("date", "asset"),
                        coords={"date": ds["date"], "asset": ds["asset"]})


def test_wrapper_matches_numpy_reference(small_panel):
    ds = small_panel.drop_vars(["in_universe"])
    ds = ds.assign(returns=ds["returns"].fillna(0.0), close=ds["close"].ffill("date").bfill(
        "date"))
    rng = np.random.default_rng(0)
    target = rng.random(ds["close"].shape)
    target /= target.sum(axis=1, keepdims=True)
    res = simulate(tw_like(ds, target), ds, rebalance="M", costs="flat:10")
    from quantlib.backtest.constraints import rebalance_mask

    w, net = simulate_kernel_numpy_reference(ds["returns"].values, target,
                                             rebalance_mask(ds["date"].values, "M"), 0.001)
    np.testing.assert_allclose(res.returns["net"].to_numpy(), net, rtol=0, atol=1e-13)
    np.testing.assert_allclose(res.weights.to_numpy(), w, rtol=0, atol=1e-13)


def test_weights_decided_at_t_earn_only_from_t_plus_1():
    r = np.array([[0.0, 0.0], [0.10, 0.0], [0.05, 0.0], [0.20, 0.0]])
    ds = tiny(r)
    target = np.zeros((4, 2))
    target[1:, 0] = 1.0  # decided at the close of day 1
    res = simulate(tw_like(ds, target), ds, costs=None)
    assert res.returns["net"].tolist() == pytest.approx([0.0, 0.0, 0.05, 0.20])
    res_open = simulate(tw_like(ds, target), ds.assign(open=ds["close"] * 1.01), costs=None,
                        execution="open")
    # trades at day 2's open (1.01 x day-2 close here), earns only open->close of day 2
    assert res_open.returns["net"].iloc[1] == 0.0
    assert res_open.returns["net"].iloc[2] == pytest.approx(1 / 1.01 - 1)
    assert res_open.returns["net"].iloc[3] == pytest.approx(0.20)


def test_weights_drift_between_rebalances():
    r = np.array([[0.0, 0.0], [0.10, -0.10], [0.10, -0.10], [0.0, 0.0]])
    ds = tiny(r)
    target = np.full((4, 2), 0.5)
    res = simulate(tw_like(ds, target), ds, costs=None, rebalance=10)  # only row 0
    w1 = np.array([0.55, 0.45]) / 1.0
    np.testing.assert_allclose(res.weights.iloc[1], w1)
    g2 = 0.55 * 0.1 - 0.45 * 0.1
    np.testing.assert_allclose(res.weights.iloc[2], [0.55 * 1.1 / (1 + g2),
                                                     0.45 * 0.9 / (1 + g2)])
    assert res.returns["turnover"].tolist() == pytest.approx([1.0, 0, 0, 0])


def test_holiday_carries_weight_and_blocks_trading():
    r = np.array([[0.0, 0.0], [0.01, np.nan], [0.02, 0.03], [0.0, 0.0]])
    ds = tiny(r)
    target = np.array([[0.5, 0.5], [0.5, 0.0], [0.5, 0.0], [0.5, 0.0]])
    res = simulate(tw_like(ds, target), ds, costs=None, long_only=True)
    # day 1: asset 1 has no bar -> earns nothing, cannot be sold; sold on day 2's close
    assert res.weights.iloc[1, 1] > 0
    assert res.returns["net"].iloc[2] == pytest.approx(
        res.weights.iloc[1, 0] * 0.02 + res.weights.iloc[1, 1] * 0.03)
    assert res.weights.iloc[2, 1] == 0.0
    assert np.isfinite(res.returns.to_numpy()).all()


def test_outside_universe_cannot_be_bought_and_delisting_closes():
    r = np.array([[0.0, 0.0], [0.01, 0.01], [0.01, 0.02], [0.01, np.nan], [0.01, np.nan]])
    uni = np.array([[True, False], [True, False], [True, True], [True, False],
                    [True, False]])
    ds = tiny(r, in_universe=uni)
    target = np.full((5, 2), 0.5)
    res = simulate(tw_like(ds, target), ds, costs=None)
    assert res.weights.iloc[0, 1] == 0.0 and res.weights.iloc[1, 1] == 0.0
    assert res.weights.iloc[2, 1] == 0.0  # bought on day 2? no: closed at its last bar
    assert res.weights.iloc[3:, 1].tolist() == [0.0, 0.0]
    assert np.isfinite(res.returns["net"]).all()


def test_delisted_holding_closed_at_last_price(panel):
    gone = ~panel["in_universe"].isel(date=-1).values & panel["close"].notnull().any("date").values
    assert gone.any()
    tw = xr.ones_like(panel["close"]) / panel.sizes["asset"]
    res = simulate(tw, panel, costs=None, rebalance="M")
    w = res.weights.to_numpy()
    close = panel["close"].values
    for i in np.nonzero(gone)[0]:
        last = np.nonzero(np.isfinite(close[:, i]))[0][-1]
        assert w[last, i] == 0.0 and (w[last:, i] == 0).all()
    assert np.isfinite(res.returns["net"]).all()


def test_flat_costs_and_cost_accounting():
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.01, (50, 4))
    ds = tiny(r)
    target = rng.random((50, 4))
    target /= target.sum(1, keepdims=True)
    free = simulate(tw_like(ds, target), ds, costs=None)
    paid = simulate(tw_like(ds, target), ds, costs="flat:10")
    np.testing.assert_allclose(paid.returns["costs"], 0.001 * paid.returns["turnover"])
    np.testing.assert_allclose(paid.returns["net"], (1 + paid.returns["gross"]) *
                               (1 - paid.returns["costs"]) - 1)
    np.testing.assert_allclose(free.returns["net"], free.returns["gross"])
    assert paid.metrics["total_return"] < free.metrics["total_return"]


def test_default_costs_include_impact_and_borrow(small_panel):
    tw = xr.ones_like(small_panel["close"]) / 12
    tw[:, :6] = -1 / 12
    base = simulate(tw, small_panel, long_only=False, costs=CostModel(impact_coef=0.0,
                                                                     borrow_bps_annual=0))
    impact = simulate(tw, small_panel, long_only=False, costs=CostModel(
        impact_coef=0.1, borrow_bps_annual=0, capital=1e9))
    borrow = simulate(tw, small_panel, long_only=False, costs=CostModel(
        impact_coef=0.0, borrow_bps_annual=100))
    assert impact.returns["costs"].sum() > base.returns["costs"].sum()
    extra = borrow.returns["costs"] - base.returns["costs"]
    short = -borrow.exposures["short"].shift(1).fillna(0.0)
    # borrow accrues on the short weight held into each session (drifted, before trading)
    assert extra.iloc[10:].sum() == pytest.approx((short.iloc[10:] * 0.01 / 252).sum(), rel=0.05)
    assert simulate(tw, small_panel).params["costs"]["impact_coef"] == 0.1  # default model


def test_constraints_are_applied():
    rng = np.random.default_rng(5)
    r = rng.normal(0, 0.01, (30, 6))
    ds = tiny(r)
    target = rng.normal(0, 1, (30, 6))
    lo = simulate(tw_like(ds, target), ds, costs=None, long_only=True, gross_leverage=1.0)
    assert (lo.weights.to_numpy() >= 0).all()
    assert (lo.exposures["gross"] <= 1 + 1e-12).all()
    ls = simulate(tw_like(ds, target), ds, costs=None, long_only=False, gross_leverage=2.0,
                  max_weight=0.3, neutral="sector")
    w = ls.weights.to_numpy()
    assert (np.abs(w) <= 0.3 + 1e-12).all() and (np.abs(w).sum(1) <= 2 + 1e-12).all()
    sectors = ds["sector"].values
    net_x = w[:, sectors == "x"].sum(1)
    assert np.abs(net_x).max() < 0.35  # neutral before the max-weight clip
    nl = simulate(tw_like(ds, np.abs(target)), ds, costs=None, long_only=False,
                  gross_leverage=None, net_leverage=0.5)
    assert (nl.exposures["net"] <= 0.5 + 1e-12).all()
    with pytest.raises(BacktestError, match="long-only portfolio cannot be market/sector"):
        simulate(tw_like(ds, target), ds, long_only=True, neutral="sector")


def test_multi_market_uses_base_currency_returns(panel):
    tw = xr.ones_like(panel["close"]) / panel.sizes["asset"]
    res = simulate(tw, panel, costs=None)
    local = simulate(tw, panel.drop_vars("returns_base"), costs=None)
    assert not np.allclose(res.returns["net"], local.returns["net"])
    assert np.isfinite(res.returns["net"]).all()


def test_impact_cost_uses_traded_value_in_base_currency(panel):
    """ADV is converted with fx_rate: the same panel quoted in a currency worth 1/1000 of
    the base (prices x1000, fx_rate /1000) pays the same impact; without fx_rate the
    local values are read as base currency and the impact shrinks by sqrt(1000 / fx) (at
    least sqrt(1000 / 1.5) ~ 26x: fx_rate < 1.5 for every currency of this panel)."""
    tw = xr.ones_like(panel["close"]) / panel.sizes["asset"]
    quoted = panel.assign(close=panel["close"] * 1000, open=panel["open"] * 1000,
                          fx_rate=panel["fx_rate"] / 1000)
    a = simulate(tw, panel, rebalance="M")
    b = simulate(tw, quoted, rebalance="M")
    np.testing.assert_allclose(b.returns["costs"], a.returns["costs"], rtol=1e-9)
    no_fx = simulate(tw, quoted.drop_vars("fx_rate"), rebalance="M")
    lin = CostModel().linear_rate * a.returns["turnover"]
    ratio = (a.returns["costs"] - lin).sum() / (no_fx.returns["costs"] - lin).sum()
    assert float(panel["fx_rate"].max()) < 1.5 and ratio > 25


def test_result_provenance_and_errors(small_panel):
    res = run("xs_momentum", small_panel, window=60, skip=5, quantile=4)
    p = res.provenance
    assert p["strategy"] == "xs_momentum" and len(p["source_hash"]) == 16
    assert p["snapshot"] == small_panel.attrs["snapshot"]
    assert p["quantlib_version"] == __version__
    assert res.params["window"] == 60 and res.params["rebalance"] == "M"
    assert set(res.metrics) >= {"sharpe", "max_drawdown", "avg_holdings"}
    with pytest.raises(StrategyError, match=r"unknown parameter.*found windo.*use one of"):
        run("xs_momentum", small_panel, windo=3)
    with pytest.raises(StrategyError, match="fast=50 >= slow=20"):
        run("ma_crossover", small_panel, fast=50, slow=20)
    with pytest.raises(StrategyError, match="strategy must be registered"):
        run("nope", small_panel)
    with pytest.raises(BacktestError, match="unknown simulation setting"):
        simulate(xr.zeros_like(small_panel["close"]), small_panel, rebal="M")


def test_run_cache_serves_identical_request_without_recomputation(small_panel, tmp_path):
    calls = []

    @register_strategy("counting_equal", params={"gross": Param(1.0, "", 0, 1)}, replace=True)
    def counting_equal(data, gross):
        calls.append(1)
        return xr.ones_like(data["close"]) * gross / data.sizes["asset"]

    try:
        url = ResultStore(str(tmp_path / "res"))
        with pytest.raises(BacktestError, match="cache must be a result cache"):
            run("counting_equal", small_panel, cache=str(tmp_path / "res"), gross=0.5)
        assert not calls
        a = run("counting_equal", small_panel, cache=url, gross=0.5)
        b = run("counting_equal", small_panel, cache=url, gross=0.5)
        assert len(calls) == 1
        pd.testing.assert_frame_equal(a.returns, b.returns)
        assert a.result_id == b.result_id
        run("counting_equal", small_panel, cache=url, gross=0.4)
        assert len(calls) == 2
        other = make_dataset(12, 320, seed=12, markets=("US",))
        run("counting_equal", other, cache=url, gross=0.5)  # another snapshot
        assert len(calls) == 3
    finally:
        STRATEGIES.pop("counting_equal")
