"""Simulation kernels: numpy/numba on 2-D arrays (date x asset), no pandas or xarray.

Algorithm of :func:`simulate_kernel`, one session ``t`` at a time:

1. *pre-trade* returns ``r_pre[t]`` (close-to-close for execution at the close;
   overnight for execution at the next open) move the holdings; a NaN return means
   the asset did not trade that session: it earns nothing and its weight is carried.
2. weights drift: ``w_i <- w_i (1 + r_i) / (1 + sum_j w_j r_j)`` (cash earns 0).
3. on a rebalance session each *tradable* asset trades to its target; untradable
   assets keep their drifted weight; ``force_close`` closes a holding (delisting).
4. costs, as a fraction of the portfolio value at the trade: for each traded
   ``dw``: ``|dw| * lin_cost + |dw|**1.5 * impact`` (square-root impact), plus
   the daily borrow fee on short weight.
5. *post-trade* returns ``r_post[t]`` (zero for close execution, open-to-close
   for open execution) move the new holdings.

``gross[t] = (1 + g_pre)(1 + g_post) - 1`` and ``net[t] = (1 + g_pre)(1 - c)(1 + g_post) - 1``.
The drift is a recursion (each day's weights depend on the previous day's), hence numba.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["simulate_kernel", "simulate_kernel_numpy_reference", "long_flat_pnl",
           "long_flat_metrics_kernel", "ma_cross_metrics_kernel"]


@numba.njit(cache=True, nogil=True)
def _earn(w: np.ndarray, r: np.ndarray) -> float:
    g = 0.0
    for i in range(w.shape[0]):
        if not np.isnan(r[i]):
            g += w[i] * r[i]
    inv = 1.0 / (1.0 + g)
    for i in range(w.shape[0]):
        ri = 0.0 if np.isnan(r[i]) else r[i]
        w[i] = w[i] * (1.0 + ri) * inv
    return g


@numba.njit(cache=True, nogil=True)
def simulate_kernel(r_pre: np.ndarray, r_post: np.ndarray, target: np.ndarray,
                    target_row: np.ndarray, rebalance: np.ndarray, tradable: np.ndarray, lin_cost: np.ndarray,
                    impact: np.ndarray, borrow_daily: float, force_close: np.ndarray,
                    w0: np.ndarray, has_post: bool = True,
                    force_rows: np.ndarray | None = None) -> tuple[
                        np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Simulate drifting weights with rebalances; see the module docstring.

    ``target`` holds the ``(R, N)`` target weights of the rebalance sessions only and
    ``target_row`` (``(T,)`` int) maps each session to its row there (``-1``: none);
    the other 2-D inputs are ``(T, N)`` float64 (``tradable``/``force_close`` bool),
    ``rebalance`` is ``(T,)`` bool, ``w0`` the ``(N,)`` starting weights;
    ``has_post=False`` skips the (all-zero) post-trade returns of close execution;
    ``force_rows`` (``(T,)`` bool, ``force_close.any(axis=1)``) lets sessions with
    nothing to trade take a fused drift-only pass.
    Returns ``weights (T, N)`` (end of session), ``gross``, ``net``, ``costs``,
    ``turnover`` (each ``(T,)``) and ``exposures (T, 3)``: long, short, holdings.
    """
    T, N = r_pre.shape
    w = w0.copy()
    weights = np.empty((T, N))
    gross = np.empty(T)
    net = np.empty(T)
    costs = np.empty(T)
    turnover = np.empty(T)
    expo = np.empty((T, 3))
    for t in range(T):
        quiet = not has_post and not rebalance[t] and (
            force_rows is not None and not force_rows[t])
        if quiet:
            # nothing trades: drift, borrow and exposures in one pass over the row
            rp = r_pre[t]
            g1 = 0.0
            for i in range(N):
                if not np.isnan(rp[i]):
                    g1 += w[i] * rp[i]
            inv = 1.0 / (1.0 + g1)
            c = 0.0
            lo = 0.0
            sh = 0.0
            nh = 0.0
            for i in range(N):
                ri = rp[i]
                wi = w[i] * inv if np.isnan(ri) else w[i] * (1.0 + ri) * inv
                w[i] = wi
                weights[t, i] = wi
                if wi > 0.0:
                    lo += wi
                    nh += 1.0
                elif wi < 0.0:
                    c += -wi * borrow_daily
                    sh += wi
                    nh += 1.0
            expo[t, 0] = lo
            expo[t, 1] = sh
            expo[t, 2] = nh
            gross[t] = g1
            net[t] = (1.0 + g1) * (1.0 - c) - 1.0
            costs[t] = c
            turnover[t] = 0.0
            continue
        g1 = _earn(w, r_pre[t])
        c = 0.0
        traded = 0.0
        for i in range(N):
            if w[i] < 0.0:
                c += -w[i] * borrow_daily
            new = w[i]
            if rebalance[t] and tradable[t, i]:
                new = target[target_row[t], i]
            if force_close[t, i]:
                new = 0.0
            dw = abs(new - w[i])
            if dw > 0.0:
                traded += dw
                c += dw * lin_cost[t, i] + dw ** 1.5 * impact[t, i]
            w[i] = new
        g2 = _earn(w, r_post[t]) if has_post else 0.0
        weights[t] = w
        lo = 0.0
        sh = 0.0
        nh = 0.0
        for i in range(N):
            if w[i] > 0.0:
                lo += w[i]
                nh += 1.0
            elif w[i] < 0.0:
                sh += w[i]
                nh += 1.0
        expo[t, 0] = lo
        expo[t, 1] = sh
        expo[t, 2] = nh
        gross[t] = (1.0 + g1) * (1.0 + g2) - 1.0
        net[t] = (1.0 + g1) * (1.0 - c) * (1.0 + g2) - 1.0
        costs[t] = c
        turnover[t] = traded
    return weights, gross, net, costs, turnover, expo


def simulate_kernel_numpy_reference(r: np.ndarray, target: np.ndarray, rebalance: np.ndarray,
                                    fee: float) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python/numpy reference of the close-execution case (parity tests, bench).

    Every asset tradable, flat fee per unit of traded weight, no impact or borrow.
    Returns ``weights`` and ``net``.

    Examples
    --------
    >>> r = np.array([[0.0, 0.0], [0.1, -0.1]])
    >>> tw = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> w, net = simulate_kernel_numpy_reference(r, tw, np.array([True, False]), 0.0)
    >>> net.round(10).tolist()
    [0.0, 0.0]
    """
    T, N = target.shape
    w = np.zeros(N)
    weights = np.empty((T, N))
    net = np.empty(T)
    for t in range(T):
        rt = np.nan_to_num(r[t])
        g = float(w @ rt)
        w = w * (1 + rt) / (1 + g)
        c = 0.0
        if rebalance[t]:
            c = fee * np.abs(target[t] - w).sum()
            w = target[t].copy()
        weights[t] = w
        net[t] = (1 + g) * (1 - c) - 1
    return weights, net


def long_flat_pnl(position: np.ndarray, r: np.ndarray, fee: float) -> np.ndarray:
    """Daily returns of single-asset backtests holding ``position`` (0..1) from each close.

    ``position[t]`` is decided at the close of ``t`` and earns ``r[t+1]``; each change
    pays ``fee`` per unit traded on the session it trades. Works on any array whose
    axis 0 is the date (``(T, S)`` or ``(P, T, N)`` with ``axis=1``-less layout).

    Examples
    --------
    >>> pos = np.array([[0.0], [1.0], [1.0], [0.0]])
    >>> r = np.array([[0.0], [0.05], [0.1], [-0.2]])
    >>> long_flat_pnl(pos, r, 0.001).round(6).ravel().tolist()
    [0.0, -0.001, 0.1, -0.2008]
    """
    r = np.nan_to_num(r)
    held = np.zeros_like(position)
    held[1:] = position[:-1]
    trade = np.abs(np.diff(position, axis=0, prepend=np.zeros_like(position[:1])))
    return (1 + held * r) * (1 - fee * trade) - 1


# Long/flat per-asset backtests (sweeps). numpy's error model: float division by zero
# gives inf/NaN instead of a Python exception check, so the row loops vectorize (SIMD).


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _lf_row(now: np.ndarray, r: np.ndarray, fee: float, st: tuple[np.ndarray, ...], b: int
            ) -> None:
    """One session of every asset's long/flat backtest number ``b``, branch-free.

    ``now`` positions decided at this close, ``r`` this session's NaN-free returns; the
    state ``st`` = (held position, wealth, peak, max drawdown, sum and sum of squares of
    daily returns), each ``(backtests, N)``. A flat asset earns exactly 0, which leaves
    every statistic unchanged.
    """
    prev, wealth, peak, mdd, s1, s2 = st
    for i in range(now.shape[0]):
        held = prev[b, i]
        nw = float(now[i])
        ret = (1.0 + held * r[i]) * (1.0 - fee * abs(nw - held)) - 1.0
        prev[b, i] = nw
        w = wealth[b, i] * (1.0 + ret)
        wealth[b, i] = w
        pk = max(peak[b, i], w)
        peak[b, i] = pk
        mdd[b, i] = min(mdd[b, i], w / pk - 1.0)
        s1[b, i] += ret
        s2[b, i] += ret * ret


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lf_state(B: int, N: int) -> tuple[np.ndarray, ...]:
    return (np.zeros((B, N)), np.ones((B, N)), np.ones((B, N)), np.zeros((B, N)),
            np.zeros((B, N)), np.zeros((B, N)))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lf_finish(st: tuple[np.ndarray, ...], T: int, ppy: float, out: np.ndarray) -> None:
    """Total return, max drawdown, Sharpe (``out`` is ``(B, N, 3)``) from final states."""
    _, wealth, _, mdd, s1, s2 = st
    for b in range(wealth.shape[0]):
        for i in range(wealth.shape[1]):
            mean = s1[b, i] / T
            var = (s2[b, i] - s1[b, i] * mean) / (T - 1)
            out[b, i, 0] = wealth[b, i] - 1.0
            out[b, i, 1] = mdd[b, i]
            out[b, i, 2] = mean / np.sqrt(var) * np.sqrt(ppy) if var > 1e-30 else np.nan


@numba.njit(cache=True, nogil=True, error_model="numpy")
def long_flat_metrics_kernel(pos: np.ndarray, r: np.ndarray, fee: float, ppy: float,
                             rebalance: np.ndarray) -> np.ndarray:
    """``(P, N, 3)`` total return, max drawdown, Sharpe of ``(P, T, N)`` positions held
    from each close against ``(T, N)`` NaN-free returns (one pass, no P&L array).

    Positions change only on ``rebalance`` sessions (``(T,)`` bool) and are held between.
    """
    P, T, N = pos.shape
    out = np.empty((P, N, 3))
    for p in range(P):
        st = _lf_state(1, N)
        for t in range(T):
            if rebalance[t]:
                _lf_row(pos[p, t], r[t], fee, st, 0)
            else:  # off the rebalance calendar the current positions (state 0) are held
                _lf_row(st[0][0], r[t], fee, st, 0)
        _lf_finish(st, T, ppy, out[p:p + 1])
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def ma_cross_metrics_kernel(c: np.ndarray, k: np.ndarray, fast: np.ndarray, slow: np.ndarray,
                            r: np.ndarray, fee: float, ppy: float, rebalance: np.ndarray,
                            block: int = 16, assets: int = 64) -> np.ndarray:
    """Moving-average crossover long/flat backtests of every (fast, slow) pair and asset,
    positions computed on the fly from one cumulative sum (no ``P x T x N`` array).

    ``c``/``k`` are ``(T + 1, N)`` cumulative sums (leading zero row) of the NaN-as-0
    prices and of their valid-value counts; a window's mean is NaN (no position) until
    it holds ``window`` valid prices, as in :func:`~quantlib.backtest.signals.rolling_mean_np`
    (same sums, same divisions: identical positions). ``r`` is NaN-free; positions
    change on ``rebalance`` sessions only. Cache blocking: ``assets`` columns at a time
    (their sums and returns stay in the core's cache for every pair) and ``block`` pairs
    advancing together one session at a time (sharing this session's rows). Returns
    ``(P, N, 3)``: total return, max drawdown, Sharpe.
    """
    N = c.shape[1]
    out = np.empty((fast.shape[0], N, 3))
    for i0 in range(0, N, assets):
        i1 = min(N, i0 + assets)
        _ma_cross_block(np.ascontiguousarray(c[:, i0:i1]), np.ascontiguousarray(k[:, i0:i1]),
                        fast, slow, np.ascontiguousarray(r[:, i0:i1]), fee, ppy, rebalance,
                        block, out[:, i0:i1])
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _ma_cross_block(c: np.ndarray, k: np.ndarray, fast: np.ndarray, slow: np.ndarray,
                    r: np.ndarray, fee: float, ppy: float, rebalance: np.ndarray, block: int,
                    out: np.ndarray) -> None:
    T = c.shape[0] - 1
    N = c.shape[1]
    P = fast.shape[0]
    now = np.empty(N)
    for p0 in range(0, P, block):
        B = min(block, P - p0)
        st = _lf_state(B, N)
        for t in range(T):
            c1, k1, rt = c[t + 1], k[t + 1], r[t]
            if not rebalance[t]:
                for b in range(B):
                    _lf_row(st[0][b], rt, fee, st, b)  # hold the last decided positions
                continue
            for b in range(B):
                f = fast[p0 + b]
                s = slow[p0 + b]
                cf, kf = c[max(t + 1 - f, 0)], k[max(t + 1 - f, 0)]
                cs, ks = c[max(t + 1 - s, 0)], k[max(t + 1 - s, 0)]
                for i in range(N):
                    nf = k1[i] - kf[i]
                    ns = k1[i] - ks[i]
                    long = (nf >= f) & (ns >= s) & ((c1[i] - cf[i]) / nf > (c1[i] - cs[i]) / ns)
                    now[i] = 1.0 if long else 0.0
                _lf_row(now, rt, fee, st, b)
        _lf_finish(st, T, ppy, out[p0:p0 + B])
