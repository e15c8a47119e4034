"""The labelled PIT builders on real exchange calendars and the sandbox truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantlib import calendars, pit
from quantlib.errors import CatalogError
from quantlib.sandbox import generate

START, END = "2025-03-01", "2025-10-31"


@pytest.fixture(scope="module")
def truth():
    return generate(n_assets=8, years=1, seed=7)


def _assets(rows):
    a = pd.DataFrame(rows, columns=["asset_id", "market", "currency"])
    a["sector"] = "Energy"
    a["listed"] = pd.Timestamp("2000-01-03")
    a["delisted"] = pd.NaT
    return a


def _bar(asset, date, close, known):
    return dict(asset_id=asset, date=pd.Timestamp(date), open=close, high=close, low=close,
                close=close, volume=1.0, known_at=pd.Timestamp(known, tz="UTC"))


@pytest.fixture(scope="module")
def two_markets():
    assets = _assets([("KR1", "KR", "KRW"), ("US1", "US", "USD")])
    # Tue 2024-03-05: KR closes 06:30 UTC, US closes 21:00 UTC (EST); 15 min vendor lag
    prices = pd.DataFrame([_bar("KR1", "2024-03-05", 70000.0, "2024-03-05 06:45"),
                           _bar("US1", "2024-03-05", 100.0, "2024-03-05 21:15"),
                           _bar("KR1", "2024-03-06", 71000.0, "2024-03-06 06:45"),
                           _bar("US1", "2024-03-06", 101.0, "2024-03-06 21:15")])
    fx = pd.DataFrame({"date": pd.to_datetime(["2024-03-04"]), "currency": ["KRW"],
                       "rate": [0.00075], "known_at": pd.to_datetime(["2024-03-04 21:15"],
                                                                     utc=True)})
    return assets, prices, fx


@pytest.mark.parametrize("clock, kr, us", [
    # KR close of 03-05 is known at the US decision of 03-05 (21:30 UTC)
    ("US", [np.nan, 70000.0, 71000.0, np.nan], [np.nan, 100.0, 101.0, np.nan]),
    # the US close of 03-05 is not known at the KR decision of 03-05 (07:00 UTC): 03-06
    ("KR", [np.nan, 70000.0, 71000.0, np.nan], [np.nan, np.nan, 100.0, 101.0]),
    ("own", [np.nan, 70000.0, 71000.0, np.nan], [np.nan, 100.0, 101.0, np.nan]),
])
def test_decision_clock_semantics_on_real_calendars(two_markets, clock, kr, us):
    assets, prices, fx = two_markets
    ds = pit.build_prices(prices, assets, fx, markets=["KR", "US"], start="2024-03-04",
                          end="2024-03-07", decision_clock=clock)
    assert [str(d.date()) for d in pd.DatetimeIndex(ds["date"].values)] == [
        "2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]
    np.testing.assert_array_equal(ds["close"].sel(asset="KR1").values, kr)
    np.testing.assert_array_equal(ds["close"].sel(asset="US1").values, us)
    assert ds["close"].dims == ("date", "asset")
    assert ds["market"].values.tolist() == ["KR", "US"]


def test_decision_instants_match_exchange_closes():
    # 2024-03-11 is after the US DST switch: NYSE closes 20:00 UTC, KRX 06:30 UTC
    d = pd.DatetimeIndex(["2024-03-08", "2024-03-11"])
    assert [str(t) for t in calendars.decision_time(d, "US")] == [
        "2024-03-08 21:30:00+00:00", "2024-03-11 20:30:00+00:00"]
    assert str(calendars.decision_time(d, "KR")[1]) == "2024-03-11 07:00:00+00:00"


def test_restatement_hand_computed_with_real_dates():
    assets = _assets([("US1", "US", "USD")])
    rows = [  # (field, period_end, value, known_at UTC)
        ("revenue", "2023-09-30", 100.0, "2023-11-02 12:00"),
        ("revenue", "2023-12-31", 120.0, "2024-02-07 12:00"),   # Q4 announced Wed
        ("revenue", "2023-09-30", 90.0, "2024-02-08 12:00"),    # late Q3 restatement
        ("revenue", "2023-12-31", 125.0, "2024-02-09 22:00"),   # Q4 restated after close Fri
        ("net_income", "2023-12-31", 7.0, "2024-02-07 12:00"),
    ]
    stm = pd.DataFrame(rows, columns=["field", "period_end", "value", "known_at"])
    stm["asset_id"] = "US1"
    stm["period_end"] = pd.to_datetime(stm["period_end"])
    stm["known_at"] = pd.to_datetime(stm["known_at"], utc=True)
    ds = pit.build_fundamentals(stm, assets, markets=["US"], start="2024-02-06",
                                end="2024-02-13")
    dates = [str(d.date()) for d in pd.DatetimeIndex(ds["date"].values)]
    assert dates == ["2024-02-06", "2024-02-07", "2024-02-08", "2024-02-09", "2024-02-12",
                     "2024-02-13"]
    assert ds["revenue"].values[:, 0].tolist() == [100.0, 120.0, 120.0, 120.0, 125.0, 125.0]
    assert np.isnan(ds["net_income"].values[0, 0])
    assert ds["net_income"].values[1:, 0].tolist() == [7.0] * 5
    assert np.isnan(ds["total_assets"].values).all()
    assert [str(pd.Timestamp(p).date()) for p in ds["period_end"].values[:, 0]] == [
        "2023-09-30"] + ["2023-12-31"] * 5
    # the restatement is visible through period-indexed access
    view = pit.statement_asof(stm, "2024-02-08T23:00Z", field="revenue")
    assert view.set_index("period_end")["value"].to_dict() == {
        pd.Timestamp("2023-09-30"): 90.0, pd.Timestamp("2023-12-31"): 120.0}


def test_prices_match_truth_on_own_clock(truth):
    ds = pit.build_prices(truth.prices, truth.assets, truth.fx,
                          corporate_actions=truth.corporate_actions, symbols=truth.symbols,
                          start=START, end=END)
    p = truth.prices.copy()
    p = p[(p["date"] >= START) & (p["date"] <= END)]
    got = ds["close"].to_series().dropna()
    want = p.set_index(["date", "asset_id"])["close"]
    want.index.names = ["date", "asset"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False)
    # plain returns on dates without corporate actions equal close / previous bar - 1
    ca = truth.corporate_actions
    full = truth.prices.sort_values(["asset_id", "date"])
    full["prev"] = full.groupby("asset_id")["close"].shift()
    full = full.merge(ca[["asset_id", "ex_date"]].rename(columns={"ex_date": "date"}),
                      how="left", on=["asset_id", "date"], indicator=True)
    quiet = full[(full["_merge"] == "left_only") & (full["date"] >= START)
                 & (full["date"] <= END)].dropna(subset=["prev"])
    got_r = ds["returns"].to_series().reindex(pd.MultiIndex.from_arrays(
        [quiet["date"], quiet["asset_id"]]))
    np.testing.assert_allclose(got_r.to_numpy(), (quiet["close"] / quiet["prev"] - 1).to_numpy(),
                               rtol=1e-12)
    # symbols are the latest known tickers; coords carry the assets table
    a = truth.assets.set_index("asset_id")
    assert (ds["currency"].to_series() == a["currency"].reindex(ds["asset"].values)).all()
    assert ds["returns"].dtype == np.float64 and ds["close"].dims == ("date", "asset")


def test_returns_base_uses_fx_known_at_decision(truth):
    ds = pit.build_prices(truth.prices, truth.assets, truth.fx,
                          corporate_actions=truth.corporate_actions, start=START, end=END)
    kr = [a for a, m in zip(ds["asset"].values, ds["market"].values, strict=True)
          if m == "KR"][0]
    col = ds.sel(asset=kr)
    bars = col["close"].to_series().dropna().index
    dec = calendars.decision_time(pd.DatetimeIndex(bars), "KR")
    fx = truth.fx[truth.fx["currency"] == "KRW"].sort_values("known_at")
    rate = pd.merge_asof(pd.DataFrame({"t": dec}), fx.rename(columns={"known_at": "t"}),
                         on="t")["rate"].to_numpy()
    r = col["returns"].sel(date=bars).values
    want = (1 + r[1:]) * rate[1:] / rate[:-1] - 1
    np.testing.assert_allclose(col["returns_base"].sel(date=bars).values[1:], want, rtol=1e-12)


def test_universe_matches_listings_and_bars(truth):
    u = pit.build_universe(truth.assets, symbols=truth.symbols, start=START, end=END)
    ds = pit.build_prices(truth.prices, truth.assets, truth.fx,
                          corporate_actions=truth.corporate_actions, start=START, end=END)
    assert u["in_universe"].dtype == bool
    # every bar sits on a date the asset is in the universe; delisted assets leave
    has_bar = np.isfinite(ds["close"].values)
    assert not (has_bar & ~u["in_universe"].values).any()
    a = truth.assets.set_index("asset_id").reindex(u["asset"].values)
    dates = pd.DatetimeIndex(u["date"].values)
    for j, (lst, dl) in enumerate(zip(a["listed"], a["delisted"], strict=True)):
        want = (dates >= lst) & ((dates <= dl) if pd.notna(dl) else True)
        np.testing.assert_array_equal(u["in_universe"].values[:, j], want)


def _perturb_after(truth, clock: str, cut: pd.Timestamp, seed: int):
    """Rebuild prices and fundamentals after changing everything known after ``cut``'s
    decision time (per asset clock; FX after every clock's decision) and check that no
    value at or before ``cut`` moved."""
    offset = 30
    kw = dict(start=START, end=END, decision_clock=clock)
    base_p = pit.build_prices(truth.prices, truth.assets, truth.fx,
                              corporate_actions=truth.corporate_actions, **kw)
    base_f = pit.build_fundamentals(truth.statements, truth.assets, **kw)
    market = truth.assets.set_index("asset_id")["market"]
    at = {m: calendars.decision_time(pd.DatetimeIndex([cut]), m, offset)[0]
          for m in calendars.MARKETS}

    def horizon(asset_ids):
        clk = market.reindex(asset_ids) if clock == "own" else pd.Series(clock, asset_ids)
        return pd.DatetimeIndex(clk.map(at).to_numpy())

    rng = np.random.default_rng(seed)
    p = truth.prices.copy()
    late = (p["known_at"] > horizon(p["asset_id"])).to_numpy()
    p.loc[late, ["open", "high", "low", "close"]] *= rng.uniform(0.5, 2.0, (late.sum(), 1))
    s = truth.statements.copy()
    late_s = (s["known_at"] > horizon(s["asset_id"])).to_numpy()
    s.loc[late_s, "value"] = rng.normal(size=late_s.sum()) * 1e9
    s.loc[late_s, "period_end"] = pd.Timestamp("2030-12-31")
    fx = truth.fx.copy()
    late_fx = (fx["known_at"] > max(at.values())).to_numpy()
    fx.loc[late_fx, "rate"] *= rng.uniform(0.5, 2.0, late_fx.sum())
    new_p = pit.build_prices(p, truth.assets, fx, corporate_actions=truth.corporate_actions,
                             **kw)
    new_f = pit.build_fundamentals(s, truth.assets, **kw)
    upto = slice(None, cut)
    for v in ("open", "close", "returns", "returns_base"):
        np.testing.assert_array_equal(new_p[v].sel(date=upto).values,
                                      base_p[v].sel(date=upto).values, err_msg=v)
    for v in (*pit.STATEMENT_FIELDS, "period_end"):
        np.testing.assert_array_equal(new_f[v].sel(date=upto).values,
                                      base_f[v].sel(date=upto).values, err_msg=v)
    return late.sum(), late_s.sum(), new_p, base_p


@pytest.mark.parametrize("clock", calendars.CLOCKS)   # JP's clock too, over KR/US/EU data
def test_lookahead_perturbation_leaves_past_unchanged(truth, clock):
    n_late, n_late_s, new_p, base_p = _perturb_after(truth, clock, pd.Timestamp("2025-06-16"), 0)
    assert n_late > 100 and n_late_s > 10
    assert not np.array_equal(new_p["close"].values, base_p["close"].values, equal_nan=True)


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.integers(0, 160), clock=st.sampled_from(calendars.CLOCKS),
       seed=st.integers(0, 2**16))
def test_lookahead_any_cut_date_and_clock(truth, day, clock, seed):
    _perturb_after(truth, clock, pd.Timestamp(START) + pd.Timedelta(days=day), seed)


def test_build_fx_on_own_clock(truth):
    ds = pit.build_fx(truth.fx, truth.assets, start=START, end=END)
    assert ds["rate"].dims == ("date", "currency")
    assert ds["currency"].values.tolist() == ["EUR", "KRW", "USD"]
    assert (ds["rate"].sel(currency="USD").values == 1.0).all()
    # sandbox FX rows are known 21:15 UTC: at the KR decision (07:00 UTC) of a date the
    # previous date's rate is the latest known one
    krw = truth.fx[truth.fx["currency"] == "KRW"].set_index("date")["rate"]
    d = pd.Timestamp("2025-06-17")
    prev = krw.index[krw.index < d].max()
    assert ds["rate"].sel(currency="KRW", date=d).item() == krw[prev]


@pytest.mark.parametrize("kw, field, words", [
    (dict(markets=["KR", "CH"]), "markets", "markets must be a list of KR, US, EU, JP; found 'CH'"),
    (dict(decision_clock="Asia"), "decision_clock", "decision_clock must be one of own"),
    (dict(start="2025-05-01", end="2025-04-01"), "start", "start must be on or before end"),
    (dict(start="yesterday-ish"), "start/end", "start and end must be dates"),
])
def test_wrong_parameters_name_the_parameter(truth, kw, field, words):
    args = dict(start=START, end=END) | kw
    with pytest.raises(CatalogError) as info:
        pit.build_universe(truth.assets, **args)
    assert info.value.context["field"] == field
    assert words in str(info.value) and "Fix:" in str(info.value)
