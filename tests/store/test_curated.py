"""Commit/read round trips, versions, pinning and append-only statements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlib import calendars
from quantlib.errors import SnapshotNotFoundError, StoreError
from quantlib.store import CuratedStore


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_round_trip_every_table(tmp_path, frames):
    st = CuratedStore(str(tmp_path))
    snap = st.commit(frames, message="first refresh", tag="v1")
    assert st.resolve("v1") == snap == st.resolve(None)
    for name in ("assets", "symbols", "statements"):
        pd.testing.assert_frame_equal(st.read_table(name), frames[name])
    # actions are stored in ex date order (their ex_date row ranges stay narrow)
    pd.testing.assert_frame_equal(st.read_table("corporate_actions"),
                                  _sorted(frames["corporate_actions"], ["ex_date", "asset_id"]))
    pd.testing.assert_frame_equal(st.read_table("prices"),
                                  _sorted(frames["prices"], ["asset_id", "date"]))
    pd.testing.assert_frame_equal(st.read_table("fx"), _sorted(frames["fx"], ["date", "currency"]))
    assert st.markets() == ["EU", "KR", "US"]


def test_price_panel_matches_frames(tmp_path, frames):
    st = CuratedStore(str(tmp_path))
    st.commit(frames, message="m")
    ds = st.open_prices("KR")
    assert ds["close"].chunks is not None  # lazy, dask-backed
    assert list(ds.data_vars)[:5] == ["open", "high", "low", "close", "volume"]
    np.testing.assert_array_equal(ds["date"].values,
                                  calendars.sessions("KR", "2024-01-02", "2024-03-29").values)
    prices = frames["prices"].set_index(["date", "asset_id"])
    aid = "KR00000000010"
    day = pd.Timestamp("2024-02-14")
    row = prices.loc[(day, aid)]
    cell = ds.sel(asset=aid, date=day).compute()
    for var in ("open", "high", "low", "close", "volume"):
        assert float(cell[var]) == row[var]
    assert int(cell["known_at"]) == row["known_at"].value
    # the last asset has no bars in its first 5 sessions: NaN and NaT there
    late = ds.sel(asset="KR00000000030").isel(date=slice(0, 5)).compute()
    assert np.isnan(late["close"].values).all()
    assert (late["known_at"].values == np.iinfo(np.int64).min).all()
    # corporate actions on their ex dates; returns include them
    acts = frames["corporate_actions"]
    split = acts[(acts["asset_id"] == aid) & (acts["kind"] == "split")].iloc[0]
    div = acts[(acts["asset_id"] == aid) & (acts["kind"] == "dividend")].iloc[0]
    assert float(ds["split"].sel(asset=aid, date=split["ex_date"])) == 2.0
    assert float(ds["split"].sel(asset=aid).sum()) == len(ds["date"]) + 1.0
    assert float(ds["dividend"].sel(asset=aid, date=div["ex_date"])) == 1.5
    closes = ds["close"].sel(asset=aid).values
    i = int(np.nonzero(ds["date"].values == np.datetime64(split["ex_date"]))[0][0])
    assert float(ds["returns"].sel(asset=aid).values[i]) == pytest.approx(
        2.0 * closes[i] / closes[i - 1] - 1)
    j = int(np.nonzero(ds["date"].values == np.datetime64(div["ex_date"]))[0][0])
    assert float(ds["returns"].sel(asset=aid).values[j]) == pytest.approx(
        (closes[j] + 1.5) / closes[j - 1] - 1)
    fx = st.open_fx()
    assert float(fx["rate"].sel(currency="EUR").isel(date=0)) == 1.1


def test_snapshots_listed_and_pinnable(tmp_path, make_frames):
    st = CuratedStore(str(tmp_path))
    old = make_frames(seed=0)
    s1 = st.commit(old, message="one", tag="v1")
    new = make_frames(seed=0)
    new["prices"]["close"] = new["prices"]["close"] * 2
    s2 = st.commit(new, message="two")
    snaps = st.snapshots()
    assert list(snaps["snapshot_id"]) == [s2, s1]
    assert snaps["tags"].iloc[1] == ["v1"]
    assert snaps["tags"].iloc[0][0].startswith("refresh-")
    assert list(snaps["message"]) == ["two", "one"]
    assert str(snaps["written_at"].dtype) == "datetime64[ns, UTC]" or \
        snaps["written_at"].dt.tz is not None
    # pinned snapshot and tag still give the old data after the new commit
    for pin in (s1, "v1"):
        got = st.open_prices("US", snapshot=pin)["close"].sum().compute()
        want = old["prices"][old["prices"]["asset_id"].str.startswith("US")]["close"].sum()
        assert float(got) == pytest.approx(want)
    assert float(st.open_prices("US")["close"].sum()) == pytest.approx(2 * want)
    assert st.open_prices("US", snapshot=s1).attrs["snapshot_id"] == s1


def test_unknown_snapshot_and_empty_store_errors(tmp_path, make_frames):
    st = CuratedStore(str(tmp_path))
    with pytest.raises(SnapshotNotFoundError, match="at least one data version"):
        st.resolve(None)
    st.commit(make_frames(n_assets=2), message="m", tag="v1")
    with pytest.raises(SnapshotNotFoundError,
                       match="snapshot must be an existing tag or snapshot id; found 'nope'"):
        st.read_table("assets", snapshot="nope")
    with pytest.raises(StoreError, match="tag must be new"):
        st.commit(make_frames(n_assets=2), message="again", tag="v1")
    with pytest.raises(StoreError, match="frames must be named"):
        st.commit({"price": pd.DataFrame()}, message="typo")
    with pytest.raises(StoreError, match="prices panel for market JP"):
        st.open_prices("JP")


def test_statements_are_append_only(tmp_path, make_frames):
    st = CuratedStore(str(tmp_path))
    first = make_frames(n_assets=2)
    st.commit(first, message="one", tag="v1")
    # a refresh that re-delivers all old rows and adds restatements (later known_at)
    restated = make_frames(n_assets=2, statement_offset_days=30)["statements"]
    restated["value"] = restated["value"] + 1.0
    delivered = pd.concat([first["statements"], restated], ignore_index=True)
    st.commit({"statements": delivered}, message="two", tag="v2")
    got = st.read_table("statements")
    assert len(got) == 2 * len(first["statements"])
    pd.testing.assert_frame_equal(got.iloc[: len(first["statements"])], first["statements"])
    # a refresh that delivers fewer rows never deletes the stored ones
    st.commit({"statements": restated.iloc[:1]}, message="three", tag="v3")
    assert len(st.read_table("statements")) == len(got)
    pd.testing.assert_frame_equal(st.read_table("statements", "v1"), first["statements"])
    # prices were not in the later commits: still the first version's
    assert len(st.read_table("prices", "v3")) == len(first["prices"])


def test_partial_market_commit_keeps_other_markets(tmp_path, make_frames):
    st = CuratedStore(str(tmp_path))
    base = make_frames(n_assets=2)
    st.commit(base, message="all")
    us = base["prices"][base["prices"]["asset_id"].str.startswith("US")].copy()
    us["close"] += 1.0
    st.commit({"prices": us}, message="US only")
    assert st.markets() == ["EU", "KR", "US"]
    prev = st.snapshots()["snapshot_id"].iloc[1]
    diff = st.open_prices("US")["close"] - st.open_prices("US", prev)["close"]
    assert float(diff.max()) == pytest.approx(1.0)
    assert float(diff.min()) == pytest.approx(1.0)
    assert float(abs(st.open_prices("KR")["close"] - st.open_prices("KR", prev)["close"]).max()) == 0


def test_duplicate_bars_and_unknown_assets_rejected(tmp_path, make_frames):
    st = CuratedStore(str(tmp_path))
    f = make_frames(n_assets=2)
    dup = f["prices"].iloc[[3]]
    bad = dict(f, prices=pd.concat([f["prices"], dup], ignore_index=True))
    with pytest.raises(StoreError, match="one bar per"):
        st.commit(bad, message="dup")
    orphan = dict(f, assets=f["assets"].iloc[1:])
    with pytest.raises(StoreError, match="every priced asset must be in the assets table"):
        st.commit(orphan, message="orphan")
    with pytest.raises(SnapshotNotFoundError):
        st.resolve(None)  # nothing was committed
