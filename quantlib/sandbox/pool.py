"""The asset pool of one sandbox market, laid out on absolute time (prefix-stable).

Everything an asset is (identifiers, sector, listing and delisting session, split,
ticker change, factor loadings, dividend habits, statement levels) is drawn once per
``(seed, market, n_assets, years)`` over the whole calendar span
:data:`EPOCH`..:data:`HORIZON`, with array shapes that never depend on the period served.
A universe for ``[start, end]`` is then a selection of this pool: so a later ``end``
serves the same history plus the new sessions, as a real vendor does.

Lifetimes are a birth-death process: ``K0`` assets are listed before the epoch (their
listing date 30 days to 20 years before it), new listings arrive uniformly at
:data:`IPO_RATE` x ``K0`` a year, and every listed asset delists with hazard
:data:`DELIST_HAZARD` a year (at least 60 sessions after its first bar). ``K0`` is
chosen so that about ``n_assets`` assets are listed at some point in a ``years`` window
ending at :data:`REFERENCE_END` (the exact count depends on the window: new listings
appear as the clock advances).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantlib.calendars import sessions
from quantlib.markets import MARKETS
from quantlib.sandbox.identifiers import SECTORS, make_isins, make_names, make_tickers

__all__ = ["Pool", "make_pool", "all_sessions", "EPOCH", "HORIZON", "IPO_RATE",
           "DELIST_HAZARD", "SPLIT_HAZARD", "TICKER_HAZARD", "NEVER", "REFERENCE_END"]

EPOCH = pd.Timestamp("2000-01-04")
"""First session the sandbox simulates (the exchange calendars' first day)."""
HORIZON = pd.Timestamp("2030-12-31")
"""Last date of the exchange calendars; no universe ends after it."""
REFERENCE_END = pd.Timestamp("2025-12-31")
"""The end for which ``n_assets`` is calibrated (a constant, so never the clock)."""
IPO_RATE = 0.016
"""New listings a year, as a fraction of the assets listed at the epoch."""
DELIST_HAZARD = 0.009
"""Chance a year that a listed asset delists."""
SPLIT_HAZARD = 0.005
"""Chance a year that a listed asset splits (once at most)."""
TICKER_HAZARD = 0.005
"""Chance a year that a listed asset changes ticker (once at most; the ISIN stays)."""
NEVER = np.iinfo(np.int64).max // 4
"""Session index meaning "not within the calendar span" (no delisting, split, change)."""
_SPAN_YEARS = (HORIZON - EPOCH).days / 365.25


@functools.lru_cache(maxsize=16)
def all_sessions(code: str) -> pd.DatetimeIndex:
    """Every session of a market from :data:`EPOCH` to :data:`HORIZON` (cached).

    Examples
    --------
    >>> all_sessions("US")[0]
    Timestamp('2000-01-04 00:00:00')
    """
    return sessions(code, EPOCH, HORIZON)


@dataclass(eq=False)
class Pool:
    """Every asset a market ever has in the sandbox (sorted by ISIN); session indexes
    are positions in :func:`all_sessions`."""

    code: str
    isin: np.ndarray           # object
    ticker: np.ndarray         # object, first ticker
    new_ticker: np.ndarray     # object, ticker after the change ("" if none)
    sector_idx: np.ndarray
    name: np.ndarray           # object
    listed: np.ndarray         # datetime64[ns]
    first: np.ndarray          # session index of the first bar
    last: np.ndarray           # session index of the last bar (NEVER: still listed)
    split_g: np.ndarray        # session index of the split's ex date (NEVER: none)
    split_ratio: np.ndarray    # 1.0 where none
    change_g: np.ndarray       # session index of the ticker change (NEVER: none)
    beta: np.ndarray
    vol: np.ndarray
    log_p0: np.ndarray         # log of the split-adjusted close on the first bar
    adv: np.ndarray            # average daily volume (before split scaling)

    def __len__(self) -> int:
        return len(self.isin)


def _pool_size(n_assets: int, years: float) -> tuple[int, int]:
    """(assets listed at the epoch, listings after it) for ~n_assets in a ``years``
    window ending at :data:`REFERENCE_END` (the pool grows ~0.7 % a year)."""
    grown = max(0.0, (REFERENCE_END - EPOCH).days / 365.25 - years) * (
        IPO_RATE - DELIST_HAZARD)
    k0 = max(3, round(n_assets / (1 + IPO_RATE * years) / (1 + grown)))
    return k0, max(1, round(IPO_RATE * k0 * _SPAN_YEARS))


def _after(rng: np.random.Generator, sess: pd.DatetimeIndex, from_g: np.ndarray,
           hazard: float, min_gap: int) -> np.ndarray:
    """Session index of an event with a yearly ``hazard``, ``min_gap`` sessions or more
    after ``from_g`` (NEVER past the calendar)."""
    years = np.minimum(rng.exponential(1.0 / hazard, len(from_g)), 100.0)
    base = sess.to_numpy()[np.minimum(from_g, len(sess) - 1)]
    when = base + (years * 365.25 * 86_400).astype("timedelta64[s]")
    g = np.searchsorted(sess.to_numpy(), when)
    g = np.maximum(g, from_g + min_gap)
    return np.where(g < len(sess), g, NEVER)


@functools.lru_cache(maxsize=8)
def make_pool(code: str, n_assets: int, years: float, seed: int) -> Pool:
    """The asset pool of one market (cached; treat as read-only).

    Examples
    --------
    >>> p = make_pool("US", 50, 10, 1)
    >>> len(p) > 50, bool((p.last > p.first).all())
    (True, True)
    """
    m = MARKETS[code]
    rng = np.random.default_rng([seed, m.sandbox["seed"], 7])
    sess = all_sessions(code)
    k0, ipo = _pool_size(n_assets, years)
    n = k0 + ipo
    tickers = make_tickers(code, 2 * n + 2, rng)
    isin = np.array(make_isins(code, tickers[:n], rng), dtype=object)
    order = np.argsort(isin, kind="stable")
    sector_idx = rng.integers(0, len(SECTORS), n)
    names = np.array(make_names(code, [SECTORS[i] for i in sector_idx], rng), dtype=object)
    ipo_days = rng.uniform(0, (HORIZON - EPOCH).days, ipo)
    first = np.concatenate([np.zeros(k0, dtype=np.int64), np.searchsorted(
        sess.to_numpy(), (EPOCH + pd.to_timedelta(ipo_days, unit="D")).to_numpy())])
    listed = sess.to_numpy()[np.minimum(first, len(sess) - 1)].astype("datetime64[ns]")
    listed[:k0] = (EPOCH - pd.to_timedelta(rng.integers(30, 20 * 365, k0), unit="D")
                   ).to_numpy()
    last = _after(rng, sess, first, DELIST_HAZARD, 60)
    split_g = _after(rng, sess, first, SPLIT_HAZARD, 20)
    split_g = np.where(split_g < last - 20, split_g, NEVER)
    ratios = np.array(m.sandbox["split_ratios"], dtype=np.float64)
    split_ratio = np.where(split_g < NEVER, ratios[rng.integers(0, len(ratios), n)], 1.0)
    change_g = _after(rng, sess, first, TICKER_HAZARD, 20)
    change_g = np.where(change_g < last, change_g, NEVER)
    spec = m.sandbox["price"]
    log_p0 = np.log(np.maximum(np.exp(rng.normal(np.log(float(spec["median"])),
                                                 spec["log_sd"], n)), float(spec["floor"])))
    pool = Pool(code, isin, np.array(tickers[:n], dtype=object),
                np.array(tickers[n:2 * n], dtype=object), sector_idx, names, listed, first,
                last, split_g, split_ratio, change_g, beta=rng.normal(1.0, 0.25, n),
                vol=rng.uniform(0.01, 0.025, n), log_p0=log_p0,
                adv=np.exp(rng.normal(np.log(2e5), 1.0, n)))
    for name in ("isin", "ticker", "new_ticker", "sector_idx", "name", "listed", "first",
                 "last", "split_g", "split_ratio", "change_g", "beta", "vol", "log_p0", "adv"):
        setattr(pool, name, getattr(pool, name)[order])
    return pool
