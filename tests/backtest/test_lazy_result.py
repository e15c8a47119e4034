"""What simulate keeps: no (T, N) weights until read (then exactly the kernel's), metrics on
first access, the XXH64 data hash, and the decision-row signal path of the built-ins."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr

from quantlib.backtest import run, simulate
from quantlib.backtest import signals as sg
from quantlib.backtest.engine import kernel_args, prepare_static
from quantlib.backtest.kernels import last_bar_rows, simulate_kernel, xxh64
from quantlib.backtest.metrics import summary
from quantlib.backtest.settings import resolve_settings
from quantlib.backtest.strategies import select, select_rows
from quantlib.errors import BacktestError


def _momentum(panel: xr.Dataset):
    return run("xs_momentum", panel, window=60, skip=5, quantile=5, costs="flat:10")


def test_weights_are_computed_on_first_read_and_equal_the_kernels(panel):
    res = _momentum(panel)
    assert "weights" not in res.__dict__ and res.n_assets == panel.sizes["asset"]
    assert res.meta()["n_assets"] == panel.sizes["asset"] and "weights" not in res.__dict__
    s = resolve_settings(rebalance="M", costs="flat:10")
    from quantlib.backtest.engine import strategy_weights
    from quantlib.backtest.strategies import get_strategy

    strat = get_strategy("xs_momentum")
    full = strat.resolve_params({"window": 60, "skip": 5, "quantile": 5})
    tw = strategy_weights(strat, panel, full, s)
    eager = simulate_kernel(*kernel_args(np.asarray(tw.values, float), prepare_static(panel, s)))
    w = res.weights
    assert w.shape == panel["close"].shape and w.index.name == "date"
    assert np.array_equal(w.to_numpy(), eager[0])  # bit-identical to the eager kernel
    assert np.array_equal(res.exposures["n_holdings"].to_numpy(), eager[5][:, 2])
    assert res.weights is w  # computed once


def test_metrics_on_first_read_equal_summary(panel):
    res = _momentum(panel)
    assert "metrics" not in res.__dict__
    want = summary(res.returns["net"], turnover=res.returns["turnover"],
                   exposures=res.exposures)
    got = res.metrics
    assert got.keys() == want.keys()
    assert all(got[k] == want[k] or (got[k] != got[k] and want[k] != want[k]) for k in want)
    res.metrics = {"sharpe": 1.0}  # assignment still replaces them
    assert res.metrics == {"sharpe": 1.0}


def test_weights_refused_after_the_data_was_edited_in_place(panel):
    ds = panel.copy(deep=True)
    res = _momentum(ds)
    ds["returns"].values[100, 3] = 0.5  # edited in place after the run
    with pytest.raises(BacktestError, match="edited in place"):
        _ = res.weights
    ds2 = panel.copy(deep=True)
    res2 = _momentum(ds2)
    ds2["returns"] = ds2["returns"] * 2  # replaced, not edited: the run's arrays are intact
    assert np.array_equal(res2.weights.to_numpy(), _momentum(panel).weights.to_numpy())


def test_a_pickled_result_carries_its_weights_and_metrics(panel):
    res = _momentum(panel)
    back = pickle.loads(pickle.dumps(res))
    assert np.array_equal(back.weights.to_numpy(), res.weights.to_numpy())
    assert back.metrics["n_periods"] == res.metrics["n_periods"]


def test_simulate_keeps_weights_lazy_for_custom_targets(small_panel):
    tw = small_panel["close"] * 0 + 1.0 / small_panel.sizes["asset"]
    res = simulate(tw, small_panel, costs=None)
    assert "weights" not in res.__dict__
    assert res.weights.shape == small_panel["close"].shape


def test_xxh64_is_the_reference_algorithm():
    # values from the reference implementation (xxhash.xxh64_intdigest), seeds 0 and 2**40+7
    want = {0: (0xEF46DB3751D8E999, 0x822B162612CB1D4F), 3: (0xE5C7BB4533BC65DD, 0x8E9778616480A6B9),
            8: (0x884A173614B81B8D, 0x1AD2500CBA2EE3C2), 31: (0xC346D2B59B4D8EE1, 0x5B8D59A820B0B13B),
            32: (0xCBF59C5116FF32B4, 0xE30756E9AE7C6FB9),
            100: (0x6AC1E58032166597, 0x4437BF877A6B0ECD)}
    for n, (a, b) in want.items():
        data = bytes(range(n))
        assert (xxh64(data), xxh64(data, 2**40 + 7)) == (a, b)
    x = np.arange(12.0).reshape(3, 4)
    assert xxh64(x) == xxh64(x.tobytes()) != xxh64(x.T)  # C-order bytes of the values


def test_last_bar_rows_matches_a_mask(panel):
    close = np.asarray(panel["close"].values, float)
    has = np.isfinite(close)
    T = close.shape[0]
    want = np.where(has.any(0), T - 1 - np.argmax(has[::-1], axis=0), -1)
    assert np.array_equal(last_bar_rows(close), want)


@pytest.mark.parametrize("long_short", [False, True])
def test_decision_row_signals_equal_the_full_panel_ones(panel, long_short):
    rows = np.zeros(panel.sizes["date"], bool)
    rows[::21] = True
    with sg.decision_rows(rows):
        got_rows, score = sg.returns_over_at(panel["returns"], 60, 5)
        full = sg.returns_over(panel["returns"], 60, 5)
        a = select_rows(panel["returns"], got_rows, score, panel, 5, long_short)
        b = select(full, panel, 5, long_short)
    assert np.array_equal(got_rows, np.nonzero(rows)[0])
    np.testing.assert_array_equal(score, full.values[rows])
    np.testing.assert_array_equal(a.values, b.values)
    assert np.isnan(full.values[~rows]).all() and (a.values[~rows] == 0).all()
