"""ONE contract test over every registered strategy (built-ins and decorated ones)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from quantlib.backtest import Param, check_lookahead, get_strategy, register_strategy, run
from quantlib.backtest import signals as sg
from quantlib.backtest.strategies import STRATEGIES
from quantlib.errors import LookaheadError, StrategyError


@register_strategy("test_user_zscore", params={
    "window": Param(20, "lookback", 2, 500)}, replace=True)
def user_zscore(data, window):
    """A user strategy added with the decorator: long the 5 best z-scored 20d returns."""
    score = sg.cs_zscore(sg.rolling_sum(data["returns"], window, window // 2))
    return sg.equal_weight(sg.top_k(score.where(data["in_universe"]), 5))


SMALL = {"ma_crossover": {"fast": 5, "slow": 30}, "ts_momentum": {"window": 60, "skip": 5},
         "xs_momentum": {"window": 60, "skip": 5, "quantile": 5},
         "low_volatility": {"window": 20, "quantile": 5}}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_registered_strategy_honours_the_contract(name, panel):
    strat = get_strategy(name)
    params = SMALL.get(name, {})
    # documented parameters with defaults
    assert strat.doc, f"{name} needs a docstring"
    for key, p in strat.params.items():
        assert p.doc, f"{name}.{key} needs a doc string"
    assert set(strat.resolve_params({})) == set(strat.params)
    assert len(strat.source_hash) == 16
    w = strat.weights(panel, **params)
    assert w.dims == ("date", "asset") and w.shape == panel["close"].shape
    vals = w.values
    assert np.isfinite(vals).all()
    assert (np.abs(vals).sum(axis=1) <= 1 + 1e-9).all(), "gross <= 1 by default"
    assert np.abs(vals[-50:]).sum() > 0, "a strategy must take positions once warmed up"
    # never buys outside the PIT universe
    assert (vals[~panel["in_universe"].values] == 0).all()
    # only data known at the decision time
    report = check_lookahead(name, panel, n_cuts=3, seed=1, **params)
    assert report["ok"] and len(report["cuts"]) >= 1
    res = run(name, panel, **params)
    assert np.isfinite(res.returns["net"]).all()
    assert np.isfinite(res.metrics["sharpe"])
    assert res.provenance["strategy"] == name
    with pytest.raises(StrategyError, match="unknown parameter"):
        strat.resolve_params({"no_such_param": 1})
    if "long_short" in strat.params:
        ls = run(name, panel, long_short=True, **params)
        assert (ls.weights.to_numpy() < 0).any()


def test_a_leaking_strategy_is_caught_with_date_and_variable(panel):
    @register_strategy("test_leaky", params={}, replace=True)
    def leaky(data):
        """Peeks at tomorrow's return."""
        tomorrow = data["returns"].shift(date=-1)
        return sg.equal_weight(sg.top_k(tomorrow.where(data["in_universe"]), 5))

    try:
        with pytest.raises(LookaheadError) as info:
            check_lookahead("test_leaky", panel, n_cuts=2, seed=3)
        err = info.value
        assert err.context["field"] == "returns"
        msg = str(err)
        assert "must not depend on data after the decision" in msg
        assert "never shift(date=-n)" in msg
        # the first offending date is the cut itself (it reads the next row)
        assert err.context["date"] in [str(d)[:10] for d in panel["date"].values]
    finally:
        STRATEGIES.pop("test_leaky")


def test_leak_through_fundamentals_is_named(panel):
    @register_strategy("test_leaky_fund", params={}, replace=True)
    def leaky_fund(data):
        """Scales equity by its full-sample mean (a classic leak)."""
        eq = data["total_equity"] / data["total_equity"].mean("date")
        return sg.equal_weight(sg.top_k(eq.where(data["in_universe"]), 5))

    try:
        with pytest.raises(LookaheadError, match="total_equity"):
            check_lookahead("test_leaky_fund", panel, n_cuts=2)
    finally:
        STRATEGIES.pop("test_leaky_fund")


def _month_end_peek(data):
    """Legit 20-session momentum, except on month ends: tomorrow's return (a leak)."""
    from quantlib.backtest.constraints import rebalance_mask

    month_end = xr.DataArray(rebalance_mask(data["date"].values, "M"), dims="date",
                             coords={"date": data["date"]})
    score = xr.where(month_end, data["returns"].shift(date=-1),
                     sg.returns_over(data["returns"], 20))
    return sg.equal_weight(sg.top_k(score.where(data["in_universe"]), 5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_leak_only_on_month_end_decision_rows_is_caught(panel, seed):
    """Monthly rebalancing: every month-end decision row is cut, whatever the seed."""
    register_strategy("test_month_end_peek", params={}, sim_defaults={"rebalance": "M"},
                      replace=True)(_month_end_peek)
    try:
        with pytest.raises(LookaheadError) as info:
            check_lookahead("test_month_end_peek", panel, seed=seed)
        assert info.value.context["field"] == "returns"
        # daily rebalancing draws 100 of ~600 decision rows: caught as well
        with pytest.raises(LookaheadError):
            check_lookahead("test_month_end_peek", panel, seed=seed, rebalance="D")
    finally:
        STRATEGIES.pop("test_month_end_peek")


def test_strategies_cannot_read_the_back_adjusted_close(real_panel):
    """adj_close / close knows every later split and dividend: strategies never see it."""
    @register_strategy("test_adj_ratio", params={}, replace=True)
    def adj_ratio(data):
        """Holds the 2 assets whose adj_close / close is lowest (future splits ahead)."""
        return sg.equal_weight(sg.top_k(-(data["adj_close"] / data["close"]), 2))

    growth = (1 + real_panel["returns"].fillna(0.0)).cumprod("date")
    data = real_panel.assign(adj_close=(growth / growth.isel(date=-1)
                                        * real_panel["close"].ffill("date").isel(date=-1))
                             .where(real_panel["close"].notnull()))
    want = (r"strategies cannot read adj_close: it is back-adjusted with every split and "
            r"dividend up to the end of the panel.*Fix: use returns \(total return\) or close")
    try:
        with pytest.raises(StrategyError, match=want):
            check_lookahead("test_adj_ratio", data)
        with pytest.raises(StrategyError, match=want):
            run("test_adj_ratio", data)
    finally:
        STRATEGIES.pop("test_adj_ratio")


def test_value_and_quality_use_the_documented_formulas(panel):
    from quantlib.backtest.builtins import _book_to_price, _roe

    bp = _book_to_price(panel)
    i, t = 3, 400
    close = panel["close"].ffill("date").values[t, i]
    expect = panel["total_equity"].values[t, i] / (close * panel["shares_outstanding"].values[t, i])
    assert float(bp.values[t, i]) == pytest.approx(expect)
    roe = _roe(panel)
    assert float(roe.values[t, i]) == pytest.approx(
        panel["net_income"].values[t, i] / panel["total_equity"].values[t, i])
    w = get_strategy("value").weights(panel, quantile=5)
    held = w.values[t] > 0
    assert np.nanmin(bp.values[t][held]) >= np.nanmax(
        bp.where(panel["in_universe"]).values[t][~held & np.isfinite(bp.values[t])
                                                 & panel["in_universe"].values[t]])


def test_xs_momentum_holds_the_top_decile(panel):
    w = get_strategy("xs_momentum").weights(panel, window=60, skip=5, quantile=10)
    mom = sg.returns_over(panel["returns"], 60, 5).where(panel["in_universe"]).values
    t = 500
    held = w.values[t] > 0
    n_valid = np.isfinite(mom[t]).sum()
    assert held.sum() == n_valid // 10
    assert np.allclose(w.values[t][held], 1 / held.sum())
    assert mom[t][held].min() > np.nanmax(np.where(held, np.nan, mom[t]))


def test_xs_momentum_weights_equal_weight_with_xarray_ops(small_panel):
    a = get_strategy("xs_momentum").weights(small_panel, window=40, skip=5, quantile=4)
    assert isinstance(a, xr.DataArray) and a.name == "target_weights"
