"""Daily bars of a sandbox market, generated month by month (prefix-stable, low memory).

For every calendar month from :data:`~quantlib.sandbox.pool.EPOCH` on, in order:

1. a returns stream seeded by ``(seed, market, year, month)`` draws the month's market
   factor, sector factors and idiosyncratic noise (Student-t, 4 degrees of freedom) for
   the whole pool; an asset's split-adjusted log close is its anchor ``log_p0`` on its
   first bar plus the cumulated returns since (carried from month to month);
2. only for months that overlap the period served, a second stream seeded the same way
   draws opens, high/low wiggles and volumes; prices are made unadjusted (times the split
   ratio before the ex date, volume times it from the ex date on) and rounded to the
   vendor's precision (registry ``sandbox.price.decimals``);
3. the bars of listed assets on the period's sessions are kept (date-major, ISIN order);
4. corrections: a third stream picks ~:data:`CORRECTION_RATE` of the month's bars; the
   vendor re-publishes each 1-5 sessions later (its ``known_at`` is that session's
   close + the vendor lag + 30-180 minutes) with the close moved 0.5-3 % (high/low
   widened to keep it inside), the volume 0-10 % off, rounded as the bars are.

No draw depends on the period's ``start`` or ``end``: a month's values are the same
whichever period includes it. A month is at most ~23 sessions x the pool, so the full
size needs only a few MB per step.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from quantlib.calendars import session_closes
from quantlib.markets import MARKETS
from quantlib.sandbox.identifiers import SECTORS
from quantlib.sandbox.pool import Pool, all_sessions

__all__ = ["MonthBars", "iter_months", "month_bounds", "round_price", "CORRECTION_RATE",
           "known_closes"]

CORRECTION_RATE = 0.0005
"""Share of bars the vendor corrects after first publishing them."""


@dataclass
class MonthBars:
    """One month of one market: the kept bars as columns plus the closes needed by events.

    ``g`` and ``j`` are the session index (into :func:`all_sessions`) and pool index of
    each kept bar; ``close_unadj`` is the rounded unadjusted close of every session of the
    month (rows) and pool asset (columns), NaN before the first bar; ``prev_close`` the
    same for the session before the month.
    """

    lo: int                    # first session index of the month
    hi: int                    # one past its last
    g: np.ndarray
    j: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    close_unadj: np.ndarray
    prev_close: np.ndarray
    corrections: dict[str, np.ndarray] | None = None   # same columns + known_ns
    #: the carried split-adjusted log close at the month's start (resume point)
    start_state: np.ndarray | None = None


def round_price(x: np.ndarray, decimals: int) -> np.ndarray:
    """Round to the vendor's precision in place (KRW/JPY integers, EUR/USD cents), at
    least one tick.

    Examples
    --------
    >>> round_price(np.array([0.001, 12.346]), 2).tolist()
    [0.01, 12.35]
    """
    if decimals == 0:
        np.rint(x, out=x)
        return np.maximum(x, 1.0, out=x)
    scale = 10.0 ** decimals
    x *= scale
    np.rint(x, out=x)
    np.maximum(x, 1.0, out=x)
    x /= scale
    return x


@functools.lru_cache(maxsize=16)
def known_closes(code: str) -> np.ndarray:
    """UTC ns at which each session's bars are published: close + the vendor lag."""
    sess = all_sessions(code)
    return (session_closes(code, sess) + MARKETS[code].vendor_lag).as_unit("ns").asi8


def month_bounds(code: str) -> np.ndarray:
    """Session index where each calendar month starts, plus the end (len + 1 values).

    Examples
    --------
    >>> b = month_bounds("US"); int(b[0]), bool((np.diff(b) >= 15).all())
    (0, True)
    """
    sess = all_sessions(code)
    key = sess.year * 12 + sess.month - 1
    starts = np.flatnonzero(np.diff(np.asarray(key), prepend=-1))
    return np.append(starts, len(sess))


def _student(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_t(4, size=shape) / np.sqrt(2.0)


def _seed(seed: int, pool: Pool, lo: int, stream: int) -> list[int]:
    day = all_sessions(pool.code).to_numpy()[lo].astype("datetime64[M]").astype(int)
    return [seed, MARKETS[pool.code].sandbox["seed"], int(day) // 12 + 1970, int(day) % 12 + 1,
            stream]


def _log_close(pool: Pool, seed: int, lo: int, hi: int, state: np.ndarray) -> np.ndarray:
    """(T, N) split-adjusted log closes of the month (NaN before the first bar)."""
    t = hi - lo
    rng = np.random.default_rng(_seed(seed, pool, lo, 0))
    mkt = 0.011 * _student(rng, (t,)) + 0.0002
    sec = 0.008 * _student(rng, (t, len(SECTORS)))
    ret = _student(rng, (t, len(pool)))
    ret *= pool.vol
    ret += pool.beta * mkt[:, None]
    ret += sec[:, pool.sector_idx]
    np.clip(ret, -0.3, 0.3, out=ret)
    np.cumsum(ret, axis=0, out=ret)
    base = state.copy()
    new = (pool.first >= lo) & (pool.first < hi)
    k = pool.first[new] - lo
    base[new] = pool.log_p0[new] - ret[k, np.flatnonzero(new)]
    ret += base
    ret[np.arange(lo, hi)[:, None] < pool.first] = np.nan
    return ret


def _unadjusted(adj: np.ndarray, g: np.ndarray, pool: Pool) -> np.ndarray:
    """Split-adjusted prices (T, N) made unadjusted: times the ratio before the ex date."""
    before = g[:, None] < pool.split_g
    return np.where(before, adj * pool.split_ratio, adj)


def _bars(pool: Pool, seed: int, lo: int, hi: int, logc: np.ndarray,
          prev_adj: np.ndarray, decimals: int) -> dict[str, np.ndarray]:
    """(T, N) unadjusted, rounded OHLCV of a month."""
    t, n = hi - lo, len(pool)
    g = np.arange(lo, hi)
    rng = np.random.default_rng(_seed(seed, pool, lo, 1))
    close = np.exp(logc)
    prev = np.vstack([prev_adj[None, :], close[:-1]])
    first_day = g[:, None] == pool.first
    prev = np.where(first_day | np.isnan(prev), close, prev)
    open_ = rng.normal(0.0, 0.25, (t, n))
    open_ *= pool.vol
    open_ = np.exp(open_, out=open_) * prev
    wig = np.abs(rng.normal(0.0, 0.5, (2, t, n))) * pool.vol
    high = np.maximum(open_, close) * np.exp(wig[0])
    low = np.minimum(open_, close) * np.exp(-wig[1])
    volume = np.exp(rng.normal(0.0, 0.5, (t, n))) * pool.adv
    volume = np.where(g[:, None] >= pool.split_g, volume * pool.split_ratio, volume)
    out = {"open": open_, "high": high, "low": low, "close": close}
    for key, arr in out.items():
        out[key] = round_price(_unadjusted(arr, g, pool), decimals)
    np.maximum(out["high"], np.maximum(out["open"], out["close"]), out=out["high"])
    np.minimum(out["low"], np.minimum(out["open"], out["close"]), out=out["low"])
    out["volume"] = np.maximum(np.rint(volume), 1.0)
    return out


def iter_months(pool: Pool, seed: int, g0: int, g1: int, through: int | None = None,
                resume: tuple[int, np.ndarray, np.ndarray] | None = None
                ) -> Iterator[MonthBars]:
    """The months overlapping sessions ``g0..g1`` (inclusive), with their kept bars, then
    (closes only, no bars) the months up to session ``through``.

    Months before ``g0`` are simulated (returns only) to carry the price level, unless
    ``resume = (lo, start_state, prev_close)`` (a yielded month's ``lo``,
    ``start_state`` and ``prev_close``) starts the walk at that month with its carried
    state: the months from there on are the same as without it.

    Examples
    --------
    >>> from quantlib.sandbox.pool import make_pool
    >>> p = make_pool("US", 10, 1, 3)
    >>> months = list(iter_months(p, 3, 100, 140))
    >>> int(months[0].g.min()) >= 100 and int(months[-1].g.max()) <= 140
    True
    """
    bounds = month_bounds(pool.code)
    decimals = MARKETS[pool.code].sandbox["price"]["decimals"]
    last = g1 if through is None else max(g1, through)
    state = np.full(len(pool), np.nan)
    prev_raw = np.full(len(pool), np.nan)
    k0 = 0
    if resume is not None:
        k0 = int(np.searchsorted(bounds, resume[0]))
        state, prev_raw = resume[1].copy(), resume[2].copy()
    for lo, hi in zip(bounds[k0:-1], bounds[k0 + 1:], strict=True):
        if lo > last:
            return
        lo, hi = int(lo), int(hi)
        logc = _log_close(pool, seed, lo, hi, state)
        close_unadj = round_price(_unadjusted(np.exp(logc), np.arange(lo, hi), pool), decimals)
        if hi > g0:
            month = _keep(pool, seed, lo, hi, (logc, close_unadj), state, prev_raw, (g0, g1),
                          decimals)
            month.start_state = state
            yield month
        state = logc[-1].copy()
        prev_raw = close_unadj[-1]


def _keep(pool: Pool, seed: int, lo: int, hi: int, closes: tuple[np.ndarray, np.ndarray],
          state: np.ndarray, prev_raw: np.ndarray, window: tuple[int, int],
          decimals: int) -> MonthBars:
    logc, close_unadj = closes
    g = np.arange(lo, hi)
    keep = (g[:, None] >= pool.first) & (g[:, None] <= pool.last) & (
        (g >= window[0]) & (g <= window[1]))[:, None]
    ti, ai = np.nonzero(keep)
    fixes = None
    if len(ti):
        grid = _bars(pool, seed, lo, hi, logc, np.exp(state), decimals)
        cols = [grid[c][ti, ai] for c in ("open", "high", "low", "close", "volume")]
        fixes = _corrections(pool, seed, lo, hi, grid, window, decimals)
    else:
        cols = [np.zeros(0) for _ in range(5)]
    return MonthBars(lo, hi, g[ti], ai, cols[0], cols[1], cols[2], cols[3], cols[4],
                     close_unadj=close_unadj, prev_close=prev_raw, corrections=fixes)


def _corrections(pool: Pool, seed: int, lo: int, hi: int, grid: dict[str, np.ndarray],
                 window: tuple[int, int], decimals: int) -> dict[str, np.ndarray]:
    """The month's corrected bars in the window (sorted by date, then pool index)."""
    t, n = hi - lo, len(pool)
    rng = np.random.default_rng(_seed(seed, pool, lo, 2))
    count = rng.binomial(t * n, CORRECTION_RATE)
    pos = np.unique(rng.integers(0, t * n, count))
    lag = rng.integers(1, 6, len(pos))
    minutes = rng.integers(30, 181, len(pos))
    move = rng.choice([-1.0, 1.0], len(pos)) * rng.uniform(0.005, 0.03, len(pos))
    vol = rng.uniform(0.9, 1.1, len(pos))
    ti, ai = np.divmod(pos, n)
    g = lo + ti
    ok = (g >= pool.first[ai]) & (g <= pool.last[ai]) & (g >= window[0]) & (g <= window[1])
    ti, ai, g = ti[ok], ai[ok], g[ok]
    close = round_price(grid["close"][ti, ai] * (1 + move[ok]), decimals)
    known = known_closes(pool.code)
    return {"g": g, "j": ai, "open": grid["open"][ti, ai],
            "high": np.maximum(grid["high"][ti, ai], close),
            "low": np.minimum(grid["low"][ti, ai], close), "close": close,
            "volume": np.maximum(np.rint(grid["volume"][ti, ai] * vol[ok]), 1.0),
            "known_ns": known[np.minimum(g + lag[ok], len(known) - 1)]
            + minutes[ok] * 60_000_000_000}
