"""The parallel sweep kernels give exactly the serial kernels' numbers, honour the thread
count, and agree with plain numpy references (quantlib's fee rule)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from quantlib.backtest import parallel as par
from quantlib.backtest.engine import kernel_args, prepare_static
from quantlib.backtest.kernels import long_flat_pnl, simulate_kernel
from quantlib.backtest.metrics import sweep_metrics_numpy
from quantlib.backtest.signals import rolling_mean_np, zero_cumsum


def both(fn):
    """``fn()`` on one thread (serial kernel) and on two (parallel kernel)."""
    with par.threads(1):
        one = fn()
    with par.threads(2):
        two = fn()
    return one, two


def ma_inputs(panel):
    close = panel["close"].ffill("date").values
    valid = np.isfinite(close)
    c, k = zero_cumsum(np.where(valid, close, 0.0)), zero_cumsum(valid.astype(float))
    return close, c, k, np.nan_to_num(panel["returns"].values)


def test_threads_follow_the_setting():
    with par.threads(1):
        assert par.kernel_threads() == 1
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    code = "from quantlib.backtest.parallel import kernel_threads as k; print(k())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "1"


_SERIAL_AFTER_PARALLEL = """
import sys
import numpy as np
import numba.np.ufunc.parallel as pool
from quantlib.backtest import parallel as par
r = np.asfortranarray(np.random.default_rng(0).normal(0, 0.01, (50, 30)))
order = sys.argv[1].split(",")
for n in order:
    with par.threads(int(n)):
        par.sweep_metrics_fast(r)
        par.sweep_metrics_fast(np.ascontiguousarray(r))
print(pool._is_initialized)
"""


def test_serial_kernel_stays_serial_with_a_shared_cache(tmp_path):
    """The serial and parallel compilations of a kernel keep apart in numba's on-disk
    cache: a process that only runs on one thread never starts numba's thread pool, even
    when the cache was written by a process that compiled the parallel version too."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}

    def run(order):
        out = subprocess.run([sys.executable, "-c", _SERIAL_AFTER_PARALLEL, order], env=env,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    assert run("2,1") == "True"  # both compiled and cached, the pool started
    assert run("1") == "False"  # loaded from that cache: the serial code, no pool
    assert run("2") == "True"


def test_ma_sweep_parallel_equals_serial_and_numpy(panel):
    close, c, k, r = ma_inputs(panel)
    fast = np.array([1, 3, 5, 5, 17, 20])
    slow = np.array([2, 20, 20, 61, 250, 60])
    reb = np.ones(len(r), bool)
    one, two = both(lambda: par.ma_cross_metrics(c, k, fast, slow, r, 0.001, 252.0, reb,
                                                 width=8))
    assert np.array_equal(one, two, equal_nan=True)
    assert panel["close"].isnull().any()  # listings/delistings: windows with NaN
    for j, (f, s) in enumerate(zip(fast, slow, strict=True)):
        pos = (rolling_mean_np(close, f) > rolling_mean_np(close, s)).astype(float)
        ref = sweep_metrics_numpy(long_flat_pnl(pos, r, 0.001))
        np.testing.assert_allclose(one[j], ref, rtol=1e-9, atol=1e-12)


def test_long_flat_kernel_parallel_equals_serial(panel):
    _, _, _, r = ma_inputs(panel)
    pos = (np.random.default_rng(3).random((5,) + r.shape) > 0.5).astype(np.uint8)
    reb = np.arange(len(r)) % 5 == 0
    one, two = both(lambda: par.long_flat_metrics_kernel(pos, r, 0.001, 252.0, reb))
    assert np.array_equal(one, two, equal_nan=True)


@pytest.mark.parametrize("shape", [(700, 1100), (703, 1101)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_metrics_kernel_both_layouts_equal(order, shape):
    rng = np.random.default_rng(0)
    r = rng.normal(0.0003, 0.01, shape)
    r[rng.random(r.shape) < 0.01] = np.nan
    x = np.asarray(r, order=order)
    one, two = both(lambda: par.sweep_metrics_fast(x))
    assert np.array_equal(one, two, equal_nan=True)
    assert np.array_equal(one, par.sweep_metrics_fast(np.ascontiguousarray(r)), equal_nan=True)
    np.testing.assert_allclose(one, sweep_metrics_numpy(r), rtol=1e-9)


@pytest.mark.parametrize("T", [1, 3, 4, 9])
def test_metrics_kernel_layouts_equal_on_short_and_extreme_series(T):
    """Column-major input runs four series per vector register over the sessions up to a
    multiple of four and the rest one by one: every split of sessions and series gives
    the row-major numbers bit for bit, also for a total loss (-1), huge gains and NaN."""
    rng = np.random.default_rng(T)
    r = rng.normal(0.0, 0.02, (T, 11))
    r[rng.random(r.shape) < 0.1] = np.nan
    r[0, 1], r[-1, 2], r[:, 3] = -1.0, 1e300, np.nan
    for n in (1, 2):
        with par.threads(n):
            cols, rows = par.sweep_metrics_fast(np.asfortranarray(r)), par.sweep_metrics_fast(r)
        assert np.array_equal(cols, rows, equal_nan=True)
    assert rows[1, 0] == -1.0 and rows[1, 1] == -1.0  # a -1 return: wealth 0, drawdown -100%
    assert rows[3, 0] == 0.0 and np.isnan(rows[3, 2])  # all NaN: flat, no Sharpe


def test_portfolio_batch_kernel_equals_one_kernel_per_set(panel):
    from quantlib.backtest.settings import resolve_settings

    static = prepare_static(panel, resolve_settings(rebalance="W"))
    rng = np.random.default_rng(5)
    tw = rng.random((4,) + panel["close"].shape) / panel.sizes["asset"]
    args = [kernel_args(t, static) for t in tw]
    one, two = both(lambda: par.simulate_batch(np.stack([a[2] for a in args]), args[0]))
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    for j, a in enumerate(args):
        _, _, net, _, turnover, _ = simulate_kernel(*a)
        assert np.array_equal(one[0][j], net) and np.array_equal(one[1][j], turnover)
    assert static["force_rows"].any()  # delistings in the panel are exercised
