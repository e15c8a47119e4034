"""Portfolio-mode sweeps in one parallel kernel: every parameter set's whole backtest.

A portfolio sweep simulates ``P`` portfolios that share the data, the settings and the
costs and differ only in their target weights. For each parameter set, inside one numba
``prange`` over the sets (no GIL, one set per thread at a time):

1. its target weights on the decision (rebalance) rows are built: read from the
   strategy's ``(P, T, N)`` batch array (:func:`simulate_targets`), or built on the fly
   from shared inputs (:func:`ma_crossover_portfolio`: the two moving averages of each
   (fast, slow) pair from one cumulative sum of the last known close, times the sleeve
   weight ``1 / n_universe``), never materializing ``(P, T, N)`` weights;
2. assets outside the PIT universe get 0 and the portfolio constraints are applied by
   :func:`~quantlib.backtest.constraints.constrain_rows`, the kernel single runs use;
3. it is simulated by :func:`~quantlib.backtest.kernels.simulate_into` (no weights kept).

Every step does the operations of a single :func:`~quantlib.backtest.run` in the same
order, so each set's daily net returns and turnover equal a single run's exactly
(``tests/backtest/test_batched.py``). The serial part left is what all sets share
(:func:`~quantlib.backtest.engine.prepare_static`, the cumulative sums, the sleeve
weights), computed once per sweep. Each kernel is compiled parallel and serial
(:mod:`~quantlib.backtest.parallel`): one thread, or a Dask task, runs the serial one.
"""

from __future__ import annotations

from typing import Any

from quantlib.backtest import native

numba = native.numba()  # the lean way; the kernels named below are its dispatchers now

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from quantlib.backtest.constraints import constrain_rows  # noqa: E402
from quantlib.backtest.kernels import simulate_into  # noqa: E402
from quantlib.backtest.parallel import _both, _dispatch  # noqa: E402

__all__ = ["simulate_targets", "ma_crossover_portfolio", "ma_portfolio_batch"]


@numba.njit(cache=True, nogil=True)
def _constrain_simulate(sub: np.ndarray, long_only: bool, groups: np.ndarray, n_groups: int,
                        max_weight: float, gross_leverage: float, net_leverage: float,
                        r_pre: np.ndarray, r_post: np.ndarray, target_row: np.ndarray,
                        rebalance: np.ndarray, tradable: np.ndarray, lin: np.ndarray,
                        impact: np.ndarray, borrow: float, delist_row: np.ndarray,
                        has_post: bool, force_rows: np.ndarray, net: np.ndarray,
                        turnover: np.ndarray) -> None:
    """Steps 2-3 of the module docstring for one set's decision-row targets ``sub``."""
    T, N = r_pre.shape
    constrain_rows(sub, long_only, groups, n_groups, max_weight, gross_leverage, net_leverage)
    simulate_into(r_pre, r_post, sub, target_row, rebalance, tradable, lin, impact, borrow,
                  delist_row, np.zeros(N), has_post, force_rows, np.empty((0, N)),
                  np.full(T, -1, np.int64), np.empty(T), net, np.empty(T), turnover,
                  np.empty((T, 3)))


def _targets_impl(raw: np.ndarray, rows: np.ndarray, uni: np.ndarray, has_uni: bool,
                  long_only: bool, groups: np.ndarray, n_groups: int, max_weight: float,
                  gross_leverage: float, net_leverage: float, r_pre: np.ndarray,
                  r_post: np.ndarray, target_row: np.ndarray, rebalance: np.ndarray,
                  tradable: np.ndarray, lin: np.ndarray, impact: np.ndarray, borrow: float,
                  delist_row: np.ndarray, has_post: bool, force_rows: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    P = raw.shape[0]
    T, N = r_pre.shape
    R = rows.shape[0]
    nets = np.empty((P, T))
    turns = np.empty((P, T))
    for p in numba.prange(P):
        sub = np.empty((R, N))
        for j in range(R):
            t = rows[j]
            for i in range(N):
                sub[j, i] = raw[p, t, i] if not has_uni or uni[t, i] else 0.0
        _constrain_simulate(sub, long_only, groups, n_groups, max_weight, gross_leverage,
                            net_leverage, r_pre, r_post, target_row, rebalance, tradable, lin,
                            impact, borrow, delist_row, has_post, force_rows, nets[p],
                            turns[p])
    return nets, turns


def _ma_impl(c: np.ndarray, k: np.ndarray, fast: np.ndarray, slow: np.ndarray,
             unit: np.ndarray, rows: np.ndarray, uni: np.ndarray, has_uni: bool,
             long_only: bool, groups: np.ndarray, n_groups: int, max_weight: float,
             gross_leverage: float, net_leverage: float, r_pre: np.ndarray,
             r_post: np.ndarray, target_row: np.ndarray, rebalance: np.ndarray,
             tradable: np.ndarray, lin: np.ndarray, impact: np.ndarray, borrow: float,
             delist_row: np.ndarray, has_post: bool, force_rows: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    P = fast.shape[0]
    T, N = r_pre.shape
    R = rows.shape[0]
    nets = np.empty((P, T))
    turns = np.empty((P, T))
    for p in numba.prange(P):
        f, s = fast[p], slow[p]
        sub = np.empty((R, N))
        for j in range(R):
            t = rows[j]
            c1, k1 = c[t + 1], k[t + 1]
            cf, kf = c[max(t + 1 - f, 0)], k[max(t + 1 - f, 0)]
            cs, ks = c[max(t + 1 - s, 0)], k[max(t + 1 - s, 0)]
            u = unit[t]
            for i in range(N):
                nf = k1[i] - kf[i]
                ns = k1[i] - ks[i]
                x = 0.0
                # rolling_mean_np: the window's sum / its valid count, NaN below `window`
                if nf >= f and ns >= s and (c1[i] - cf[i]) / nf > (c1[i] - cs[i]) / ns:
                    x = u[i]
                sub[j, i] = x if not has_uni or uni[t, i] else 0.0
        _constrain_simulate(sub, long_only, groups, n_groups, max_weight, gross_leverage,
                            net_leverage, r_pre, r_post, target_row, rebalance, tradable, lin,
                            impact, borrow, delist_row, has_post, force_rows, nets[p],
                            turns[p])
    return nets, turns


_targets_par, _targets_ser = _both(error_model="numpy")(_targets_impl)
_ma_par, _ma_ser = _both(error_model="numpy")(_ma_impl)
_targets_batch = _dispatch(_targets_par, _targets_ser)
_ma_batch = _dispatch(_ma_par, _ma_ser)


def _shared_args(st: dict[str, Any]) -> tuple[Any, ...]:
    """Rows, universe and constraint and simulation arguments from ``prepare_static``."""
    uni = st["universe"]
    has_uni = uni is not None
    uni = np.ascontiguousarray(uni, np.bool_) if has_uni else np.zeros((1, 1), np.bool_)
    return (np.asarray(st["target_rows"], np.int64), uni, has_uni, *st["cons_args"],
            st["r_pre"], st["r_post"], st["target_row"], st["rebalance"], st["tradable"],
            st["lin"], st["impact"], float(st["borrow"]), st["delist_row"],
            st["execution"] != "close", np.asarray(st["force_rows"], np.bool_))


def simulate_targets(targets: np.ndarray, st: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Daily net returns and turnover ``(P, T)`` of ``P`` portfolios trading to the
    ``(P, T, N)`` target weights ``targets`` (NaN: 0), all else given by ``st``
    (:func:`~quantlib.backtest.engine.prepare_static`); each set is constrained and
    simulated in parallel, as a single run would.

    Examples
    --------
    >>> from quantlib.backtest.engine import kernel_args, prepare_static
    >>> from quantlib.backtest.kernels import simulate_kernel
    >>> from quantlib.backtest.settings import resolve_settings
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(6, 80, seed=1, markets=())
    >>> st = prepare_static(ds, resolve_settings(rebalance="W"))
    >>> tw = np.random.default_rng(0).random((3, 80, 6))
    >>> nets, turns = simulate_targets(tw, st)
    >>> bool(np.array_equal(nets[1], simulate_kernel(*kernel_args(tw[1], st), False)[2]))
    True
    """
    raw = np.ascontiguousarray(targets, dtype=float)
    return _targets_batch(raw, *_shared_args(st))


def ma_portfolio_batch(c: np.ndarray, k: np.ndarray, fast: np.ndarray, slow: np.ndarray,
                       unit: np.ndarray, st: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Daily net returns and turnover ``(P, T)`` of MA-crossover portfolios: long
    ``unit[t, i]`` of asset ``i`` while its ``fast[p]``-session mean is above its
    ``slow[p]``-session mean, 0 otherwise; ``c``/``k`` are the ``(T + 1, N)`` cumulative
    sums (leading zero row) of the NaN-as-0 last known close and of its valid count (a
    mean needs ``window`` valid prices, as
    :func:`~quantlib.backtest.signals.rolling_mean_np`); ``st`` as in
    :func:`simulate_targets`.
    """
    return _ma_batch(np.ascontiguousarray(c, float), np.ascontiguousarray(k, float),
                     np.asarray(fast, np.int64), np.asarray(slow, np.int64),
                     np.ascontiguousarray(unit, float), *_shared_args(st))


def ma_crossover_portfolio(data: xr.Dataset, param_sets: list[dict[str, Any]],
                           st: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``ma_crossover``'s portfolio sweep (its ``portfolio_func``): each set's weights are
    built inside the parallel kernel (:func:`ma_portfolio_batch`) from the cumulative sums
    of the close, shared by every set; equal to single runs.

    Examples
    --------
    >>> from quantlib.backtest import run
    >>> from quantlib.backtest.engine import prepare_static
    >>> from quantlib.backtest.settings import resolve_settings
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(8, 200, seed=4, markets=())
    >>> st = prepare_static(ds, resolve_settings(costs="flat:10"))
    >>> nets, _ = ma_crossover_portfolio(ds, [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 50}], st)
    >>> one = run("ma_crossover", ds, fast=10, slow=50, costs="flat:10").returns["net"]
    >>> bool(np.array_equal(nets[1], one.to_numpy()))
    True
    """
    from quantlib.backtest.builtins import _close_sums
    from quantlib.backtest.strategies import sleeve

    c, k = _close_sums(data)
    unit = np.asarray(sleeve(xr.ones_like(data["close"]), data).transpose("date", "asset")
                      .values, float)
    fast = np.asarray([p["fast"] for p in param_sets], np.int64)
    slow = np.asarray([p["slow"] for p in param_sets], np.int64)
    return ma_portfolio_batch(c, k, fast, slow, unit, st)
