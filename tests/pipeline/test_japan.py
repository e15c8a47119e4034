"""Japan end to end, added as data only (quantlib/markets.yaml): a Shift_JIS FTP vendor
with Japanese headers, ingestion, validation, PIT panels on the JP clock, the catalog, a
backtest and data health.

JP is not a default market (the default refresh stays KR/US/EU), so it is tested here
with its own small universe (JP beside the US, whose clock is the other side of the day).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlib import calendars
from quantlib.pipeline import refresh
from quantlib.store import CuratedStore

N_ASSETS = 10
N_JP = 8   # JP assets listed in the period (about N_ASSETS: the pool is prefix-stable)


@pytest.fixture(scope="module")
def japan(tmp_path_factory):
    """A US + JP sandbox and one refresh of both into a fresh store."""
    from quantlib.sandbox import start_sandbox

    store = str(tmp_path_factory.mktemp("jp-store"))
    with start_sandbox(n_assets=N_ASSETS, years=1, seed=11, markets=("US", "JP"),
                       write_state=False) as sb:
        result = refresh(store, markets=["US", "JP"], connection=sb.connection(), tag="jp")
        yield sb, store, result


def test_vendor_delivers_shift_jis_files_with_japanese_headers(japan):
    sb, _, _ = japan
    daily = sorted((f for f in sb.files if f.path.startswith("jp/daily/")), key=lambda f: f.path)
    sessions = calendars.sessions("JP", sb.universe.start, sb.universe.end)
    assert [f.path for f in daily] == [f"jp/daily/{d:%Y%m%d}.csv" for d in sessions]
    data = (sb.root / daily[0].path).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    header, first = data.decode("shift_jis").splitlines()[:2]
    assert header == "日付,銘柄コード,ISINコード,銘柄名,始値,高値,安値,終値,出来高"
    assert first.startswith(f"{sessions[0]:%Y/%m/%d},")
    master = (sb.root / "jp/meigara.csv").read_bytes().decode("shift_jis").splitlines()
    assert master[0] == "ISINコード,銘柄コード,銘柄名,業種,上場日,上場廃止日"
    assert len(sb.universe.market_assets("JP")) == N_JP
    assert len(master) == N_JP + 1 and all(line.startswith("JP3") for line in master[1:])


def test_refresh_stores_the_japanese_truth(japan):
    sb, store, result = japan
    assert result.markets == ["US", "JP", "FX"]
    st = CuratedStore(store)
    assert st.markets() == ["JP", "US"]
    truth = sb.universe
    jp_ids = truth.market_assets("JP")["asset_id"]
    assets = st.read_table("assets").set_index("asset_id").loc[jp_ids]
    assert set(assets["mic"]) == {"XTKS"} and set(assets["currency"]) == {"JPY"}
    got = st.read_table("prices")
    got = got[got["asset_id"].isin(jp_ids)].sort_values(["asset_id", "date"], ignore_index=True)
    want = truth.prices[truth.prices["asset_id"].isin(jp_ids)].sort_values(
        ["asset_id", "date"], ignore_index=True)
    assert got["close"].tolist() == want["close"].tolist()       # integer yen, exact
    pd.testing.assert_series_equal(got["known_at"], want["known_at"], check_names=False)
    # 15:30 JST close (06:30 UTC) since 2024-11-05, plus the JP vendor's 20 minute lag
    assert got["known_at"].iloc[-1].strftime("%H:%M") == "06:50"
    assert set(st.read_table("fx")["currency"]) == {"JPY"}
    ca = st.read_table("corporate_actions")
    assert len(ca[ca["asset_id"].isin(jp_ids)]) == len(
        truth.market_frame("corporate_actions", "JP"))


def test_pit_panels_on_the_jp_clock(japan):
    import quantlib

    sb, store, _ = japan
    ds = quantlib.load_dataset(store, markets=["US", "JP"], decision_clock="JP", compute=True)
    truth = sb.universe
    jp = truth.market_frame("prices", "JP")
    us = truth.market_frame("prices", "US")
    # a JP close on session d is known at the JP decision on d (06:30 UTC + 30 min)
    row = jp.iloc[len(jp) // 2]
    assert float(ds["close"].sel(asset=row["asset_id"], date=row["date"])) == row["close"]
    # a US close on d (21:00 UTC) is not known at the JP decision on d: it shows on the
    # next global date
    row = us.iloc[len(us) // 2]
    dates = ds.indexes["date"]
    later = dates[dates > row["date"]][0]
    assert float(ds["close"].sel(asset=row["asset_id"], date=later)) == row["close"]
    decision = calendars.decision_time(pd.DatetimeIndex([row["date"]]), "JP")[0]
    assert row["known_at"] > decision
    # fundamentals of JP assets are point in time on the JP clock
    pe = ds["period_end"].sel(asset=jp["asset_id"].iloc[0]).to_series().dropna()
    assert len(pe) > 0 and (pe.index >= pe.values).all()
    assert set(ds["currency"].values) == {"USD", "JPY"}
    fx = ds["fx_rate"].sel(asset=jp["asset_id"].iloc[0]).to_series().dropna()
    assert ((fx > 1 / 200) & (fx < 1 / 100)).all()               # USD per yen


def test_catalog_backtest_and_health(japan):
    import quantlib
    from quantlib.backtest import run
    from quantlib.serving.views.health import data_health

    _, store, result = japan
    cat = quantlib.open_catalog(store, markets="JP", decision_clock="JP")
    prices = cat["prices"].read()
    assert set(prices["market"].values) == {"JP"} and prices.sizes["asset"] == N_JP
    ds = quantlib.load_dataset(store, markets=["JP"], decision_clock="JP", compute=True)
    res = run("reversal", ds, window=5, quantile=3, long_short=False, costs=None)
    w = res.weights
    assert set(w.columns) <= set(ds.indexes["asset"]) and w.abs().sum(axis=1).max() > 0.99
    r = ds["returns_base"].to_pandas().reindex(index=w.index, columns=w.columns).fillna(0.0)
    # each session's gross return is yesterday's end-of-day weights times today's returns
    # in the base currency (yen returns plus the JPY/USD change)
    drifted = (w.shift(1) * r).sum(axis=1).iloc[1:]
    held = res.returns["gross"].iloc[1:]
    assert np.allclose(held.to_numpy(), drifted.to_numpy(), atol=1e-12)
    assert held.abs().sum() > 0
    health = data_health(store)
    jp = health.freshness[health.freshness["market"] == "JP"]
    assert sorted(jp["source"]) == ["api-jp", "ftp-jp"]
    assert (jp["last_published_at"].notna()).all()
    runs = health.runs[health.runs["market"] == "JP"]
    assert set(runs["fetch_id"]) == {result.refresh_id}
    ftp = runs[runs["source"] == "ftp-jp"].iloc[0]
    assert ftp["rows"] > 2 * len(calendars.sessions("JP", "2025-01-01", "2025-12-31"))
