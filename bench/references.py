"""Plain-NumPy references for bench/bench_backtest.py: the best NumPy a competent user
would write for each workload (vectorized over assets and days, no numba), on the same
data as quantlib and the peers. tests/backtest/test_bench_references.py pins quantlib to
them (W2 to 1e-10 daily, W1/W1m to 1e-9 relative).

Delisting rule (W2, the same as quantlib's engine): an asset's last bar is its last
close; a holding is sold there, paying the linear fee on its drifted weight, and the
proceeds sit in cash (earning 0) until the next rebalance. An asset outside the
universe on a rebalance day is never bought.
"""

from __future__ import annotations

import numpy as np

FEE = 0.001


# ------------------------------------------------------------------ W1: MA-crossover sweep
def window_means(close: np.ndarray, windows: list[int]) -> dict[int, np.ndarray]:
    """Each distinct window's trailing mean from ONE cumulative sum (NaN: fewer than
    ``window`` valid prices in the window), as quantlib defines it."""
    valid = np.isfinite(close)
    c = np.concatenate([np.zeros((1, close.shape[1])), np.cumsum(np.where(valid, close, 0.0),
                                                                 axis=0)])
    k = np.concatenate([np.zeros((1, close.shape[1])), np.cumsum(valid, axis=0)])
    out = {}
    T = close.shape[0]
    for w in sorted(set(windows)):
        lo = np.maximum(np.arange(1, T + 1) - w, 0)
        n = k[1:] - k[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[w] = np.where(n >= w, (c[1:] - c[lo]) / n, np.nan)
    return out


def long_flat_metrics(pos: np.ndarray, r: np.ndarray, fee: float = FEE) -> np.ndarray:
    """Total return, max drawdown, Sharpe ``(N, 3)`` of positions held from each close."""
    held = np.zeros_like(pos)
    held[1:] = pos[:-1]
    trade = np.abs(np.diff(pos, axis=0, prepend=np.zeros((1, pos.shape[1]))))
    ret = (1 + held * r) * (1 - fee * trade) - 1
    return series_metrics(ret)


def series_metrics(ret: np.ndarray, ppy: int = 252) -> np.ndarray:
    """Total return, max drawdown (from the starting capital), Sharpe per column."""
    ret = np.nan_to_num(ret)
    wealth = np.cumprod(1 + ret, axis=0)
    peak = np.maximum(np.maximum.accumulate(wealth, axis=0), 1.0)
    mdd = np.minimum((wealth / peak - 1).min(axis=0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sharpe = ret.mean(0) / ret.std(0, ddof=1) * np.sqrt(ppy)
    return np.column_stack([wealth[-1] - 1, mdd, sharpe])


def w1_reference(close: np.ndarray, r: np.ndarray, pairs: list[tuple[int, int]],
                 fee: float = FEE) -> np.ndarray:
    """``(P, N, 3)``: every pair's positions from cached window means, metrics vectorized."""
    ma = window_means(close, [w for p in pairs for w in p])
    return np.stack([long_flat_metrics((ma[f] > ma[s]).astype(float), r, fee)
                     for f, s in pairs])


# ------------------------------------------------------------------ W2: 12-1 momentum
def month_ends(dates: np.ndarray) -> np.ndarray:
    """Last session of each month (the data's final row excluded: its month is open)."""
    m = np.asarray(dates, "datetime64[M]")
    out = np.zeros(len(m), bool)
    out[:-1] = m[1:] != m[:-1]
    return out


def w2_targets(r: np.ndarray, in_universe: np.ndarray, rows: np.ndarray, window: int = 252,
               skip: int = 21, q: int = 10) -> np.ndarray:
    """``(R, N)`` equal weights of the top ``floor(n / q)`` 12-1 momentum on ``rows``."""
    T, N = r.shape
    finite = np.isfinite(r)
    growth = np.cumprod(1 + np.where(finite, r, 0.0), axis=0)
    first = np.where(finite.any(0), finite.argmax(0), T)
    ok_rows = rows >= window
    start = np.where(ok_rows, rows - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mom = growth[np.where(ok_rows, rows - skip, 0)] / growth[start] - 1
    ok = ok_rows[:, None] & (start[:, None] >= first[None, :] - 1) & in_universe[rows]
    mom = np.where(ok, mom, np.nan)
    n = np.isfinite(mom).sum(1)
    k = n // q
    rank = np.argsort(np.argsort(np.where(np.isfinite(mom), -mom, np.inf), axis=1), axis=1)
    sel = rank < k[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sel, 1.0 / np.maximum(k, 1)[:, None], 0.0)


def w2_reference(r: np.ndarray, in_universe: np.ndarray, dates: np.ndarray, fee: float = FEE,
                 window: int = 252, skip: int = 21, q: int = 10) -> np.ndarray:
    """Daily net returns of month-end top-decile 12-1 momentum with drifting weights.

    Vectorized over assets and days: holdings grow by cumulative products of ``1 + r``
    within each holding period (one matrix-vector product per month for the portfolio's
    value; no loop over days); delistings per the module docstring.
    """
    T, N = r.shape
    finite = np.isfinite(r)
    rz = np.where(finite, r, 0.0)
    reb = np.nonzero(month_ends(dates))[0]
    targets = w2_targets(r, in_universe, reb, window, skip, q)
    last_bar = np.where(finite.any(0), T - 1 - finite[::-1].argmax(0), -1)
    delisted = (last_bar >= 0) & (last_bar < T - 1) & ~in_universe[-1]
    # a delisted asset's target on its last bar is 0 (bought and sold at once = not bought)
    targets[(reb[:, None] == last_bar[None, :]) & delisted[None, :]] = 0.0
    growth = np.cumprod(1 + rz, axis=0)
    net = np.zeros(T)
    held = targets[0]  # weights after the last rebalance
    net[reb[0]] = -fee * np.abs(held).sum()
    bounds = np.append(reb, T - 1)
    for j, s in enumerate(bounds[:-1]):  # one step per month, days vectorized inside
        e = bounds[j + 1]
        rel = growth[s + 1:e + 1] / growth[s]  # (days, N) growth since the rebalance
        live = ~(delisted[None, :] & (np.arange(s + 1, e + 1)[:, None] > last_bar[None, :]))
        value = rel @ held + (1 - held.sum())  # sold holdings are cash: rel is frozen
        prev = np.concatenate([[1.0], value[:-1]])
        drift = held * rel / value[:, None]  # drifted weights, before the day's trades
        gone = delisted[None, :] & (np.arange(s + 1, e + 1)[:, None] == last_bar[None, :])
        cost = fee * (drift * gone).sum(1)
        after = np.where(live & ~gone, drift[-1], 0.0)
        if e in reb[j + 1:j + 2]:  # the period ends on a rebalance: trade there
            cost[-1] = fee * np.abs(targets[j + 1] - np.where(live[-1], drift[-1], 0.0)).sum()
            after = targets[j + 1]
        net[s + 1:e + 1] = value / prev * (1 - cost) - 1
        held = after
    return net
