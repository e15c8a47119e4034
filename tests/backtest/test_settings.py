"""One settings resolution for run, sweep and walk-forward; parameter and cost coercion."""

from __future__ import annotations

import numpy as np
import pytest

from quantlib.backtest import run, sweep
from quantlib.backtest.costs import CostModel, resolve_costs
from quantlib.backtest.settings import Settings, resolve_settings, split_settings
from quantlib.errors import BacktestError, StrategyError


def test_resolution_order_platform_strategy_long_short_caller():
    assert resolve_settings() == Settings()
    assert resolve_settings("xs_momentum").rebalance == "M"      # strategy default
    assert resolve_settings("reversal").rebalance == "W"
    assert resolve_settings("xs_momentum", rebalance="D").rebalance == "D"  # caller wins
    ls = resolve_settings("xs_momentum", {"long_short": True})
    assert ls.long_only is False and ls.rebalance == "M"
    assert resolve_settings("xs_momentum", {"long_short": True}, long_only=True).long_only


def test_settings_are_typed_frozen_and_round_trip():
    s = resolve_settings("xs_momentum", periods_per_year="252", rebalance="21",
                         long_only="false", costs={"commission_bps": 2})
    assert (s.periods_per_year, s.rebalance, s.long_only) == (252, 21, False)
    assert isinstance(s.costs, CostModel) and s.costs.commission_bps == 2.0
    with pytest.raises(AttributeError):
        s.rebalance = "D"  # type: ignore[misc]
    assert resolve_settings(**s.as_params()) == s


@pytest.mark.parametrize(("kw", "match"), [
    ({"rebalance": "monthly"}, r"setting rebalance must be one of 'D', 'W', 'M', 'Q'"),
    ({"execution": "vwap"}, r"setting execution must be 'close' or 'open'.*vwap"),
    ({"periods_per_year": "abc"}, r"setting periods_per_year must be a number \(int\)"),
    ({"gross_leverage": "lots"}, r"setting gross_leverage must be a number"),
    ({"rebalnce": "M"}, r"unknown simulation setting; found rebalnce"),
])
def test_bad_settings_name_the_setting(kw, match):
    with pytest.raises(BacktestError, match=match):
        resolve_settings(**kw)


def test_split_settings():
    assert split_settings({"window": 1, "costs": None}) == ({"window": 1}, {"costs": None})


def test_run_sweep_and_walk_forward_share_the_resolution(small_panel):
    """Without settings, run and sweep of xs_momentum both rebalance monthly."""
    res = run("xs_momentum", small_panel, window=60, skip=5, quantile=3)
    assert res.params["rebalance"] == "M"
    table = sweep("xs_momentum", {"window": [60], "skip": [5], "quantile": [3]}, small_panel)
    assert table["sharpe"].iloc[0] == pytest.approx(res.metrics["sharpe"], abs=1e-12)
    daily = run("xs_momentum", small_panel, window=60, skip=5, quantile=3, rebalance="D")
    assert daily.metrics["turnover_annual"] > 2 * res.metrics["turnover_annual"]


def test_parameters_are_coerced_by_their_declared_type(small_panel):
    a = run("xs_momentum", small_panel, window="60", skip=5.0, quantile=3, costs=None)
    b = run("xs_momentum", small_panel, window=60, skip=5, quantile=3, costs=None)
    assert a.params["window"] == 60 and isinstance(a.params["window"], int)
    np.testing.assert_array_equal(a.returns["net"], b.returns["net"])
    with pytest.raises(StrategyError, match=r"parameter window must be a whole number \(int\); "
                                            r"found window='abc'.*Fix: pass e.g. window=252"):
        run("xs_momentum", small_panel, window="abc")
    with pytest.raises(StrategyError, match=r"parameter window must be a whole number"):
        run("xs_momentum", small_panel, window=60.5)
    with pytest.raises(StrategyError, match=r"parameter long_short must be True or False"):
        run("xs_momentum", small_panel, long_short="maybe")


def test_bare_number_costs_are_refused_with_both_spellings():
    with pytest.raises(BacktestError) as err:
        resolve_costs(10)
    msg = str(err.value)
    assert "costs='flat:10'" in msg and "costs={'commission_bps': 10}" in msg
    flat = resolve_costs("flat:10")
    assert flat == CostModel.flat(10) and flat.impact_coef == 0 and flat.linear_rate == 0.001
    assert resolve_costs({"commission_bps": 10}).linear_rate == pytest.approx(0.0015)
    assert resolve_settings().costs == resolve_costs("default")
    with pytest.raises(BacktestError, match="flat cost names its bps as a number"):
        resolve_costs("flat:ten")
