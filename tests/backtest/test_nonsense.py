"""Silent nonsense becomes a clear error or a QuantlibWarning naming cause and fix."""

from __future__ import annotations

import pytest
import xarray as xr

from quantlib.backtest import run, simulate
from quantlib.errors import BacktestError, QuantlibWarning


def test_quantile_larger_than_the_universe_warns(real_panel):
    with pytest.warns(QuantlibWarning, match=r"strategy 'xs_momentum' never holds anything: "
                      r"quantile=10 holds the top 1/10 of at most 5 assets a day, which is "
                      r"none; fix: pass quantile <= 5"):
        res = run("xs_momentum", real_panel, quantile=10, costs=None)
    assert (res.weights == 0).all().all()


def test_lookback_longer_than_the_data_warns(small_panel):
    n = small_panel.sizes["date"]
    with pytest.warns(QuantlibWarning, match=rf"window=400 looks back at least as far as the "
                      rf"data reaches \({n} sessions\); fix: pass window < {n}"):
        run("xs_momentum", small_panel, window=400, quantile=3)


def test_never_holding_anything_warns_for_plain_weights(small_panel):
    with pytest.warns(QuantlibWarning, match=r"strategy 'custom' never holds anything: its "
                      r"target weights are 0 on every rebalance row"):
        simulate(xr.zeros_like(small_panel["close"]), small_panel)


def test_a_working_backtest_does_not_warn(small_panel, recwarn):
    run("xs_momentum", small_panel, window=60, skip=5, quantile=3)
    assert not [w for w in recwarn if issubclass(w.category, QuantlibWarning)]


def test_a_date_range_with_no_data_is_an_error(real_panel):
    empty = real_panel.sel(date=slice("1990-01-01", "1990-12-31"))
    assert empty.sizes["date"] == 0
    with pytest.raises(BacktestError, match=r"backtest data must hold at least one session "
                       r"and one asset; found 0 dates x 5 assets.*Fix: choose start/end"):
        run("xs_momentum", empty)
