"""Corporate actions, FX rates and bitemporal financial statements of the sandbox.

Actions are announced ahead of their ex date (dividends 10-40 days, splits 20-45 days),
except :data:`LATE_ACTION_RATE` of them, which the vendor announces 1-10 days *after*
the ex date (a late corporate action: its ``known_at`` is after ``ex_date``; a vendor
serving at its clock includes an action once its ``known_at`` has passed).

Like the bars, every draw is made over the whole calendar span with shapes fixed by the
pool (:mod:`quantlib.sandbox.pool`), so a period's events are a selection that does not
depend on where the period ends. Dividends are sized from the previous close, so their
values are filled in month by month (:func:`dividend_values`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantlib.calendars import global_sessions
from quantlib.markets import MARKETS, STATEMENT_FIELDS
from quantlib.sandbox.bars import MonthBars
from quantlib.sandbox.pool import EPOCH, HORIZON, NEVER, Pool, all_sessions

__all__ = ["Dividends", "dividend_schedule", "dividend_values", "splits", "statements",
           "fx", "STATEMENT_FIELDS", "FX_KNOWN_AT_UTC", "FX_DECIMALS", "FX_CENTER",
           "round_cash", "LATE_ACTION_RATE", "filings"]

FX_KNOWN_AT_UTC = pd.Timedelta(hours=21, minutes=15)
#: units per USD around which each non-base currency wanders (registry ``sandbox.fx``)
FX_CENTER = {m.currency: float(m.sandbox["fx"]["per_usd"]) for m in MARKETS.values()
             if "fx" in m.sandbox}
#: decimals of the rates the API sends
FX_DECIMALS = {m.currency: int(m.sandbox["fx"]["decimals"]) for m in MARKETS.values()
               if "fx" in m.sandbox}
_NAT = np.datetime64("NaT", "ns")
LATE_ACTION_RATE = 0.03
"""Share of actions announced 1-10 days after their ex date."""


def _rng(pool: Pool, seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, MARKETS[pool.code].sandbox["seed"], stream])


def _announce(ex_dates: np.ndarray, tz: str, days: np.ndarray,
              minutes: np.ndarray) -> np.ndarray:
    """Announcement instants (UTC ns) ``days`` before ``ex_dates`` at ``minutes`` local."""
    local = pd.DatetimeIndex(ex_dates) - pd.to_timedelta(days, unit="D") + pd.to_timedelta(
        minutes, unit="min")
    utc = local.tz_localize(tz, nonexistent="shift_forward", ambiguous=False).tz_convert(
        "UTC")
    return utc.as_unit("ns").asi8


def round_cash(x: np.ndarray, code: str) -> np.ndarray:
    """Cash amounts at the market's price precision, at least one tick.

    Examples
    --------
    >>> round_cash(np.array([1234.4]), "KR").tolist()
    [1234.0]
    """
    decimals = MARKETS[code].sandbox["price"]["decimals"]
    if decimals == 0:
        return np.maximum(np.rint(x), 1.0)
    scale = 10.0 ** decimals
    return np.maximum(np.rint(x * scale), 1.0) / scale


def splits(pool: Pool, seed: int, g0: int, in_window: np.ndarray,
           cut_ns: int) -> pd.DataFrame:
    """Splits with their ex date from session ``g0`` on, announced (20-45 days before the
    ex date) before ``cut_ns``, of the pool assets flagged ``in_window``."""
    rng = _rng(pool, seed, 9)
    days, minutes = rng.integers(20, 46, len(pool)), rng.integers(8 * 60, 18 * 60, len(pool))
    days = np.where(rng.random(len(pool)) < LATE_ACTION_RATE, -rng.integers(1, 11, len(pool)),
                    days)
    s = np.flatnonzero((pool.split_g >= g0) & (pool.split_g < NEVER) & in_window)
    dates = all_sessions(pool.code).to_numpy()[pool.split_g[s]]
    known = _announce(dates, MARKETS[pool.code].tz, days[s], minutes[s])
    ok = known < cut_ns
    return pd.DataFrame({"asset_id": pool.isin[s][ok], "ex_date": dates[ok], "kind": "split",
                         "value": pool.split_ratio[s][ok],
                         "known_at": pd.DatetimeIndex(known[ok]).tz_localize("UTC")})


@dataclass
class Dividends:
    """Every dividend a market's pool ever pays: pool index, ex-date session, yield per
    payment and announcement instant (UTC ns), sorted by ex-date session."""

    j: np.ndarray
    g: np.ndarray
    rate: np.ndarray
    known_ns: np.ndarray


@functools.lru_cache(maxsize=8)
def dividend_schedule(pool: Pool, seed: int) -> Dividends:
    """Ex dates from the registry's ``sandbox.dividends`` (months, day, per-asset offset),
    for payers only and at least 5 sessions after the first bar; announced 10-40 days
    before (or, late, 1-10 days after)."""
    rng = _rng(pool, seed, 8)
    sess = all_sessions(pool.code)
    spec = MARKETS[pool.code].sandbox["dividends"]
    n, freq = len(pool), len(spec["months"])
    base = np.array([pd.Timestamp(y, m, spec["day"]) for y in range(EPOCH.year, HORIZON.year + 1)
                     for m in spec["months"]], dtype="datetime64[ns]")
    lo, hi = spec["offset_days"]
    offset = rng.integers(lo, hi, n)
    payer = rng.random(n) < spec["payer_fraction"]
    yld = rng.uniform(0.01, 0.04, n)
    days = rng.integers(10, 41, (n, len(base)))
    minutes = rng.integers(8 * 60, 18 * 60, (n, len(base)))
    days = np.where(rng.random(days.shape) < LATE_ACTION_RATE,
                    -rng.integers(1, 11, days.shape), days)
    idx = np.searchsorted(sess.to_numpy(), base[None, :] + offset[:, None].astype(
        "timedelta64[D]"))
    ok = (idx < len(sess)) & (idx >= pool.first[:, None] + 5) & (
        idx <= pool.last[:, None]) & payer[:, None]
    j, k = np.nonzero(ok)
    g = idx[j, k]
    known = _announce(sess.to_numpy()[g], MARKETS[pool.code].tz, days[j, k], minutes[j, k])
    order = np.argsort(g, kind="stable")
    return Dividends(j[order], g[order], (yld / freq)[j[order]], known[order])


def dividend_values(divs: Dividends, month: MonthBars, g0: int, in_window: np.ndarray,
                    cut_ns: int, code: str) -> dict[str, np.ndarray]:
    """The month's dividends with ex date from session ``g0`` on, announced before
    ``cut_ns``, of pool assets flagged ``in_window``, valued off the previous close:
    pool index ``j``, session ``g``, ``value``, ``known_ns``."""
    a, b = np.searchsorted(divs.g, [max(month.lo, g0), month.hi])
    ok = a + np.flatnonzero((divs.known_ns[a:b] < cut_ns) & in_window[divs.j[a:b]])
    j, g = divs.j[ok], divs.g[ok]
    row = g - 1 - month.lo
    prev = np.where(row >= 0, month.close_unadj[np.maximum(row, 0), j], month.prev_close[j])
    return {"j": j, "g": g, "value": round_cash(divs.rate[ok] * prev, code),
            "known_ns": divs.known_ns[ok]}


def _fundamental_levels(pool: Pool, q: int, rng: np.random.Generator) -> np.ndarray:
    """(N, Q, 6) statement values before rounding, fields in STATEMENT_FIELDS order."""
    n = len(pool)
    shares = np.rint(np.exp(rng.normal(np.log(5e7), 0.8, n)))
    price0 = np.exp(pool.log_p0) * pool.split_ratio
    rev0 = shares * price0 * rng.uniform(0.03, 0.15, n)
    growth = np.cumsum(rng.normal(0.01, 0.05, (n, q)), axis=1)
    season = 0.05 * np.sin(np.arange(q) * np.pi / 2)[None, :]
    rev = rev0[:, None] * np.exp(growth + season)
    ni = rev * (rng.normal(0.08, 0.06, n)[:, None] + rng.normal(0, 0.03, (n, q)))
    ta = rev * 4 * rng.uniform(1, 3, n)[:, None] * np.exp(rng.normal(0, 0.02, (n, q)))
    te = ta * rng.uniform(0.2, 0.6, n)[:, None] * np.exp(rng.normal(0, 0.02, (n, q)))
    ocf = ni * rng.uniform(0.8, 1.5, n)[:, None] + rev * rng.normal(0, 0.02, (n, q))
    so = np.broadcast_to(shares[:, None], (n, q)).copy()
    return np.stack([rev, ni, te, ta, so, ocf], axis=-1)


@dataclass
class _Filings:
    qe: np.ndarray          # (Q,) quarter ends
    values: np.ndarray      # (N, Q, 6) first filing, rounded
    known: np.ndarray       # (N, Q) first filing instant
    restate: np.ndarray     # (N, Q, 6) which fields are restated
    later: np.ndarray       # (N, Q) restatement instant
    change: np.ndarray      # (N, Q, 6) restated / first


@functools.lru_cache(maxsize=8)
def filings(pool: Pool, seed: int) -> _Filings:
    """Every quarterly filing the pool's assets ever publish (cached): first values and
    instants, which fields are restated, when and by how much."""
    rng = _rng(pool, seed, 10)
    qe = pd.date_range(EPOCH - pd.Timedelta(days=92), HORIZON, freq="QE").to_numpy().astype(
        "datetime64[ns]")
    n, q = len(pool), len(qe)
    levels = _fundamental_levels(pool, q, rng)
    split_date = np.where(pool.split_g < NEVER, all_sessions(pool.code).to_numpy()[
        np.minimum(pool.split_g, len(all_sessions(pool.code)) - 1)], _NAT)
    after = (qe[None, :] >= split_date[:, None]) & (pool.split_g < NEVER)[:, None]
    levels[..., 4] *= np.where(after, pool.split_ratio[:, None], 1.0)
    known = qe[None, :] + rng.integers(20, 90, (n, q)).astype("timedelta64[D]") + \
        rng.integers(0, 86_400, (n, q)).astype("timedelta64[s]")
    restate = (rng.random((n, q)) < 0.115)[..., None] & (rng.random((n, q, 6)) < 0.35)
    pick = rng.integers(0, 6, (n, q))
    np.put_along_axis(restate, pick[..., None], restate.any(axis=2, keepdims=True) | (
        np.take_along_axis(restate, pick[..., None], axis=2)), axis=2)
    later = known + rng.integers(30, 301, (n, q)).astype("timedelta64[D]")
    change = 1 + rng.choice([-1.0, 1.0], (n, q, 6)) * rng.uniform(0.01, 0.05, (n, q, 6))
    return _Filings(qe, np.rint(levels), known, restate, later, change)


def statements(pool: Pool, seed: int, sel: np.ndarray, first_session: pd.Timestamp,
               end: pd.Timestamp, delisted: np.ndarray) -> pd.DataFrame:
    """Quarterly statements of the pool assets ``sel``: announced 20-90 days after the
    period end, ~10 % restated 30-300 days later; only what is published by ``end``
    (and before the delisting) and for quarters from the one before ``first_session``."""
    f = filings(pool, seed)
    stop = np.where(np.isnat(delisted), end.to_datetime64(), delisted)
    cutoff = (stop + np.timedelta64(1, "D"))[:, None]
    qe = f.qe[None, :]
    listed = pool.listed[sel]
    keep = (qe >= (listed - np.timedelta64(365, "D"))[:, None]) & (qe <= stop[:, None]) & (
        f.known[sel] < cutoff) & (qe >= (first_session - pd.Timedelta(days=92)).to_datetime64())
    ai, qi = np.nonzero(keep)
    si = sel[ai]
    vals = f.values[si, qi]
    first = _statement_rows(pool.isin[si], f.qe[qi], vals, f.known[si, qi])
    fits = (f.restate[si, qi] & (f.later[si, qi] < cutoff[ai, 0])[:, None]).ravel()
    second = _statement_rows(pool.isin[si], f.qe[qi], np.rint(vals * f.change[si, qi]),
                             f.later[si, qi])
    out = pd.concat([first, second[fits]], ignore_index=True)
    return out.sort_values(["asset_id", "field", "period_end", "known_at"], ignore_index=True)


def _statement_rows(isin: np.ndarray, period_end: np.ndarray, vals: np.ndarray,
                    known: np.ndarray) -> pd.DataFrame:
    k = len(STATEMENT_FIELDS)
    return pd.DataFrame({
        "asset_id": np.repeat(isin, k),
        "field": np.tile(np.array(STATEMENT_FIELDS, dtype=object), len(isin)),
        "period_end": np.repeat(period_end, k),
        "value": vals.ravel().astype(np.float64),
        "known_at": pd.DatetimeIndex(np.repeat(known, k).astype("datetime64[ns]")
                                     ).tz_localize("UTC"),
    })


@functools.lru_cache(maxsize=8)
def _fx_path(seed: int, currency: str) -> pd.Series:
    """Units per USD on every calendar day of the span: AR(1) around the center."""
    days = pd.date_range(EPOCH, HORIZON, freq="D")
    k = list(FX_CENTER).index(currency)
    shocks = np.random.default_rng([seed, 99, k]).normal(0.0, 0.005, len(days))
    x = np.zeros(len(days))
    for i in range(1, len(days)):   # AR(1) recursion, ~11,000 steps
        x[i] = 0.995 * x[i - 1] + shocks[i]
    return pd.Series(np.round(FX_CENTER[currency] * np.exp(x), FX_DECIMALS[currency]),
                     index=days)


def fx(markets: tuple[str, ...], start: pd.Timestamp, end: pd.Timestamp,
       seed: int) -> pd.DataFrame:
    """Daily USD rates of the markets' currencies on the union of their sessions.

    ``rate`` is USD per unit of the currency, ``1 / per_usd`` where ``per_usd`` (what
    the API sends) is rounded to :data:`FX_DECIMALS`.
    """
    dates = global_sessions(list(markets), start, end)
    wanted = [MARKETS[m].currency for m in markets]
    frames = []
    for cur in FX_CENTER:
        if cur not in wanted:
            continue
        per_usd = _fx_path(seed, cur).reindex(dates).to_numpy()
        frames.append(pd.DataFrame({
            "date": dates.to_numpy(), "currency": cur, "rate": 1.0 / per_usd,
            "known_at": (dates + FX_KNOWN_AT_UTC).tz_localize("UTC")}))
    if not frames:
        return pd.DataFrame({"date": pd.DatetimeIndex([], dtype="datetime64[ns]"),
                             "currency": pd.Series([], dtype="str"),
                             "rate": pd.Series([], dtype="float64"),
                             "known_at": pd.DatetimeIndex([], dtype="datetime64[ns, UTC]")})
    return pd.concat(frames, ignore_index=True)
