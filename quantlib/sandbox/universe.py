"""The seeded sandbox universe: the truth every vendor delivery is written from.

How :func:`generate` builds one market (all steps vectorized over a session x asset grid):

1. sessions from the market's exchange calendar in ``[start, end]``;
2. assets: ISIN, ticker, GICS-like sector, name; ~15 % list mid-period, ~8 % per ten
   years delist (their last bar is their last trading day, ``delisted`` is that day);
3. daily log returns = beta x market factor + sector factor + idiosyncratic noise, all
   Student-t (4 degrees of freedom) for fat tails, clipped to +-30 %;
4. OHLC around the close path, ~3 % of assets split once (prices divide by the ratio
   from the ex date on, volumes multiply), prices rounded to the vendor's precision
   (registry ``sandbox.price.decimals``: KRW/JPY integers, EUR/USD cents) so the truth round-trips exactly through the files;
5. corporate actions, FX and statements (:mod:`quantlib.sandbox.events`).

Rules a reader needs to rebuild ``known_at`` values the vendor formats do not carry:
price bars are known at the session close + the market's vendor lag; FX rates at
:data:`FX_KNOWN_AT_UTC` on their date (the API also sends ``published_ms``); an asset's
master record is known at its listing date (midnight UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from quantlib.calendars import session_closes, sessions
from quantlib.errors import ConfigError
from quantlib.markets import DEFAULT_MARKETS, MARKETS
from quantlib.sandbox import events
from quantlib.sandbox.formats import str_take
from quantlib.sandbox.identifiers import SECTORS, make_isins, make_names, make_tickers

__all__ = ["SandboxUniverse", "generate", "PRICE_LAG", "FX_KNOWN_AT_UTC", "MARKET_SEED"]

PRICE_LAG = pd.Timedelta(minutes=15)
"""The usual vendor lag; each market's bars use its registry ``vendor_lag_minutes``."""
FX_KNOWN_AT_UTC = events.FX_KNOWN_AT_UTC
#: random stream of each market (registry ``sandbox.seed``), independent of the others
MARKET_SEED = {code: m.sandbox["seed"] for code, m in MARKETS.items() if m.sandbox}
CALENDAR_SPAN = (pd.Timestamp("2000-01-04"), pd.Timestamp("2030-12-31"))   # quantlib.calendars
_STR = pd.StringDtype("pyarrow", na_value=np.nan)


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


@dataclass
class _Market:
    """Intermediate per-market state shared by the price and event generators."""

    code: str
    sessions: pd.DatetimeIndex
    isin: np.ndarray
    first: np.ndarray          # index of the first bar per asset
    last: np.ndarray           # index of the last bar per asset
    listed: np.ndarray         # datetime64[ns]
    delisted: np.ndarray       # datetime64[ns], NaT when still listed
    split_idx: np.ndarray      # ex-date index or -1
    split_ratio: np.ndarray
    sector_idx: np.ndarray
    close: np.ndarray | None = None   # (T, N) unadjusted close, NaN when not listed


def _period(years: float, end: str | pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    end_ts = pd.Timestamp(end).normalize()
    start = end_ts - pd.Timedelta(days=round(365.25 * years)) + pd.Timedelta(days=1)
    return start, end_ts


def _check_args(n_assets: int, years: float, markets: tuple[str, ...]) -> None:
    if not 5 <= n_assets <= 20_000:
        raise ConfigError("n_assets must be between 5 and 20000", found=str(n_assets),
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


def generate(n_assets: int = 300, years: float = 10, seed: int = 42, end: str = "2025-12-31",
             markets: tuple[str, ...] | list[str] = DEFAULT_MARKETS) -> SandboxUniverse:
    """Generate a deterministic global equity universe (the sandbox truth).

    Parameters
    ----------
    n_assets : int
        Assets per market (listed at some point in the period).
    years : float
        Length of the period ending at ``end``.
    seed : int
        Seed; the same arguments always give identical frames. Markets draw from
        independent streams, so ``markets=("US",)`` equals the US part of the full set.
    end : str
        Last calendar date of the period.
    markets : sequence of str
        Market codes with a ``sandbox`` entry in ``quantlib/markets.yaml`` (default: the
        registry's default markets).

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
    """
    markets = tuple(markets)
    _check_args(n_assets, years, markets)
    start, end_ts = _period(years, end)
    if start < CALENDAR_SPAN[0] or end_ts > CALENDAR_SPAN[1]:
        raise ConfigError(
            f"the sandbox period must lie within the exchange calendars' span "
            f"{CALENDAR_SPAN[0].date()}..{CALENDAR_SPAN[1].date()}",
            found=f"{start.date()}..{end_ts.date()}", fix="pass fewer years or another end",
            field="years")
    parts: dict[str, list[Any]] = {k: [] for k in
                                            ("assets", "symbols", "prices", "ca", "st")}
    for code in markets:
        rng = np.random.default_rng([seed, MARKET_SEED[code]])
        mk, assets, symbols = _make_assets(code, n_assets, start, end_ts, rng)
        parts["assets"].append(assets)
        parts["symbols"].append(symbols)
        parts["prices"].append(_make_prices(mk, rng))
        parts["ca"].append(events.corporate_actions(mk, rng))
        parts["st"].append(events.statements(mk, rng, end_ts))
    fx = events.fx(markets, start, end_ts, np.random.default_rng([seed, 99]))
    names = {"assets": "assets", "symbols": "symbols", "prices": "prices",
             "corporate_actions": "ca", "statements": "st"}
    bounds = {name: _ranges(markets, parts[key]) for name, key in names.items()}
    frames = {name: _concat(parts[key]) for name, key in names.items() if name != "prices"}
    frames["prices"] = _price_frame(parts["prices"])
    return SandboxUniverse(**frames, fx=fx, start=start, end=end_ts, seed=seed,
                           markets=markets, bounds=bounds)


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


def _lifetimes(n: int, t: int, years: float, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """First and last bar index per asset: ~15 % list late, ~8 %/10 y delist."""
    first = np.zeros(n, dtype=np.int64)
    late = rng.random(n) < 0.15
    if t > 140:
        first[late] = rng.integers(20, t - 120, late.sum())
    last = np.full(n, t - 1, dtype=np.int64)
    gone = rng.random(n) < 0.08 * years / 10
    lo = first + 60
    ok = gone & (lo < t - 2)
    last[ok] = lo[ok] + (rng.random(ok.sum()) * (t - 2 - lo[ok])).astype(np.int64)
    return first, last


def _make_assets(code: str, n: int, start: pd.Timestamp, end: pd.Timestamp,
                 rng: np.random.Generator) -> tuple[_Market, pd.DataFrame, pd.DataFrame]:
    m = MARKETS[code]
    sess = sessions(code, start, end)
    t = len(sess)
    years = (end - start).days / 365.25
    tickers = make_tickers(code, n + n // 10 + 2, rng)
    isin = np.array(make_isins(code, tickers[:n], rng), dtype=object)
    order = np.argsort(isin, kind="stable")
    isin = isin[order]
    base_tickers = np.array(tickers[:n], dtype=object)[order]
    sector_idx = rng.integers(0, len(SECTORS), n)
    sector = np.array(SECTORS, dtype=object)[sector_idx]
    names = np.array(make_names(code, list(sector), rng), dtype=object)
    first, last = _lifetimes(n, t, years, rng)
    sess_v = sess.to_numpy()
    listed = sess_v[first].copy()
    pre = first == 0
    listed[pre] = (start - pd.to_timedelta(rng.integers(30, 20 * 365, pre.sum()), unit="D")
                   ).to_numpy()
    delisted = np.where(last < t - 1, sess_v[last], np.datetime64("NaT", "ns"))
    split_idx = np.full(n, -1, dtype=np.int64)
    splits = (rng.random(n) < 0.03) & (last - first > 60)
    split_idx[splits] = first[splits] + 20 + (rng.random(splits.sum()) * (
        last[splits] - first[splits] - 40)).astype(np.int64)
    ratios = np.array(m.sandbox["split_ratios"], dtype=np.float64)
    split_ratio = np.where(split_idx >= 0, ratios[rng.integers(0, 3, n)], 1.0)
    mk = _Market(code, sess, isin, first, last, listed.astype("datetime64[ns]"),
                 delisted.astype("datetime64[ns]"), split_idx, split_ratio, sector_idx)
    assets = pd.DataFrame({
        "asset_id": isin, "market": code, "mic": m.mic, "currency": m.currency,
        "sector": sector, "name": names, "listed": mk.listed, "delisted": mk.delisted,
        "known_at": pd.DatetimeIndex(mk.listed).tz_localize("UTC"),
    })
    symbols = _make_symbols(mk, base_tickers, tickers[n:], rng)
    return mk, assets, symbols


def _make_symbols(mk: _Market, base: np.ndarray, spare: list[str],
                  rng: np.random.Generator) -> pd.DataFrame:
    """Ticker history: ~5 % of assets change ticker once (ISIN stays)."""
    n = len(base)
    sess_v = mk.sessions.to_numpy()
    change = (rng.random(n) < 0.05) & (mk.last - mk.first > 40)
    idx = np.flatnonzero(change)[: len(spare)]
    cut = mk.first[idx] + 20 + (rng.random(len(idx)) * (mk.last[idx] - mk.first[idx] - 20)
                                ).astype(np.int64)
    nat = np.datetime64("NaT", "ns")
    valid_to = np.full(n, nat, dtype="datetime64[ns]")
    valid_to[idx] = sess_v[cut]
    old = pd.DataFrame({"asset_id": mk.isin, "symbol": base, "valid_from": mk.listed,
                        "valid_to": valid_to})
    new = pd.DataFrame({"asset_id": mk.isin[idx], "symbol": np.array(spare[: len(idx)],
                                                                      dtype=object),
                        "valid_from": sess_v[cut].astype("datetime64[ns]"),
                        "valid_to": np.full(len(idx), nat, dtype="datetime64[ns]")})
    out = pd.concat([old, new], ignore_index=True)
    return out.sort_values(["asset_id", "valid_from"], ignore_index=True)


def _student(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_t(4, size=shape) / np.sqrt(2.0)


def _round_price(x: np.ndarray, decimals: int) -> np.ndarray:
    """Round to the vendor's precision in place (registry ``sandbox.price.decimals``:
    KRW/JPY integers, EUR/USD cents), at least one tick."""
    if decimals == 0:
        np.rint(x, out=x)
        return np.maximum(x, 1.0, out=x)
    scale = 10.0 ** decimals
    x *= scale
    np.rint(x, out=x)
    np.maximum(x, 1.0, out=x)
    x /= scale
    return x


def _log_returns(mk: _Market, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) daily log returns (market + sector + idiosyncratic, Student-t) and vols."""
    t, n = len(mk.sessions), len(mk.isin)
    beta = rng.normal(1.0, 0.25, n)
    vol = rng.uniform(0.01, 0.025, n)
    mkt = 0.011 * _student(rng, (t,)) + 0.0002
    sec = 0.008 * _student(rng, (t, len(SECTORS)))
    idio = _student(rng, (t, n))
    idio *= vol
    ret = beta * mkt[:, None]
    ret += sec[:, mk.sector_idx]
    ret += idio
    del idio
    return np.clip(ret, -0.3, 0.3, out=ret), vol


def _price_grid(mk: _Market, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(T, N) unadjusted OHLCV from a factor model with fat tails (in-place, low memory)."""
    t, n = len(mk.sessions), len(mk.isin)
    close, vol = _log_returns(mk, rng)
    spec = MARKETS[mk.code].sandbox["price"]
    mu, sd, floor = np.log(float(spec["median"])), spec["log_sd"], float(spec["floor"])
    p0 = np.maximum(np.exp(rng.normal(mu, sd, n)), floor) * mk.split_ratio
    np.cumsum(close, axis=0, out=close)
    close += np.log(p0)
    np.exp(close, out=close)
    open_ = rng.normal(0.0, 0.25, (t, n))
    open_ *= vol
    np.exp(open_, out=open_)
    open_[1:] *= close[:-1]
    open_[0] *= close[0]
    wig = rng.normal(0.0, 0.5, (2, t, n))
    np.abs(wig, out=wig)
    wig *= vol
    high = np.maximum(open_, close)
    high *= np.exp(wig[0], out=wig[0])
    low = np.minimum(open_, close)
    low *= np.exp(np.negative(wig[1], out=wig[1]), out=wig[1])
    del wig
    adv = np.exp(rng.normal(np.log(2e5), 1.0, n))
    volume = np.exp(rng.normal(0.0, 0.5, (t, n)))
    volume *= adv
    out = {"open": open_, "high": high, "low": low, "close": close}
    for j in np.flatnonzero(mk.split_idx >= 0):      # prices / ratio from the ex date on
        e, r = mk.split_idx[j], mk.split_ratio[j]
        for arr in out.values():
            arr[e:, j] /= r
        volume[e:, j] *= r
    for arr in out.values():
        _round_price(arr, spec["decimals"])
    np.maximum(high, np.maximum(open_, close), out=high)
    np.minimum(low, np.minimum(open_, close), out=low)
    np.rint(volume, out=volume)
    out["volume"] = np.maximum(volume, 1.0, out=volume)
    return out


def _make_prices(mk: _Market, rng: np.random.Generator) -> dict[str, Any]:
    """One market's bars as columns (concatenated across markets by :func:`_price_frame`)."""
    grid = _price_grid(mk, rng)
    t = len(mk.sessions)
    rows = np.arange(t)[:, None]
    listed = (rows >= mk.first) & (rows <= mk.last)
    mk.close = np.where(listed, grid["close"], np.nan)
    ti, ai = np.nonzero(listed)
    known = session_closes(mk.code, mk.sessions) + MARKETS[mk.code].vendor_lag
    frame: dict[str, Any] = {"asset_id": str_take(mk.isin, ai),
                             "date": mk.sessions.to_numpy()[ti]}
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = grid[col][ti, ai]
    frame["known_at"] = known.as_unit("ns").asi8[ti]
    return frame


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
