"""Sweep kernels on every core of one process: blocks of assets (or series, or parameter
sets) are independent, so numba runs them in parallel (``prange``) without the GIL.

Each kernel is compiled twice from the same source: a ``parallel=True`` version and a
serial one (``prange`` is ``range`` there). :func:`kernel_threads` picks which runs:

- ``NUMBA_NUM_THREADS`` (or :func:`numba.set_num_threads`) caps the threads, as numba does;
- inside a Dask worker each task runs on ONE thread: the worker's ``nthreads`` tasks already
  use its cores, so a kernel must not add threads of its own (no oversubscription);
- one thread means the serial version (no thread pool at all).

Both versions do the same floating-point operations in the same order for each output
element, so their results are identical (tests/backtest/test_parallel.py).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy as np

from quantlib.backtest.kernels import _lf_finish, _lf_row, _lf_state, simulate_into
from quantlib.errors import BacktestError

__all__ = ["kernel_threads", "threads", "ma_cross_metrics", "sweep_metrics_fast",
           "balanced_blocks", "long_flat_metrics_kernel", "simulate_batch"]

_LOCAL = threading.local()


def _in_dask_worker() -> bool:
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def kernel_threads() -> int:
    """Threads the sweep kernels use now (see the module docstring).

    Examples
    --------
    >>> with threads(1):
    ...     kernel_threads()
    1
    """
    forced = getattr(_LOCAL, "n", None)
    if forced is not None:
        cap = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
        return max(1, min(int(forced), cap))
    if _in_dask_worker():
        return 1
    return max(1, numba.get_num_threads())


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run the sweep kernels on ``n`` threads in this block (``None``: the default).

    Examples
    --------
    >>> with threads(2):
    ...     kernel_threads() <= 2
    True
    """
    old = getattr(_LOCAL, "n", None)
    _LOCAL.n = n
    try:
        yield
    finally:
        _LOCAL.n = old


def balanced_blocks(n: int, target: int, workers: int) -> int:
    """Block width near ``target`` that splits ``n`` into a multiple of ``workers`` blocks
    of (nearly) equal width, so no thread waits on a short last block.

    Examples
    --------
    >>> balanced_blocks(200, 64, 2)
    50
    >>> balanced_blocks(10, 64, 2)
    5
    """
    nb = max(1, -(-n // max(1, target)))
    nb = -(-nb // workers) * workers
    return max(1, -(-n // nb))


def _dispatch(par: Any, ser: Any) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        n = kernel_threads()
        if n <= 1:
            return ser(*args)
        old = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            return par(*args)
        finally:
            numba.set_num_threads(old)
    return call


def _both(**opts: Any) -> Callable[[Callable[..., Any]], tuple[Any, Any]]:
    def deco(fn: Callable[..., Any]) -> tuple[Any, Any]:
        return (numba.njit(cache=True, nogil=True, parallel=True, **opts)(fn),
                numba.njit(cache=True, nogil=True, **opts)(fn))
    return deco


# ------------------------------------------------------------------ MA-crossover sweep
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _window_means(c: np.ndarray, k: np.ndarray, wins: np.ndarray, t: int, m: np.ndarray
                  ) -> None:
    """Means of every distinct window ending at session ``t`` (NaN: too few valid prices)."""
    c1, k1 = c[t + 1], k[t + 1]
    for w in range(wins.shape[0]):
        win = wins[w]
        j = max(t + 1 - win, 0)
        cj, kj = c[j], k[j]
        for i in range(c1.shape[0]):
            n = k1[i] - kj[i]
            mean = (c1[i] - cj[i]) / n
            m[w, i] = mean if n >= win else np.nan


def _ma_cross_impl(c: np.ndarray, k: np.ndarray, wins: np.ndarray, fi: np.ndarray,
                   si: np.ndarray, r: np.ndarray, fee: float, ppy: float,
                   rebalance: np.ndarray, width: int) -> np.ndarray:
    T = c.shape[0] - 1
    N = c.shape[1]
    P = fi.shape[0]
    out = np.empty((P, N, 3))
    nb = (N + width - 1) // width
    for bi in numba.prange(nb):
        i0 = bi * width
        i1 = min(N, i0 + width)
        cb = np.ascontiguousarray(c[:, i0:i1])
        kb = np.ascontiguousarray(k[:, i0:i1])
        rb = np.ascontiguousarray(r[:, i0:i1])
        n = i1 - i0
        st = (np.zeros((P, n)), np.ones((P, n)), np.ones((P, n)), np.zeros((P, n)),
              np.zeros((P, n)), np.zeros((P, n)))
        m = np.empty((wins.shape[0], n))
        now = np.empty(n)
        for t in range(T):
            rt = rb[t]
            if not rebalance[t]:
                for p in range(P):
                    _lf_row(st[0][p], rt, fee, st, p)  # hold the last decided positions
                continue
            _window_means(cb, kb, wins, t, m)
            for p in range(P):
                mf, ms = m[fi[p]], m[si[p]]
                for i in range(n):
                    now[i] = 1.0 if mf[i] > ms[i] else 0.0
                _lf_row(now, rt, fee, st, p)
        res = np.empty((P, n, 3))
        _lf_finish(st, T, ppy, res)
        out[:, i0:i1] = res
    return out


_ma_cross_par, _ma_cross_ser = _both(error_model="numpy")(_ma_cross_impl)
_ma_cross = _dispatch(_ma_cross_par, _ma_cross_ser)


def ma_cross_metrics(c: np.ndarray, k: np.ndarray, fast: np.ndarray, slow: np.ndarray,
                     r: np.ndarray, fee: float, ppy: float, rebalance: np.ndarray,
                     width: int = 64) -> np.ndarray:
    """Long/flat MA-crossover backtests of every (fast, slow) pair and asset: ``(P, N, 3)``
    total return, max drawdown, Sharpe.

    ``c``/``k`` are ``(T + 1, N)`` cumulative sums (leading zero row) of the NaN-as-0 last
    known close and of its valid count; a window's mean is NaN (no position) until it
    holds ``window`` valid prices (as
    :func:`~quantlib.backtest.signals.rolling_mean_np`: same sums, same divisions, so
    identical positions). Each distinct window's mean is computed once per session and
    shared by every pair using it (20 windows for the 90 pairs of the bench, not 180).
    ``r`` is NaN-free; positions change on ``rebalance`` sessions only. Blocks of about
    ``width`` assets (their sums, returns and the state of all pairs stay in one core's
    cache) run in parallel on :func:`kernel_threads` threads.

    Examples
    --------
    >>> from quantlib.backtest.signals import zero_cumsum
    >>> close = np.array([[1.0], [2.0], [3.0], [2.0], [1.0]])
    >>> r = np.vstack([[0.0], close[1:] / close[:-1] - 1])
    >>> c, k = zero_cumsum(close), zero_cumsum(np.ones_like(close))
    >>> out = ma_cross_metrics(c, k, np.array([1]), np.array([2]), r, 0.0, 252.0,
    ...                        np.ones(5, bool))
    >>> round(float(out[0, 0, 0]), 6)  # long after sessions 1, 2: earns 3/2 - 1, then 2/3 - 1
    0.0
    """
    wins = np.unique(np.concatenate([fast, slow])).astype(np.int64)
    fi = np.searchsorted(wins, fast).astype(np.int64)
    si = np.searchsorted(wins, slow).astype(np.int64)
    w = balanced_blocks(c.shape[1], width, kernel_threads())
    return _ma_cross(np.ascontiguousarray(c, float), np.ascontiguousarray(k, float), wins, fi,
                     si, np.ascontiguousarray(r, float), float(fee), float(ppy),
                     np.asarray(rebalance, np.bool_), w)


def _long_flat_impl(pos: np.ndarray, r: np.ndarray, fee: float, ppy: float,
                    rebalance: np.ndarray) -> np.ndarray:
    P, T, N = pos.shape
    out = np.empty((P, N, 3))
    for p in numba.prange(P):
        st = _lf_state(1, N)
        for t in range(T):
            if rebalance[t]:
                _lf_row(pos[p, t], r[t], fee, st, 0)
            else:  # off the rebalance calendar the current positions (state 0) are held
                _lf_row(st[0][0], r[t], fee, st, 0)
        res = np.empty((1, N, 3))
        _lf_finish(st, T, ppy, res)
        out[p] = res[0]
    return out


_lf_par, _lf_ser = _both(error_model="numpy")(_long_flat_impl)
#: ``(P, N, 3)`` total return, max drawdown, Sharpe of ``(P, T, N)`` positions held from
#: each close against ``(T, N)`` NaN-free returns (one pass, no P&L array); positions change
#: only on ``rebalance`` sessions (``(T,)`` bool). Parameter sets run in parallel.
long_flat_metrics_kernel = _dispatch(_lf_par, _lf_ser)


# ------------------------------------------------------------------ metrics of many series
@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _metric_step(x: float, j: int, w: np.ndarray, peak: np.ndarray, mdd: np.ndarray,
                 s1: np.ndarray, s2: np.ndarray) -> None:
    if np.isnan(x):
        x = 0.0
    wj = w[j] * (1.0 + x)
    w[j] = wj
    pk = max(peak[j], wj)
    peak[j] = pk
    mdd[j] = min(mdd[j], wj / pk - 1.0)
    s1[j] += x
    s2[j] += x * x


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _metric_finish(T: int, ppy: float, w: np.ndarray, mdd: np.ndarray, s1: np.ndarray,
                   s2: np.ndarray, out: np.ndarray, j0: int) -> None:
    for b in range(w.shape[0]):
        mean = s1[b] / T
        var = (s2[b] - s1[b] * mean) / (T - 1)
        out[j0 + b, 0] = w[b] - 1.0
        out[j0 + b, 1] = mdd[b]
        out[j0 + b, 2] = mean / np.sqrt(var) * np.sqrt(ppy) if var > 0 else np.nan


def _metrics_rows_impl(r: np.ndarray, ppy: float, width: int) -> np.ndarray:
    """``r`` is ``(T, S)`` C-ordered: each block of columns walks the rows."""
    T, S = r.shape
    out = np.empty((S, 3))
    nb = (S + width - 1) // width
    for bi in numba.prange(nb):
        j0 = bi * width
        n = min(S, j0 + width) - j0
        w, peak, mdd = np.ones(n), np.ones(n), np.zeros(n)
        s1, s2 = np.zeros(n), np.zeros(n)
        for t in range(T):
            row = r[t, j0:j0 + n]
            for j in range(n):
                _metric_step(row[j], j, w, peak, mdd, s1, s2)
        _metric_finish(T, ppy, w, mdd, s1, s2, out, j0)
    return out


def _metrics_cols_impl(rt: np.ndarray, ppy: float, width: int) -> np.ndarray:
    """``rt`` is ``(S, T)`` C-ordered (a column-major ``(T, S)`` array transposed):
    ``width`` series advance together so their recursions overlap."""
    S, T = rt.shape
    out = np.empty((S, 3))
    nb = (S + width - 1) // width
    for bi in numba.prange(nb):
        j0 = bi * width
        n = min(S, j0 + width) - j0
        w, peak, mdd = np.ones(n), np.ones(n), np.zeros(n)
        s1, s2 = np.zeros(n), np.zeros(n)
        for t in range(T):
            for j in range(n):
                _metric_step(rt[j0 + j, t], j, w, peak, mdd, s1, s2)
        _metric_finish(T, ppy, w, mdd, s1, s2, out, j0)
    return out


_rows_par, _rows_ser = _both(error_model="numpy")(_metrics_rows_impl)
_cols_par, _cols_ser = _both(error_model="numpy")(_metrics_cols_impl)
_metrics_rows = _dispatch(_rows_par, _rows_ser)
_metrics_cols = _dispatch(_cols_par, _cols_ser)


def sweep_metrics_fast(r: np.ndarray, ppy: float = 252.0) -> np.ndarray:
    """Total return, max drawdown, Sharpe of each column of ``(T, S)`` returns (NaN as 0),
    ``(S, 3)``, reading the array once in whichever memory layout it has (no copy).

    Examples
    --------
    >>> r = np.array([[0.1, 0.0], [-0.1, 0.01]])
    >>> a, b = sweep_metrics_fast(r), sweep_metrics_fast(np.asfortranarray(r))
    >>> bool(np.array_equal(a, b)), round(float(a[0, 0]), 6)
    (True, -0.01)
    """
    r = np.asarray(r, dtype=float)
    if r.ndim != 2:
        raise BacktestError("sweep metrics need a 2-D (date, series) return array",
                            found=f"{r.ndim}-D, shape {r.shape}",
                            fix="pass returns[:, None] for one series")
    n = kernel_threads()
    if r.flags.f_contiguous and not r.flags.c_contiguous:
        return _metrics_cols(r.T, float(ppy), balanced_blocks(r.shape[1], 8, n))
    r = np.ascontiguousarray(r)
    return _metrics_rows(r, float(ppy), balanced_blocks(r.shape[1], 512, n))


# ------------------------------------------------------------------ portfolio sweeps
def _sim_batch_impl(r_pre: np.ndarray, r_post: np.ndarray, targets: np.ndarray,
                    target_row: np.ndarray, rebalance: np.ndarray, tradable: np.ndarray,
                    lin: np.ndarray, impact: np.ndarray, borrow: float,
                    delist_row: np.ndarray, w0: np.ndarray, has_post: bool,
                    force_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    P = targets.shape[0]
    T, N = r_pre.shape
    nets = np.empty((P, T))
    turns = np.empty((P, T))
    for p in numba.prange(P):
        gross, net, costs, turn = np.empty(T), np.empty(T), np.empty(T), np.empty(T)
        simulate_into(r_pre, r_post, targets[p], target_row, rebalance, tradable, lin, impact,
                      borrow, delist_row, w0, has_post, force_rows, np.empty((0, N)),
                      np.full(T, -1, np.int64), gross, net, costs, turn, np.empty((T, 3)))
        nets[p] = net
        turns[p] = turn
    return nets, turns


_sim_par, _sim_ser = _both()(_sim_batch_impl)
_sim_batch = _dispatch(_sim_par, _sim_ser)


def simulate_batch(targets: np.ndarray, args: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Daily net returns and turnover ``(P, T)`` of ``P`` portfolios sharing everything but
    their rebalance-row targets ``(P, R, N)``; ``args`` are
    :func:`~quantlib.backtest.engine.kernel_args` of any one of them (its targets are
    replaced). Parameter sets run in parallel, no weights kept: one
    :func:`~quantlib.backtest.kernels.simulate_kernel` per set, same numbers.

    Examples
    --------
    >>> from quantlib.backtest.kernels import simulate_kernel
    >>> T, N = 30, 4
    >>> r = np.random.default_rng(1).normal(0, 0.01, (T, N))
    >>> tg = np.random.default_rng(2).random((3, T, N)) / N
    >>> args = (r, np.zeros((T, N)), tg[0], np.arange(T), np.ones(T, bool),
    ...         np.ones((T, N)), np.full((T, N), 1e-3), np.zeros((T, N)), 0.0,
    ...         np.full(N, -1), np.zeros(N), False, np.zeros(T, bool))
    >>> nets, _ = simulate_batch(tg, args)
    >>> one = simulate_kernel(*args[:2], tg[2], *args[3:])[2]
    >>> bool(np.array_equal(nets[2], one))
    True
    """
    (r_pre, r_post, _, target_row, rebalance, tradable, lin, impact, borrow, delist_row, w0,
     has_post, force_rows) = args
    return _sim_batch(r_pre, r_post, np.ascontiguousarray(targets, float), target_row,
                      rebalance, tradable, lin, impact, float(borrow), delist_row, w0,
                      bool(has_post), np.asarray(force_rows, np.bool_))
