"""The seeded sandbox universe: the truth every vendor delivery is written from.

How :func:`generate` builds one market for a period ``[start, end]``:

1. the market's asset pool (:mod:`quantlib.sandbox.pool`): every asset it ever has on
   absolute time (ISIN, ticker, GICS-like sector, name, listing and delisting session,
   split, ticker change); the period keeps the assets listed at some point in it
   (~14 % list within a ten-year period, ~8 % delist; a delisted asset's last bar is
   its last trading day, ``delisted`` is that day once the clock has reached it);
2. daily bars month by month (:mod:`quantlib.sandbox.bars`): log returns = beta x
   market factor + sector factor + idiosyncratic noise, Student-t (4 degrees of
   freedom) for fat tails, clipped to +-30 %; OHLC around the close path; prices
   unadjusted for splits (a split divides prices by the ratio from the ex date on,
   volumes multiply) and rounded to the vendor's precision (registry
   ``sandbox.price.decimals``: KRW/JPY integers, EUR/USD cents) so the truth
   round-trips exactly through the files;
3. corporate actions, FX and statements (:mod:`quantlib.sandbox.events`).

Prefix-stable: every random draw is seeded by the market and the calendar month (bars)
or made over the whole calendar span with shapes fixed by the pool (everything else),
never by ``start`` or ``end``. ``generate(..., start=s, end=e2)`` therefore equals
``generate(..., start=s, end=e1)`` on every row known by ``e1`` (``e1 < e2``), plus the
sessions, listings, delistings, actions and filings that became known since: a vendor's
clock moving forward (:meth:`quantlib.sandbox.Sandbox.advance`).

Rules a reader needs to rebuild ``known_at`` values the vendor formats do not carry:
price bars are known at the session close + the market's vendor lag; FX rates at
:data:`FX_KNOWN_AT_UTC` on their date (the API also sends ``published_ms``); an asset's
master record is known at its listing date (midnight UTC).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from quantlib.calendars import session_closes
from quantlib.errors import ConfigError
from quantlib.markets import DEFAULT_MARKETS, MARKETS
from quantlib.sandbox import events
from quantlib.sandbox.bars import MonthBars, iter_months
from quantlib.sandbox.formats import str_take
from quantlib.sandbox.identifiers import SECTORS
from quantlib.sandbox.pool import Pool, all_sessions, make_pool

__all__ = ["SandboxUniverse", "generate", "PRICE_LAG", "FX_KNOWN_AT_UTC", "MARKET_SEED",
           "market_size"]

PRICE_LAG = pd.Timedelta(minutes=15)
"""The usual vendor lag; each market's bars use its registry ``vendor_lag_minutes``."""
FX_KNOWN_AT_UTC = events.FX_KNOWN_AT_UTC
#: random stream of each market (registry ``sandbox.seed``), independent of the others
MARKET_SEED = {code: m.sandbox["seed"] for code, m in MARKETS.items() if m.sandbox}
CALENDAR_SPAN = (pd.Timestamp("2000-01-04"), pd.Timestamp("2030-12-31"))   # quantlib.calendars
_STR = pd.StringDtype("pyarrow", na_value=np.nan)
_NAT = np.datetime64("NaT", "ns")
#: actions are announced at most this long before their ex date (the months simulated
#: past ``end`` to value dividends announced by then)
ACTION_LOOKAHEAD = pd.Timedelta(days=50)


@dataclass(eq=False)
class SandboxUniverse:
    """The truth of a sandbox universe, as canonical frames (no provenance columns).

    Frames follow docs/architecture.md "Canonical frames": ``assets``, ``symbols``,
    ``prices`` (sorted by market, date, asset_id), ``corporate_actions``, ``fx``,
    ``statements``.
    """

    assets: pd.DataFrame
    symbols: pd.DataFrame
    prices: pd.DataFrame
    corporate_actions: pd.DataFrame
    fx: pd.DataFrame
    statements: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp
    seed: int
    markets: tuple[str, ...] = field(default=DEFAULT_MARKETS)
    # row ranges of each market in each frame, as generated (frames are concatenated by
    # market); checked against the frame length before use
    bounds: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict, repr=False,
                                                          compare=False)
    n_assets: int | Mapping[str, int] = 300   # the pool's size parameters, to regenerate
    years: float = 10
    #: bars the vendor re-published with new values by its clock (same columns as
    #: ``prices``; ``known_at`` is the correction's publication); ``prices`` already holds
    #: these values (the vendor's latest), with the bar's first ``known_at``
    price_corrections: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def frames(self) -> dict[str, pd.DataFrame]:
        """The six canonical frames by name."""
        return {name: getattr(self, name) for name in
                ("assets", "symbols", "prices", "corporate_actions", "fx", "statements")}

    def market_assets(self, market: str) -> pd.DataFrame:
        """Rows of ``assets`` for one market."""
        return self.market_frame("assets", market)

    def market_frame(self, name: str, market: str) -> pd.DataFrame:
        """Rows of frame ``name`` (not ``fx``) belonging to one market's assets.

        Uses the generated row ranges (a cheap slice) while the frame keeps its length,
        else selects by asset_id.
        """
        frame: pd.DataFrame = getattr(self, name)
        ranges = self.bounds.get(name)
        if ranges is not None and market in ranges and ranges["_len"][1] == len(frame):
            lo, hi = ranges[market]
            return frame.iloc[lo:hi]
        ids = self.assets.loc[self.assets["market"] == market, "asset_id"]
        return frame[frame["asset_id"].isin(ids)]


def _period(years: float, end: str | pd.Timestamp, start: str | pd.Timestamp | None
            ) -> tuple[pd.Timestamp, pd.Timestamp]:
    end_ts = pd.Timestamp(end).normalize()
    if start is not None:
        return pd.Timestamp(start).normalize(), end_ts
    start_ts = end_ts - pd.Timedelta(days=round(365.25 * years)) + pd.Timedelta(days=1)
    return start_ts, end_ts


def market_size(n_assets: int | Mapping[str, int], code: str) -> int:
    """Assets of one market: ``n_assets`` itself, or its entry for ``code``.

    Examples
    --------
    >>> market_size(300, "US"), market_size({"US": 14000, "KR": 5000}, "US")
    (300, 14000)
    """
    if isinstance(n_assets, Mapping):
        if code not in n_assets:
            raise ConfigError(f"n_assets must give a size for every market; {code} has none",
                              found=repr(dict(n_assets)), fix=f"add {code}=N",
                              field="n_assets", market=code)
        return int(n_assets[code])
    return int(n_assets)


def _check_args(n_assets: int | Mapping[str, int], years: float,
                markets: tuple[str, ...]) -> None:
    for code in markets:
        n = market_size(n_assets, code)
        if not 5 <= n <= 20_000:
            raise ConfigError("n_assets must be between 5 and 20000", found=str(n),
                              fix="pass a smaller or larger n_assets", field="n_assets")
    if not 0.25 <= years <= 30:
        raise ConfigError("years must be between 0.25 and 30", found=str(years),
                          fix="pass a shorter or longer period", field="years")
    bad = [m for m in markets if m not in MARKET_SEED]
    if bad or not markets:
        raise ConfigError(f"markets must be a non-empty subset of {', '.join(MARKET_SEED)}",
                          found=repr(markets), fix="pass e.g. markets=('KR', 'US'), or give "
                          "the market a sandbox entry in quantlib/markets.yaml",
                          field="markets")


def _check_period(start: pd.Timestamp, end: pd.Timestamp) -> None:
    if start < CALENDAR_SPAN[0] or end > CALENDAR_SPAN[1]:
        raise ConfigError(
            f"the sandbox period must lie within the exchange calendars' span "
            f"{CALENDAR_SPAN[0].date()}..{CALENDAR_SPAN[1].date()}",
            found=f"{start.date()}..{end.date()}", fix="pass fewer years or another end",
            field="years")
    if start > end:
        raise ConfigError("the sandbox period must start before it ends",
                          found=f"{start.date()}..{end.date()}", fix="pass an earlier start",
                          field="start")


def generate(n_assets: int | Mapping[str, int] = 300, years: float = 10, seed: int = 42, end: str = "2025-12-31",
             markets: tuple[str, ...] | list[str] = DEFAULT_MARKETS,
             start: str | pd.Timestamp | None = None) -> SandboxUniverse:
    """Generate a deterministic global equity universe (the sandbox truth).

    Parameters
    ----------
    n_assets : int or mapping
        About this many assets per market are listed at some point in a ``years``
        window (new listings join as ``end`` moves on; see :mod:`quantlib.sandbox.pool`);
        one number, or one per market code.
    years : float
        Length of the period ending at ``end`` (unless ``start`` is given); also scales
        the pool, so keep it fixed to keep the same universe.
    seed : int
        Seed; the same arguments always give identical frames. Markets draw from
        independent streams, so ``markets=("US",)`` equals the US part of the full set.
    end : str
        Last calendar date of the period: the vendor's clock. A later ``end`` gives the
        same rows on the common range plus what became known since (prefix-stable).
    markets : sequence of str
        Market codes with a ``sandbox`` entry in ``quantlib/markets.yaml`` (default: the
        registry's default markets).
    start : date-like, optional
        First date of the period (default ``end - years``); a running sandbox keeps its
        start while its clock advances.

    Returns
    -------
    SandboxUniverse

    Examples
    --------
    >>> u = generate(n_assets=8, years=0.5, seed=1, markets=("US",))
    >>> sorted(u.frames())
    ['assets', 'corporate_actions', 'fx', 'prices', 'statements', 'symbols']
    >>> u.assets["asset_id"].str.startswith("US").all()
    np.True_
    >>> bool((u.prices["high"] >= u.prices[["open", "close"]].max(axis=1)).all())
    True
    >>> later = generate(n_assets=8, years=0.5, seed=1, markets=("US",), start=u.start,
    ...                  end="2026-01-30")
    >>> later.prices[later.prices["date"] <= u.end].reset_index(drop=True).equals(u.prices)
    True
    """
    markets = tuple(markets)
    _check_args(n_assets, years, markets)
    start_ts, end_ts = _period(years, end, start)
    _check_period(start_ts, end_ts)
    parts: dict[str, list[Any]] = {k: [] for k in ("assets", "symbols", "prices", "ca", "st",
                                                   "fix")}
    for code in markets:
        pool = make_pool(code, market_size(n_assets, code), years, seed)
        _market(pool, seed, start_ts, end_ts, parts)
    fx = events.fx(markets, start_ts, end_ts, seed)
    names = {"assets": "assets", "symbols": "symbols", "prices": "prices",
             "corporate_actions": "ca", "statements": "st"}
    bounds = {name: _ranges(markets, parts[key]) for name, key in names.items()}
    frames = {name: _concat(parts[key]) for name, key in names.items() if name != "prices"}
    frames["prices"] = _price_frame(parts["prices"])
    fixes = parts["fix"]
    corrections = pd.concat(fixes, ignore_index=True) if fixes else None
    return SandboxUniverse(**frames, fx=fx, start=start_ts, end=end_ts, seed=seed,
                           markets=markets, bounds=bounds, n_assets=n_assets, years=years,
                           price_corrections=corrections)


def _window(code: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[int, int]:
    """Session indexes (into the market's :func:`all_sessions`) of the first and last
    session in ``[start, end]``."""
    sess = all_sessions(code).to_numpy()
    return (int(np.searchsorted(sess, start.to_datetime64(), side="left")),
            int(np.searchsorted(sess, end.to_datetime64(), side="right")) - 1)


def _market(pool: Pool, seed: int, start: pd.Timestamp, end: pd.Timestamp,
            parts: dict[str, list[Any]]) -> None:
    """Append one market's frames to ``parts``."""
    g0, g1 = _window(pool.code, start, end)
    sel = np.flatnonzero((pool.first <= g1) & (pool.last >= g0))
    sess = all_sessions(pool.code).to_numpy()
    delisted = np.where(pool.last[sel] <= g1, sess[np.minimum(pool.last[sel], len(sess) - 1)],
                        _NAT).astype("datetime64[ns]")
    parts["assets"].append(_assets_frame(pool, sel, delisted))
    parts["symbols"].append(_symbols_frame(pool, sel, g1))
    divs = events.dividend_schedule(pool, seed)
    in_window = np.zeros(len(pool), dtype=bool)
    in_window[sel] = True
    cut = _clock_ns(end)
    through = int(np.searchsorted(sess, (end + ACTION_LOOKAHEAD).to_datetime64()))
    bars, div_parts = [], []
    for month in iter_months(pool, seed, g0, g1, through):
        if len(month.g):
            bars.append(month)
        div_parts.append(events.dividend_values(divs, month, g0, in_window, cut, pool.code))
    fixes = _corrections(bars, cut)
    parts["fix"].append(_corrections_frame(pool, fixes))
    parts["prices"].append(_bar_columns(pool, bars, g0, g1, fixes))
    dividends = {k: np.concatenate([d[k] for d in div_parts]) for k in
                 ("j", "g", "value", "known_ns")} if div_parts else None
    parts["ca"].append(_actions_frame(pool, seed, (g0, in_window, cut), dividends))
    parts["st"].append(events.statements(pool, seed, sel, pd.Timestamp(sess[g0]), end,
                                         delisted))


def _assets_frame(pool: Pool, sel: np.ndarray, delisted: np.ndarray) -> pd.DataFrame:
    m = MARKETS[pool.code]
    listed = pool.listed[sel]
    return pd.DataFrame({
        "asset_id": pool.isin[sel], "market": pool.code, "mic": m.mic, "currency": m.currency,
        "sector": np.array(SECTORS, dtype=object)[pool.sector_idx[sel]],
        "name": pool.name[sel], "listed": listed, "delisted": delisted,
        "known_at": pd.DatetimeIndex(listed).tz_localize("UTC"),
    })


def _symbols_frame(pool: Pool, sel: np.ndarray, g1: int) -> pd.DataFrame:
    """Ticker history: the first ticker, and the new one from a change on or before g1."""
    sess = all_sessions(pool.code).to_numpy()
    change = pool.change_g[sel]
    done = change <= g1
    cut = sess[np.minimum(change, len(sess) - 1)].astype("datetime64[ns]")
    old = pd.DataFrame({"asset_id": pool.isin[sel], "symbol": pool.ticker[sel],
                        "valid_from": pool.listed[sel],
                        "valid_to": np.where(done, cut, _NAT).astype("datetime64[ns]")})
    new = pd.DataFrame({"asset_id": pool.isin[sel][done], "symbol": pool.new_ticker[sel][done],
                        "valid_from": cut[done],
                        "valid_to": np.full(int(done.sum()), _NAT, dtype="datetime64[ns]")})
    out = pd.concat([old, new], ignore_index=True)
    return out.sort_values(["asset_id", "valid_from"], ignore_index=True)


def _clock_ns(end: pd.Timestamp) -> int:
    """The clock's instant: everything known before midnight UTC after ``end``."""
    return int((end + pd.Timedelta(days=1)).value)


def _actions_frame(pool: Pool, seed: int, which: tuple[int, np.ndarray, int],
                   dividends: dict[str, np.ndarray] | None) -> pd.DataFrame:
    splits = events.splits(pool, seed, *which)
    if dividends is None or not len(dividends["j"]):
        return splits.sort_values(["asset_id", "ex_date", "kind"], ignore_index=True)
    sess = all_sessions(pool.code).to_numpy()
    divs = pd.DataFrame({
        "asset_id": pool.isin[dividends["j"]], "ex_date": sess[dividends["g"]],
        "kind": "dividend", "value": dividends["value"],
        "known_at": pd.DatetimeIndex(dividends["known_ns"]).tz_localize("UTC")})
    out = pd.concat([splits, divs], ignore_index=True)
    return out.sort_values(["asset_id", "ex_date", "kind"], ignore_index=True)


def _corrections(months: list[MonthBars], cut: int) -> dict[str, np.ndarray]:
    """The corrections published before the clock's instant ``cut`` (ns), as columns."""
    fixes = [m.corrections for m in months if m.corrections is not None]
    cols = {k: np.concatenate([f[k] for f in fixes]) if fixes else np.zeros(0, dtype=np.int64)
            for k in ("g", "j", "open", "high", "low", "close", "volume", "known_ns")}
    ok = cols["known_ns"] < cut
    return {k: v[ok] for k, v in cols.items()}


def _corrections_frame(pool: Pool, fixes: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({
        "asset_id": pd.Series(pool.isin[fixes["j"]], dtype=_STR),
        "date": all_sessions(pool.code).to_numpy()[fixes["g"]],
        **{c: fixes[c].astype(np.float64) for c in ("open", "high", "low", "close", "volume")},
        "known_at": pd.DatetimeIndex(fixes["known_ns"]).tz_localize("UTC")})


def _bar_columns(pool: Pool, months: list[MonthBars], g0: int, g1: int,
                 fixes: dict[str, np.ndarray]) -> dict[str, Any]:
    """One market's bars as columns (concatenated across markets by :func:`_price_frame`),
    with the corrections published by the clock applied."""
    g = np.concatenate([m.g for m in months]) if months else np.zeros(0, dtype=np.int64)
    j = np.concatenate([m.j for m in months]) if months else np.zeros(0, dtype=np.int64)
    sess = all_sessions(pool.code)
    window = sess[g0:g1 + 1]
    known = (session_closes(pool.code, window) + MARKETS[pool.code].vendor_lag).as_unit("ns")
    frame: dict[str, Any] = {"asset_id": str_take(pool.isin, j),
                             "date": sess.to_numpy()[g]}
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = (np.concatenate([getattr(m, col) for m in months]) if months
                      else np.zeros(0))
    if len(fixes["g"]):      # bars are sorted by (session, pool index)
        rows = np.searchsorted(g * len(pool) + j, fixes["g"] * len(pool) + fixes["j"])
        for col in ("open", "high", "low", "close", "volume"):
            frame[col][rows] = fixes[col]
    frame["known_at"] = known.asi8[g - g0]
    months.clear()
    return frame


def _ranges(markets: tuple[str, ...], parts: list[Any]) -> dict[str, tuple[int, int]]:
    ends = np.cumsum([0] + [len(p["date"]) if isinstance(p, dict) else len(p) for p in parts])
    out = {m: (int(ends[k]), int(ends[k + 1])) for k, m in enumerate(markets)}
    out["_len"] = (0, int(ends[-1]))
    return out


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-market frames, releasing each part as soon as it is copied."""
    out = pd.concat(parts, ignore_index=True)
    parts.clear()
    return out


def _price_frame(parts: list[dict[str, Any]]) -> pd.DataFrame:
    """Concatenate per-market bar columns into one frame (one copy, not two)."""
    cols: dict[str, Any] = {
        "asset_id": pd.Series(pa.chunked_array([pa.array(p["asset_id"]) for p in parts]
                                               ).combine_chunks(), dtype=_STR)}
    for col in ("date", "open", "high", "low", "close", "volume"):
        cols[col] = np.concatenate([p[col] for p in parts])
    cols["known_at"] = pd.DatetimeIndex(np.concatenate([p["known_at"] for p in parts]).view(
        "datetime64[ns]")).tz_localize("UTC")
    parts.clear()
    return pd.DataFrame(cols)
