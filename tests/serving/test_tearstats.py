"""The tear sheet's relative statistics, cross-checked against empyrical-reloaded and quantstats.

Neither library is a runtime dependency: they pin the conventions (252 periods, zero
risk-free rate, sample standard deviations, empyrical's capture ratios) on a demo result
with a real benchmark column.
"""

from __future__ import annotations

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from quantlib.errors import ConfigError
from quantlib.serving.views.tearstats import (
    default_benchmark,
    equal_weight_index,
    market_index,
    relative_stats,
    return_distribution,
    rolling_beta,
    worst_drawdowns,
)
from quantlib.testing.demo import demo_result


@pytest.fixture(scope="module")
def rets() -> pd.DataFrame:
    return demo_result(seed=3, years=4, n_assets=12).returns


def test_relative_stats_match_empyrical(rets):
    net, bench = rets["net"], rets["benchmark"]
    s = relative_stats(net, bench)
    alpha, beta = ep.alpha_beta(net, bench)
    assert s["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert s["beta"] == pytest.approx(beta, rel=1e-9)
    assert s["information_ratio"] == pytest.approx(ep.excess_sharpe(net, bench) * np.sqrt(252),
                                                   rel=1e-9)
    assert s["tracking_error"] == pytest.approx(ep.annual_volatility(net - bench), rel=1e-9)
    assert s["up_capture"] == pytest.approx(ep.up_capture(net, bench), rel=1e-9)
    assert s["down_capture"] == pytest.approx(ep.down_capture(net, bench), rel=1e-9)
    assert s["correlation"] == pytest.approx(net.corr(bench), rel=1e-12)


def test_relative_stats_match_quantstats(rets):
    qs = pytest.importorskip("quantstats")
    net, bench = rets["net"], rets["benchmark"]
    greeks = qs.stats.greeks(net, bench, periods=252)
    assert relative_stats(net, bench)["beta"] == pytest.approx(float(greeks["beta"]), rel=1e-6)


def test_rolling_beta_matches_empyrical(rets):
    net, bench = rets["net"], rets["benchmark"]
    ours = rolling_beta(net, bench, window=126).dropna()
    theirs = ep.roll_beta(net, bench, window=126).dropna()
    assert len(ours) == len(theirs) == len(net) - 125
    assert np.allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-8)


def test_distribution_marks_match_empyrical(rets):
    hist, marks = return_distribution(rets["net"])
    assert int(hist["count"].sum()) == len(rets)
    assert marks["var"] == pytest.approx(ep.value_at_risk(rets["net"], 0.05), rel=1e-12)
    assert marks["cvar"] == pytest.approx(ep.conditional_value_at_risk(rets["net"], 0.05),
                                          rel=1e-12)


def test_worst_drawdowns_match_quantstats_and_max_drawdown(rets):
    qs = pytest.importorskip("quantstats")
    net = rets["net"]
    table = worst_drawdowns(net, n=5)
    assert table["depth"].iloc[0] == pytest.approx(ep.max_drawdown(net), rel=1e-12)
    assert (table["depth"].diff().dropna() >= 0).all()  # deepest first
    details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(net))
    deepest = details.sort_values("max drawdown").iloc[0]
    assert table["depth"].iloc[0] * 100 == pytest.approx(float(deepest["max drawdown"]), rel=1e-6)
    assert table["trough"].iloc[0] == pd.Timestamp(deepest["valley"])
    rec = table["recovery"].iloc[0]
    if pd.notna(rec):  # quantstats' "end" is the last day under water
        assert net.index[net.index.get_loc(rec) - 1] == pd.Timestamp(deepest["end"])


def _panel() -> xr.Dataset:
    dates = pd.bdate_range("2024-01-01", periods=3)
    return xr.Dataset(
        {"returns": (("date", "asset"), [[0.0, 0.0, 0.0], [0.1, 0.3, -0.2], [0.2, 0.1, 0.5]]),
         "close": (("date", "asset"), [[10.0, 20.0, 5.0], [11.0, 26.0, 4.0],
                                       [13.2, 28.6, 6.0]]),
         "shares_outstanding": (("date", "asset"), [[1.0, 2.0, 4.0]] * 3),
         "in_universe": (("date", "asset"), [[True, True, True], [True, True, False],
                                             [True, True, True]])},
        coords={"date": dates, "asset": ["A", "B", "C"]})


def test_catalog_indexes_by_hand():
    ds = _panel()
    assert equal_weight_index(ds).round(10).tolist() == [0.0, 0.2, round(0.8 / 3, 10)]
    # day 1: caps from day 0 (10, 40; C out of the universe) -> (10*0.1 + 40*0.3) / 50
    # day 2: caps from day 1 (11, 52, 16) -> (11*0.2 + 52*0.1 + 16*0.5) / 79
    mi = market_index(ds)
    assert mi.iloc[1] == pytest.approx(13.0 / 50)
    assert mi.iloc[2] == pytest.approx((2.2 + 5.2 + 8.0) / 79)


def test_default_benchmark_refuses_unknown_kind_and_catalog_without_selection(rets):
    with pytest.raises(ConfigError, match="tearsheet_benchmark must be one of"):
        default_benchmark({}, rets, "spx")
    with pytest.raises(ConfigError, match="needs the data selection the result read"):
        default_benchmark({}, rets[["net"]], "market")
    series, label = default_benchmark({}, rets, "auto")
    assert series.equals(rets["benchmark"]) and "stored" in label
