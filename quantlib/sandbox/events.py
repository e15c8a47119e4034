"""Corporate actions, FX rates and bitemporal financial statements of the sandbox.

Called by :func:`quantlib.sandbox.generate` once the price grid of a market exists
(dividends are sized from the previous close).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quantlib.calendars import global_sessions
from quantlib.errors import QuantlibError
from quantlib.markets import MARKETS, STATEMENT_FIELDS

if TYPE_CHECKING:
    from quantlib.sandbox.universe import _Market

__all__ = ["corporate_actions", "statements", "fx", "STATEMENT_FIELDS", "FX_KNOWN_AT_UTC",
           "FX_DECIMALS", "FX_CENTER"]

FX_KNOWN_AT_UTC = pd.Timedelta(hours=21, minutes=15)
#: units per USD around which each non-base currency wanders (registry ``sandbox.fx``)
FX_CENTER = {m.currency: float(m.sandbox["fx"]["per_usd"]) for m in MARKETS.values()
             if "fx" in m.sandbox}
#: decimals of the rates the API sends
FX_DECIMALS = {m.currency: int(m.sandbox["fx"]["decimals"]) for m in MARKETS.values()
               if "fx" in m.sandbox}
_NAT = np.datetime64("NaT", "ns")


def _announce(ex_dates: np.ndarray, tz: str, rng: np.random.Generator,
              lo: int, hi: int) -> pd.DatetimeIndex:
    """Announcement instants ``lo..hi`` days before ``ex_dates`` in local office hours."""
    days = pd.to_timedelta(rng.integers(lo, hi + 1, len(ex_dates)), unit="D")
    minutes = pd.to_timedelta(rng.integers(8 * 60, 18 * 60, len(ex_dates)), unit="min")
    local = pd.DatetimeIndex(ex_dates) - days + minutes
    return local.tz_localize(tz, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")


def _round_cash(x: np.ndarray, code: str) -> np.ndarray:
    decimals = MARKETS[code].sandbox["price"]["decimals"]
    if decimals == 0:
        return np.maximum(np.rint(x), 1.0)
    scale = 10.0 ** decimals
    return np.maximum(np.rint(x * scale), 1.0) / scale


def _dividend_dates(mk: _Market, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(N, K) candidate ex-date indexes into the sessions (-1 where none) and payouts/year."""
    sess = mk.sessions
    n = len(mk.isin)
    years = np.arange(sess[0].year, sess[-1].year + 1)
    spec = MARKETS[mk.code].sandbox["dividends"]
    base = np.array([pd.Timestamp(y, m, spec["day"]) for y in years for m in spec["months"]],
                    dtype="datetime64[ns]")
    lo, hi = spec["offset_days"]
    offset, freq = rng.integers(lo, hi, n), len(spec["months"])
    dates = base[None, :] + offset[:, None].astype("timedelta64[D]")
    idx = np.searchsorted(sess.to_numpy(), dates.ravel()).reshape(dates.shape)
    payer = rng.random(n) < spec["payer_fraction"]
    ok = (idx >= 1) & (idx < len(sess)) & (idx >= mk.first[:, None] + 5) & (
        idx <= mk.last[:, None]) & payer[:, None]
    return np.where(ok, idx, -1), freq


def corporate_actions(mk: _Market, rng: np.random.Generator) -> pd.DataFrame:
    """Splits (from the price grid) and cash dividends of one market."""
    tz = MARKETS[mk.code].tz
    sess_v = mk.sessions.to_numpy()
    s = np.flatnonzero(mk.split_idx >= 0)
    split_dates = sess_v[mk.split_idx[s]]
    splits = pd.DataFrame({"asset_id": mk.isin[s], "ex_date": split_dates, "kind": "split",
                           "value": mk.split_ratio[s],
                           "known_at": _announce(split_dates, tz, rng, 20, 45)})
    idx, freq = _dividend_dates(mk, rng)
    yld = rng.uniform(0.01, 0.04, len(mk.isin))
    ai, ki = np.nonzero(idx >= 0)
    ti = idx[ai, ki]
    if mk.close is None:
        raise QuantlibError("the price grid must exist before corporate actions",
                            fix="call _make_prices first", market=mk.code)
    prev_close = mk.close[ti - 1, ai]
    value = _round_cash(yld[ai] / freq * prev_close, mk.code)
    div_dates = sess_v[ti]
    divs = pd.DataFrame({"asset_id": mk.isin[ai], "ex_date": div_dates, "kind": "dividend",
                         "value": value, "known_at": _announce(div_dates, tz, rng, 10, 40)})
    out = pd.concat([splits, divs], ignore_index=True)
    return out.sort_values(["asset_id", "ex_date", "kind"], ignore_index=True)


def _fundamental_levels(mk: _Market, q: int, rng: np.random.Generator) -> np.ndarray:
    """(N, Q, 6) statement values before rounding, fields in STATEMENT_FIELDS order."""
    n = len(mk.isin)
    shares = np.rint(np.exp(rng.normal(np.log(5e7), 0.8, n)))
    if mk.close is None:
        raise QuantlibError("the price grid must exist before statements",
                            fix="call _make_prices first", market=mk.code)
    price0 = mk.close[mk.first, np.arange(n)]
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


def statements(mk: _Market, rng: np.random.Generator, end: pd.Timestamp) -> pd.DataFrame:
    """Quarterly statements, announced 20-90 days after period end, ~10 % restated later."""
    qe = pd.date_range(mk.sessions[0] - pd.Timedelta(days=92), end, freq="QE")
    q, n = len(qe), len(mk.isin)
    levels = _fundamental_levels(mk, q, rng)
    qe_v = qe.to_numpy().astype("datetime64[ns]")
    split_date = np.where(mk.split_idx >= 0, mk.sessions.to_numpy()[mk.split_idx], _NAT)
    after = (qe_v[None, :] >= split_date[:, None]) & (mk.split_idx >= 0)[:, None]
    levels[..., 4] *= np.where(after, mk.split_ratio[:, None], 1.0)
    stop = np.where(np.isnat(mk.delisted), end.to_datetime64(), mk.delisted)
    lag = rng.integers(20, 90, (n, q)).astype("timedelta64[D]") + rng.integers(
        0, 86_400, (n, q)).astype("timedelta64[s]")
    known = qe_v[None, :] + lag
    cutoff = (stop + np.timedelta64(1, "D"))[:, None]
    keep = (qe_v[None, :] >= (mk.listed - np.timedelta64(365, "D"))[:, None]) & (
        qe_v[None, :] <= stop[:, None]) & (known < cutoff)
    ai, qi = np.nonzero(keep)
    vals = np.rint(levels[ai, qi])                       # (P, 6)
    first = _statement_rows(mk.isin[ai], qe_v[qi], vals, known[ai, qi])
    restate = (rng.random(len(ai)) < 0.115)[:, None] & (rng.random((len(ai), 6)) < 0.35)
    restate[np.arange(len(ai)), rng.integers(0, 6, len(ai))] |= restate.any(axis=1)
    later = known[ai, qi] + rng.integers(30, 301, len(ai)).astype("timedelta64[D]")
    change = 1 + rng.choice([-1.0, 1.0], vals.shape) * rng.uniform(0.01, 0.05, vals.shape)
    second = _statement_rows(mk.isin[ai], qe_v[qi], np.rint(vals * change), later)
    fits = (restate & (later < cutoff[ai, 0])[:, None]).ravel()
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


def fx(markets: tuple[str, ...], start: pd.Timestamp, end: pd.Timestamp,
       rng: np.random.Generator) -> pd.DataFrame:
    """Daily USD rates of the markets' currencies on the union of their sessions.

    ``rate`` is USD per unit of the currency, ``1 / per_usd`` where ``per_usd`` (what
    the API sends) is rounded to :data:`FX_DECIMALS`.
    """
    dates = global_sessions(list(markets), start, end)
    wanted = [MARKETS[m].currency for m in markets]
    frames = []
    for cur in FX_CENTER:   # one shock stream per registry currency, used or not
        shocks = rng.normal(0.0, 0.005, len(dates))
        if cur not in wanted:
            continue
        x = np.zeros(len(dates))
        for i in range(1, len(dates)):   # AR(1) recursion, a few thousand steps
            x[i] = 0.995 * x[i - 1] + shocks[i]
        per_usd = np.round(FX_CENTER[cur] * np.exp(x), FX_DECIMALS[cur])
        frames.append(pd.DataFrame({
            "date": dates.to_numpy(), "currency": cur, "rate": 1.0 / per_usd,
            "known_at": (dates + FX_KNOWN_AT_UTC).tz_localize("UTC")}))
    if not frames:
        return pd.DataFrame({"date": pd.DatetimeIndex([], dtype="datetime64[ns]"),
                             "currency": pd.Series([], dtype="str"),
                             "rate": pd.Series([], dtype="float64"),
                             "known_at": pd.DatetimeIndex([], dtype="datetime64[ns, UTC]")})
    return pd.concat(frames, ignore_index=True)
