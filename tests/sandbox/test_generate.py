"""The generated truth: determinism, schema, and realism measured in numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlib.calendars import session_closes, sessions
from quantlib.errors import ConfigError
from quantlib.sandbox import PRICE_LAG, SECTORS, STATEMENT_FIELDS, generate, is_valid_isin

COLUMNS = {
    "assets": ["asset_id", "market", "mic", "currency", "sector", "name", "listed", "delisted",
               "known_at"],
    "symbols": ["asset_id", "symbol", "valid_from", "valid_to"],
    "prices": ["asset_id", "date", "open", "high", "low", "close", "volume", "known_at"],
    "corporate_actions": ["asset_id", "ex_date", "kind", "value", "known_at"],
    "fx": ["date", "currency", "rate", "known_at"],
    "statements": ["asset_id", "field", "period_end", "value", "known_at"],
}
NAIVE = ("listed", "delisted", "valid_from", "valid_to", "date", "ex_date", "period_end")


def test_same_seed_gives_identical_frames():
    a = generate(n_assets=20, years=1, seed=5)
    b = generate(n_assets=20, years=1, seed=5)
    for name, frame in a.frames().items():
        pd.testing.assert_frame_equal(frame, b.frames()[name], check_exact=True)


def test_different_seed_differs():
    a = generate(n_assets=20, years=1, seed=5)
    b = generate(n_assets=20, years=1, seed=6)
    assert not a.assets["asset_id"].equals(b.assets["asset_id"])
    assert not a.prices["close"].head(100).equals(b.prices["close"].head(100))


def test_market_subset_equals_part_of_full_set():
    full = generate(n_assets=15, years=1, seed=9)
    us = generate(n_assets=15, years=1, seed=9, markets=("US",))
    ids = us.assets["asset_id"]
    sub = full.prices[full.prices["asset_id"].isin(ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub, us.prices.reset_index(drop=True))
    assert us.fx.empty and list(us.fx.columns) == COLUMNS["fx"]


def test_columns_and_dtypes(small_universe):
    for name, frame in small_universe.frames().items():
        assert list(frame.columns) == COLUMNS[name], name
        for col in frame.columns:
            if col in NAIVE:
                assert frame[col].dtype == np.dtype("datetime64[ns]"), (name, col)
            elif col == "known_at":
                assert str(frame[col].dtype) == "datetime64[ns, UTC]", name
    px = small_universe.prices
    assert all(px[c].dtype == np.float64 for c in ("open", "high", "low", "close", "volume"))


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ConfigError, match="markets must be a non-empty subset.*CH"):
        generate(markets=("CH",))
    with pytest.raises(ConfigError, match="n_assets must be between 5 and 20000; found 2"):
        generate(n_assets=2)
    with pytest.raises(ConfigError, match="within the exchange calendars' span.*1999-01-01"):
        generate(years=27)


def test_identifiers(full_universe):
    a = full_universe.assets
    assert a["asset_id"].is_unique and len(a) == 900
    assert all(is_valid_isin(x) for x in a["asset_id"])
    prefixes = a.groupby("market")["asset_id"].agg(lambda s: set(s.str[:3]))
    assert prefixes["KR"] == {"KR7"} and prefixes["EU"] == {"DE0"}
    assert a[a.market == "US"]["asset_id"].str.startswith("US").all()
    assert set(a["sector"]) <= set(SECTORS) and a["sector"].nunique() >= 10
    assert dict(a.groupby("market")["currency"].first()) == {"EU": "EUR", "KR": "KRW",
                                                             "US": "USD"}


def test_listings_and_delistings(full_universe):
    a = full_universe.assets
    delisted = a["delisted"].notna().mean()
    late = (a["listed"] >= full_universe.start).mean()
    assert 0.05 <= delisted <= 0.11, delisted
    assert 0.10 <= late <= 0.20, late


def test_bars_only_on_sessions_and_while_listed(full_universe):
    u = full_universe
    px = u.prices.merge(u.assets[["asset_id", "market", "listed", "delisted"]], on="asset_id")
    for m in u.markets:
        sub = px[px["market"] == m]
        assert sub["date"].isin(sessions(m, u.start, u.end)).all()
    assert (px["date"] >= px["listed"]).all()
    gone = px[px["delisted"].notna()]
    assert (gone["date"] <= gone["delisted"]).all()
    last = gone.groupby("asset_id")[["date", "delisted"]].max()
    assert (last["date"] == last["delisted"]).all()   # last bar = last trading day
    assert not px.duplicated(["asset_id", "date"]).any()


def test_ohlc_invariants_and_rounding(full_universe):
    px = full_universe.prices
    assert (px["high"] >= px[["open", "close"]].max(axis=1)).all()
    assert (px["low"] <= px[["open", "close"]].min(axis=1)).all()
    assert (px["low"] > 0).all() and (px["volume"] > 0).all()
    assert (px["volume"] == np.rint(px["volume"])).all()
    kr = px["asset_id"].str.startswith("KR")
    assert (px.loc[kr, "close"] == np.rint(px.loc[kr, "close"])).all()
    cents = px.loc[~kr, ["open", "high", "low", "close"]].to_numpy() * 100
    assert np.allclose(cents, np.rint(cents), atol=1e-6)


def test_returns_have_fat_tails(full_universe):
    px = full_universe.prices.sort_values(["asset_id", "date"])
    ret = px.groupby("asset_id")["close"].pct_change().dropna()
    ret = ret[ret.abs() < 0.5]     # split days excluded
    assert 0.01 < ret.std() < 0.04
    assert ret.kurt() > 3     # normal would be ~0


def test_price_known_at_is_close_plus_lag(small_universe):
    u = small_universe
    us = u.prices[u.prices["asset_id"].str.startswith("US")]
    dates = pd.DatetimeIndex(us["date"].unique())
    expected = pd.Series(session_closes("US", dates) + PRICE_LAG, index=dates)
    assert (us["known_at"].to_numpy() == expected.reindex(us["date"]).to_numpy()).all()


def test_splits_drop_prices_on_ex_date(full_universe):
    u = full_universe
    ca = u.corporate_actions
    splits = ca[(ca["kind"] == "split") & (ca["ex_date"] <= u.end)]   # not announced ahead
    assert 0.015 <= splits["asset_id"].nunique() / len(u.assets) <= 0.05
    px = u.prices.set_index(["asset_id", "date"])["close"]
    ratios = []
    for row in splits.itertuples():
        series = px.loc[row.asset_id]
        pos = series.index.get_loc(row.ex_date)
        ratios.append(series.iloc[pos - 1] / series.iloc[pos] / row.value)
    # price falls by the split ratio, give or take one day's move
    assert np.median(ratios) == pytest.approx(1.0, abs=0.1)
    ahead = splits["known_at"].dt.tz_localize(None) < splits["ex_date"]
    assert ahead.mean() > 0.85      # a few are announced late (after the ex date)


def test_dividends_per_market(full_universe):
    u = full_universe
    div = u.corporate_actions[u.corporate_actions["kind"] == "dividend"].merge(
        u.assets[["asset_id", "market"]], on="asset_id")
    per_year = div.groupby(["market", "asset_id", div["ex_date"].dt.year]).size()
    assert per_year.loc["US"].median() == 4
    assert per_year.loc["KR"].max() == 1 and per_year.loc["EU"].max() == 1
    assert (div["value"] > 0).all()
    kr = div[div["market"] == "KR"]
    assert (kr["value"] == np.rint(kr["value"])).all()


def test_ticker_changes(full_universe):
    s = full_universe.symbols
    changed = (s.groupby("asset_id").size() > 1).mean()
    assert 0.02 <= changed <= 0.09, changed
    both = s[s["asset_id"].duplicated(keep=False)].sort_values(["asset_id", "valid_from"])
    old, new = both.iloc[::2], both.iloc[1::2]
    assert (old["valid_to"].to_numpy() == new["valid_from"].to_numpy()).all()
    assert (old["symbol"].to_numpy() != new["symbol"].to_numpy()).all()


def test_fx_walks_around_centers(full_universe):
    fx = full_universe.fx
    per_usd = (1 / fx.set_index("currency")["rate"]).groupby(level=0).median()
    assert 1100 < per_usd["KRW"] < 1500 and 0.75 < per_usd["EUR"] < 1.05
    union = sessions("KR", full_universe.start, full_universe.end).union(
        sessions("US", full_universe.start, full_universe.end)).union(
        sessions("EU", full_universe.start, full_universe.end))
    assert (pd.DatetimeIndex(fx[fx.currency == "KRW"]["date"]) == union).all()


def test_statements_lags_and_restatements(full_universe):
    st = full_universe.statements
    assert set(st["field"]) == set(STATEMENT_FIELDS)
    key = ["asset_id", "field", "period_end"]
    first = st.groupby(key)["known_at"].transform("min")
    lag_days = (first - st["period_end"].dt.tz_localize("UTC")).dt.total_seconds() / 86400
    assert lag_days.min() >= 20 and lag_days.max() <= 90
    assert (st["period_end"].dt.is_quarter_end).all()
    pairs = st.groupby(["asset_id", "period_end"]).ngroups
    restated = st[st["known_at"] > first].groupby(["asset_id", "period_end"]).ngroups
    assert 0.07 <= restated / pairs <= 0.13, restated / pairs
    later = st[st["known_at"] > first]
    gap = (later["known_at"] - first[later.index]).dt.days
    assert gap.min() >= 30 and gap.max() <= 300
    orig = st.loc[first.index[st["known_at"] == first]].set_index(key)["value"]
    change = later.set_index(key)["value"] / orig.reindex(later.set_index(key).index) - 1
    assert change.abs().between(0.005, 0.06).all()
    assert (st["known_at"] <= full_universe.end.tz_localize("UTC") + pd.Timedelta(days=1)).all()


def test_market_frame_matches_selection_by_asset_id(small_universe):
    u = small_universe
    for name in ("assets", "symbols", "prices", "corporate_actions", "statements"):
        for m in u.markets:
            ids = u.assets.loc[u.assets["market"] == m, "asset_id"]
            frame = getattr(u, name)
            pd.testing.assert_frame_equal(u.market_frame(name, m),
                                          frame[frame["asset_id"].isin(ids)])
    trimmed = generate(n_assets=5, years=0.5, seed=1)
    trimmed.prices = trimmed.prices.iloc[10:]          # bounds no longer apply: falls back
    kr = trimmed.market_frame("prices", "KR")
    assert kr["asset_id"].str.startswith("KR").all() and len(kr) > 0
