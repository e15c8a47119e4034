"""Seeded synthetic panels following the backtest data contract.

Until the catalog is filled, tests, docs and benchmarks use
:func:`make_dataset`: an ``xarray.Dataset`` with dims ``(date, asset)`` like the
catalog's ``prices`` + ``fundamentals`` + ``universe`` entries merged, with NaN
where an asset's market is closed (holidays from the real exchange calendars),
before its listing and after its delisting. Nothing is forward-filled except
fundamentals, which are step functions of the latest announced period (PIT).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from quantlib.errors import BacktestError

__all__ = ["make_dataset"]

SECTORS = ("tech", "energy", "health", "finance", "consumer")
CURRENCY = {"US": "USD", "KR": "KRW", "EU": "EUR"}
FX_LEVEL = {"USD": 1.0, "KRW": 1 / 1300.0, "EUR": 1.1}  # base units per 1 unit


def _global_dates(markets: Sequence[str], n_days: int, start: str) -> tuple[
        pd.DatetimeIndex, dict[str, np.ndarray]]:
    if markets:
        from quantlib import calendars

        end = pd.Timestamp(start) + pd.Timedelta(days=int(n_days * 1.6) + 30)
        dates = calendars.global_sessions(list(markets), start, end)[:n_days]
        if len(dates) < n_days:
            raise BacktestError("synthetic dataset needs enough calendar sessions",
                                found=f"{len(dates)} sessions from {start}",
                                fix="use an earlier start or fewer n_days")
        open_ = {m: dates.isin(calendars.sessions(m, dates[0], dates[-1])) for m in markets}
    else:
        dates = pd.bdate_range(start, periods=n_days)
        open_ = {"US": np.ones(n_days, bool)}
    return pd.DatetimeIndex(dates, name="date"), open_


def make_dataset(n_assets: int = 50, n_days: int = 504, seed: int = 0,
                 markets: Sequence[str] = ("US",), start: str = "2015-01-02",
                 delist_fraction: float = 0.1, list_fraction: float = 0.1) -> xr.Dataset:
    """A seeded synthetic panel (date x asset) for backtests.

    Parameters
    ----------
    n_assets, n_days : int
        Panel size; ``n_days`` counts global sessions (union of the markets' sessions).
    seed : int
        Everything is drawn from ``numpy.random.default_rng(seed)``.
    markets : sequence of {"US", "KR", "EU"}
        Assets are spread round-robin over these markets; empty means plain weekdays.
    start : str
        First candidate date.
    delist_fraction, list_fraction : float
        Share of assets delisted part-way / listed late.

    Returns
    -------
    xarray.Dataset
        Variables ``close open volume returns returns_base fx_rate in_universe total_equity
        net_income shares_outstanding``; coords ``market sector currency symbol``;
        ``attrs["snapshot"]`` identifies the generator inputs; ``attrs["synthetic"]`` is
        true, so results on it are marked synthetic (and not published by default).

    Examples
    --------
    >>> ds = make_dataset(n_assets=4, n_days=30, seed=1, markets=())
    >>> ds["close"].dims, ds.sizes["asset"]
    (('date', 'asset'), 4)
    >>> ds.attrs["snapshot"].startswith("synthetic-")
    True
    """
    rng = np.random.default_rng(seed)
    dates, open_ = _global_dates(tuple(markets), n_days, start)
    T, N = len(dates), n_assets
    mkts = list(open_)
    asset_mkt = np.array([mkts[i % len(mkts)] for i in range(N)])
    sector = np.array([SECTORS[i % len(SECTORS)] for i in range(N)])
    currency = np.array([CURRENCY[m] for m in asset_mkt])
    # returns: market factor + sector factor + idiosyncratic, per-asset vol and drift
    vol = rng.uniform(0.01, 0.03, N)
    mkt_f = rng.normal(0.0003, 0.008, T)
    sec_f = {s: rng.normal(0, 0.005, T) for s in SECTORS}
    r = (mkt_f[:, None] + np.stack([sec_f[s] for s in sector], axis=1)
         + rng.normal(0, 1, (T, N)) * vol + rng.normal(0.0002, 0.0004, N))
    r = np.clip(r, -0.5, 0.5)
    session = np.stack([open_[m] for m in asset_mkt], axis=1)
    listed = np.zeros(N, int)
    delisted = np.full(N, T, int)
    late = rng.random(N) < list_fraction
    listed[late] = rng.integers(1, max(2, T // 2), late.sum())
    gone = rng.random(N) < delist_fraction
    lo = np.minimum(np.maximum(listed + 20, T // 2), T - 1)
    delisted[gone] = rng.integers(lo[gone], T)
    t_idx = np.arange(T)[:, None]
    alive = (t_idx >= listed) & (t_idx < delisted)
    bar = alive & session
    # prices: compound returns over bars only (closed days carry no bar)
    step = np.where(bar, r, 0.0)
    level = rng.uniform(10, 200, N) * np.exp(np.cumsum(np.log1p(step), axis=0))
    close = np.where(bar, level, np.nan)
    prev = pd.DataFrame(close).ffill().shift(1).to_numpy()
    returns = np.where(bar, close / prev - 1.0, np.nan)
    fx = np.stack([FX_LEVEL[c] * np.exp(np.cumsum(rng.normal(0, 0.004 if c != "USD" else 0, T)))
                   for c in currency], axis=1)
    value_base = close * fx
    prev_base = pd.DataFrame(value_base).ffill().shift(1).to_numpy()
    returns_base = np.where(bar, value_base / prev_base - 1.0, np.nan)
    open_px = np.where(bar, prev * (1 + rng.normal(0, 0.003, (T, N))), np.nan)
    open_px = np.where(np.isnan(open_px) & bar, close, open_px)
    volume = np.where(bar, np.round(rng.lognormal(12, 1, N) * rng.lognormal(0, 0.3, (T, N))),
                      np.nan)
    fundamentals = _fundamentals(rng, T, N, level, alive)
    coords = {"date": dates, "asset": [f"SYN{i:05d}" for i in range(N)],
              "market": ("asset", asset_mkt.astype(object)),
              "sector": ("asset", sector.astype(object)),
              "currency": ("asset", currency.astype(object)),
              "symbol": ("asset", np.array([f"S{i}" for i in range(N)], dtype=object))}
    dv = {"close": close, "open": open_px, "volume": volume, "returns": returns,
          "returns_base": returns_base, "fx_rate": fx, "in_universe": alive, **fundamentals}
    key = f"{n_assets}|{n_days}|{seed}|{tuple(markets)}|{start}|{delist_fraction}|{list_fraction}"
    snap = "synthetic-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return xr.Dataset({k: (("date", "asset"), v) for k, v in dv.items()}, coords=coords,
                      attrs={"snapshot": snap, "base_currency": "USD", "synthetic": True})


def _fundamentals(rng: np.random.Generator, T: int, N: int, level: np.ndarray,
                  alive: np.ndarray) -> dict[str, np.ndarray]:
    """Quarterly statements announced ~45 sessions after period end, held until the next."""
    shares = rng.uniform(1e7, 1e9, N)
    btm = rng.uniform(0.2, 1.5, N)
    roe = rng.uniform(-0.05, 0.3, N)
    out = {k: np.full((T, N), np.nan) for k in ("total_equity", "net_income",
                                                 "shares_outstanding")}
    for q_end in range(0, T, 63):
        ann = q_end + 45
        if ann >= T:
            break
        drift = rng.normal(1, 0.05, N)
        eq = btm * level[q_end] * shares * drift
        out["total_equity"][ann:] = eq
        out["net_income"][ann:] = eq * (roe + rng.normal(0, 0.02, N)) / 4
        out["shares_outstanding"][ann:] = shares
    for v in out.values():
        v[~alive] = np.nan
    return out
