"""Incremental refresh against real vendor servers: daily increments equal one full build.

Until the sandbox has its own clock, "the vendor on day T" is the sandbox serving the
truth cut at T (bars and FX up to T, actions and statements announced by T), restarted
each day; a correction is a bar of the truth changed from some day on (the vendor
re-delivers that session's file with a new sidecar, or serves the new value in the
API's look-back window).
"""

from __future__ import annotations

import dataclasses
import os

import pandas as pd
import pytest
import xarray as xr

from quantlib.pipeline import refresh
from quantlib.pipeline.incremental import stored_action_dates
from quantlib.raw import RawZone
from quantlib.sandbox import generate, start_sandbox
from quantlib.store import CuratedStore

pytestmark = pytest.mark.slow


def _cut(u, day: pd.Timestamp, fixes: list[tuple[str, pd.Timestamp, float, pd.Timestamp]],
         renamed: tuple[str, pd.Timestamp] | None = None):
    """The universe as the vendor serves it at the end of ``day``; a correction published
    on ``known`` is stamped 22:30 UTC that day (the API's ``updated_ms``); ``renamed``
    (asset, from day): the vendor changes that asset's sector in its master file (only
    there) from that day on."""
    prices = u.prices[u.prices["date"] <= day].copy()
    assets = u.assets
    if renamed is not None and renamed[1] <= day:
        assets = assets.assign(sector=assets["sector"].where(
            assets["asset_id"] != renamed[0], "Utilities"))
    stamped = []
    for asset, date, factor, known in fixes:
        if known <= day:
            hit = (prices["asset_id"] == asset) & (prices["date"] == date)
            prices.loc[hit, ["open", "high", "low", "close"]] *= factor
            stamped.append(prices[hit].assign(
                known_at=known.tz_localize("UTC") + pd.Timedelta(hours=22, minutes=30)))
    ca = u.corporate_actions
    return dataclasses.replace(
        u, assets=assets, prices=prices.reset_index(drop=True), fx=u.fx[u.fx["date"] <= day],
        corporate_actions=ca[ca["known_at"] <= day.tz_localize("UTC")
                             + pd.Timedelta(hours=23)].reset_index(drop=True),
        statements=u.statements[u.statements["known_at"] <= day.tz_localize("UTC")
                                + pd.Timedelta(hours=23)].reset_index(drop=True),
        end=day, bounds={},
        price_corrections=pd.concat(stamped, ignore_index=True) if stamped else None)


def _refresh_at(store: str, u, **kw):
    with start_sandbox(u, write_state=False) as sb:
        return refresh(store, connection=sb.connection(), **kw)


def _missing_sessions(result) -> set[tuple[str, str]]:
    q = pd.read_parquet(result.report_paths["quarantine"])
    return set(map(tuple, q.loc[q["check"] == "missing_session", ["asset_id", "value"]]
                   .values.tolist()))


def test_daily_incremental_refresh_equals_full_build(tmp_path):
    u = generate(n_assets=12, years=0.5, seed=11, end="2024-06-28")
    days = sorted(set(u.prices["date"]))[-6:]
    kr = u.market_assets("KR")["asset_id"].iloc[2]
    us = u.market_assets("US")["asset_id"].iloc[3]
    # a KR bar corrected 2 sessions later, a US bar corrected 3 sessions later; the KR
    # master re-delivered that day (a new sector), so the KR batch is checked for missing
    # sessions; another KR asset has no bar on days[2] (a real gap)
    fixes = [(kr, days[1], 1.01, days[3]), (us, days[0], 0.995, days[3])]
    gap = u.market_assets("KR")["asset_id"].iloc[5]
    u = dataclasses.replace(u, prices=u.prices[(u.prices["asset_id"] != gap)
                                               | (u.prices["date"] != days[2])])
    renamed = (u.market_assets("KR")["asset_id"].iloc[0], days[3])
    store = str(tmp_path / "inc")
    first = _refresh_at(store, _cut(u, days[0], fixes, renamed), tag="day0")
    assert first.mode == "full"
    results = []
    for day in days[1:]:
        results.append(_refresh_at(store, _cut(u, day, fixes, renamed),
                                   lookback_sessions=4))
    assert all(r.mode == "incremental" and r.snapshot_id for r in results)
    assert all(r.rows["rewrites"] == 0 for r in results)

    full_store = str(tmp_path / "full")
    full = _refresh_at(full_store, _cut(u, days[-1], fixes, renamed))
    inc, one = CuratedStore(store), CuratedStore(full_store)
    for m in one.markets():
        xr.testing.assert_equal(inc.open_prices(m).load(), one.open_prices(m).load())
    xr.testing.assert_equal(inc.open_fx().load(), one.open_fx().load())
    # the long tables hold the same rows (tables the vendor only added rows to are
    # appended, so their order differs from a full build's)
    for name in ("assets", "symbols", "corporate_actions", "statements"):
        a, b = inc.read_table(name), one.read_table(name)
        pd.testing.assert_frame_equal(a.sort_values(list(a.columns)).reset_index(drop=True),
                                      b.sort_values(list(b.columns)).reset_index(drop=True))
    # the corrected bars hold the corrected values; the first versions stay readable
    cell = inc.open_prices("KR").sel(asset=kr, date=days[1])["close"]
    before = inc.open_prices("KR", results[1].snapshot_id)   # before the correction
    assert float(before.sel(asset=kr, date=days[1])["close"]) != float(cell)
    want = u.prices[(u.prices["asset_id"] == kr) & (u.prices["date"] == days[1])]["close"]
    # (the KR vendor file rounds prices to its tick)
    assert float(cell) == pytest.approx(float(want.iloc[0]) * 1.01, rel=1e-3)

    # missing sessions: an incremental run looks only after each asset's last stored
    # bar, so the correction's re-delivered KR file of days[1] does not make every other
    # KR asset "miss" the stored days[2] (it did: width x window info rows a day); the
    # real gap is reported once, by the run that brings the asset's next bar
    assert (gap, str(days[2].date())) in _missing_sessions(full)
    assert _missing_sessions(results[2]) == {(gap, str(days[2].date()))}
    for r in results:
        assert _missing_sessions(r) <= _missing_sessions(full)

    # each run's tag is the one its snapshot got (looked up without listing versions)
    tags = inc.snapshots().set_index("snapshot_id")["tags"]
    assert first.tag == "day0" and all(r.tag == tags[r.snapshot_id][0] for r in results)
    # continuity reads only the stored actions that can explain a jump of the batch
    ca = inc.read_table("corporate_actions")
    assert len(ca) >= 2
    since = ca["ex_date"].sort_values().iloc[len(ca) // 2]
    batch = inc.read_table("prices")
    batch = batch[(batch["date"] >= since) & (batch["asset_id"] != ca["asset_id"].iloc[0])]
    got = stored_action_dates(inc, batch)
    want = ca[(ca["ex_date"] >= batch["date"].min()) & ca["asset_id"].isin(batch["asset_id"])]
    assert 0 < len(got) < len(ca)
    pd.testing.assert_frame_equal(got, want[["asset_id", "ex_date"]].reset_index(drop=True))

    # rows processed per day do not follow the history: a small fraction of the full
    # build, the same order of size every day
    for r in results:
        assert r.rows["standardize"] < full.rows["standardize"] / 4, r.rows
    sizes = [r.rows["standardize"] for r in results]
    assert max(sizes) < 3 * min(sizes) + 400, sizes

    # the re-delivered KR file of days[1] (new sidecar) is in the manifest, published
    m = RawZone(store).manifest()
    kr_file = m[(m["source"] == "ftp-kr") & m["file"].str.endswith(f"{days[1]:%Y%m%d}.csv")]
    assert kr_file["sha256"].nunique() == 2
    assert set(kr_file["status"]) >= {"fetched", "published"}
    fix_run = results[2]
    assert set(kr_file.loc[kr_file["status"] == "published", "fetch_id"]) >= \
        {fix_run.refresh_id}


def test_incremental_refresh_with_nothing_new_commits_nothing(tmp_path):
    u = generate(n_assets=6, years=0.25, seed=5, end="2024-03-28")
    store = str(tmp_path / "s")
    with start_sandbox(u, write_state=False) as sb:
        first = refresh(store, connection=sb.connection())
        # the first incremental run asks the FX API for its look-back window (a new
        # query) and the US prices for what was published since the build (nothing)
        window = refresh(store, connection=sb.connection())
        again = refresh(store, connection=sb.connection())
    assert window.mode == again.mode == "incremental"
    assert window.per_market["US"]["rows"]["fetch"] == 0
    # the re-fetched FX rows equal the stored ones: no new version (#12: they made one)
    assert 0 < window.rows["unchanged"] == window.rows["standardize"] < \
        first.rows["standardize"] / 4
    assert window.snapshot_id is None and "nothing new" in window.note
    assert CuratedStore(store).snapshots()["snapshot_id"].iloc[0] == first.snapshot_id
    assert again.snapshot_id is None and "nothing new" in again.note
    assert again.rows["standardize"] == 0
    # the window's rows equal the stored ones: the panels did not change
    st = CuratedStore(store)
    for m in st.markets():
        xr.testing.assert_equal(st.open_prices(m).load(),
                                st.open_prices(m, first.snapshot_id).load())


def test_api_correction_older_than_the_lookback_arrives_through_updated_since(tmp_path):
    u = generate(n_assets=8, years=0.25, seed=7, end="2024-03-28")
    days = sorted(set(u.prices["date"]))[-8:]
    us = u.market_assets("US")["asset_id"].iloc[1]
    old_bar = days[0]                  # 6 sessions before the build: outside a 1-session window
    fixes = [(us, old_bar, 1.02, days[-1])]
    store = str(tmp_path / "s")
    first = _refresh_at(store, _cut(u, days[-2], fixes), markets=["US"])
    second = _refresh_at(store, _cut(u, days[-1], fixes), markets=["US"],
                         lookback_sessions=1)
    assert second.mode == "incremental" and second.snapshot_id
    # the API answered only what the vendor published since the build: one new session
    # of bars plus the corrected bar (not a re-fetch window)
    n_new = int((u.prices["date"] == days[-1]).sum() - (u.prices["date"] == days[-1])[
        ~u.prices["asset_id"].isin(u.market_assets("US")["asset_id"])].sum())
    assert second.per_market["US"]["rows"]["fetch"] == n_new + 1
    stored = CuratedStore(store).open_prices("US")
    want = u.prices[(u.prices["asset_id"] == us) & (u.prices["date"] == old_bar)]["close"]
    assert float(stored.sel(asset=us, date=old_bar)["close"]) == \
        pytest.approx(float(want.iloc[0]) * 1.02)
    before = CuratedStore(store).open_prices("US", first.snapshot_id)
    assert float(before.sel(asset=us, date=old_bar)["close"]) == \
        pytest.approx(float(want.iloc[0]))
    # the poll's pages carry the vendor time (known_at) in the manifest index
    idx = RawZone(store).index.read("api-us")
    polled = idx[idx["file"].str.startswith("api/v1/prices?")
                 & idx["file"].str.contains("updated_since=")]
    assert not polled.empty and polled["known_at"].notna().all()


def test_old_ftp_file_redelivered_outside_the_window_is_picked_up(tmp_path):
    import hashlib

    u = generate(n_assets=6, years=0.25, seed=5, end="2024-03-28", markets=("KR",))
    store = str(tmp_path / "s")
    with start_sandbox(u, write_state=False) as sb:
        first = refresh(store, connection=sb.connection(), markets=["KR"])
        days = sorted(p.name for p in (sb.root / "kr" / "prices").glob("*.csv"))
        old = sb.root / "kr" / "prices" / days[-9]    # 8 sessions before the last one
        lines = old.read_bytes().split(b"\n")
        cells = lines[1].split(b",")
        asset, low = cells[1].decode(), float(cells[6])
        cells[7] = cells[6]                          # the vendor corrects close to the low
        lines[1] = b",".join(cells)
        data = b"\n".join(lines)
        side = old.parent / (old.name + ".sha256")
        stamps = [(p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in (old, side)]
        assert len(data) == old.stat().st_size      # same size (same-width prices) ...
        old.write_bytes(data)
        rows = data.count(b"\n") - 1
        side.write_text(f"{hashlib.sha256(data).hexdigest()} {rows}\n")
        for p, ns in zip((old, side), stamps, strict=True):
            os.utime(p, ns=ns)                       # ... in the same second: lists the same
        second = refresh(store, connection=sb.connection(), markets=["KR"],
                         lookback_sessions=2)
        third = refresh(store, connection=sb.connection(), markets=["KR"],
                        lookback_sessions=2)
    assert second.mode == "incremental" and second.snapshot_id
    # only that file was read again (plus nothing else: the window's files are unchanged)
    assert second.per_market["KR"]["rows"]["fetch"] == rows
    date = pd.Timestamp(f"{old.stem[:4]}-{old.stem[4:6]}-{old.stem[6:]}")
    st = CuratedStore(store)
    assert float(st.open_prices("KR").sel(asset=asset, date=date)["close"]) == low
    assert float(st.open_prices("KR", first.snapshot_id).sel(asset=asset, date=date)[
        "close"]) != low
    m = RawZone(store).manifest()
    hit = m[(m["file"] == f"kr/prices/{old.name}") & (m["status"] == "published")]
    assert hit["sha256"].nunique() == 2
    # the next run finds the listing unchanged: nothing re-read, nothing committed
    assert third.snapshot_id is None and third.per_market["KR"]["rows"]["fetch"] == 0


def test_us_actions_are_polled_and_upserted_action_by_action(tmp_path):
    """The US actions endpoint is polled with ``updated_since`` like prices: a day's pages
    hold only the actions announced since (not the whole table, which grows with
    history); a late action is added beside the asset's stored ones (a polled page is
    not the asset's whole table) and a corrected action replaces its stored row (same
    asset, ex date and kind). The grown store equals a full build of the final vendor."""
    u = generate(n_assets=12, years=0.5, seed=11, end="2024-06-28")
    sessions = sorted(set(u.prices["date"]))
    days = sessions[-4:]
    us = set(u.market_assets("US")["asset_id"])
    ca = u.corporate_actions
    old = ca[ca["asset_id"].isin(us) & (ca["known_at"] < days[0].tz_localize("UTC"))]
    counts = old["asset_id"].value_counts()
    a, b = counts[counts >= 2].index[:2]
    stamp = pd.Timedelta(hours=21)
    late = pd.DataFrame({"asset_id": [a], "ex_date": [sessions[-12]], "kind": ["dividend"],
                         "value": [0.25], "known_at": [days[1].tz_localize("UTC") + stamp]})
    u = dataclasses.replace(u, corporate_actions=pd.concat([ca, late], ignore_index=True))
    fixed = old[old["asset_id"] == b].index[-1]       # b's last stored action, corrected

    def vendor(day):
        cut = _cut(u, day, [])
        if day >= days[2]:
            acts = cut.corporate_actions.copy()
            row = (acts["asset_id"] == b) & (acts["ex_date"] == ca.loc[fixed, "ex_date"])
            acts.loc[row, "value"] = ca.loc[fixed, "value"] * 1.5
            acts.loc[row, "known_at"] = days[2].tz_localize("UTC") + stamp
            cut = dataclasses.replace(cut, corporate_actions=acts)
        return cut

    store = str(tmp_path / "inc")
    first = _refresh_at(store, vendor(days[0]), markets=["US"])
    runs = [_refresh_at(store, vendor(d), markets=["US"]) for d in days[1:]]
    assert first.mode == "full" and all(r.mode == "incremental" for r in runs)

    # each day asked only for the actions announced since: 1 (late), 1 (fix), 0 rows
    idx = RawZone(store).index.read("api-us")
    polled = idx[idx["file"].str.startswith("api/v1/corporate_actions?")
                 & idx["file"].str.contains("updated_since=") & (idx["status"] == "fetched")]
    per_run = polled.groupby("fetch_id")["rows"].sum()
    assert [int(per_run.get(r.refresh_id, 0)) for r in runs] == [1, 1, 0]

    inc = CuratedStore(store)
    got = inc.read_table("corporate_actions")
    mine = got[got["asset_id"] == a]
    assert len(mine) == counts[a] + 1 and 0.25 in mine["value"].tolist()   # none lost
    fix_row = got[(got["asset_id"] == b) & (got["ex_date"] == ca.loc[fixed, "ex_date"])]
    assert fix_row["value"].tolist() == pytest.approx([ca.loc[fixed, "value"] * 1.5])
    before = inc.read_table("corporate_actions", runs[0].snapshot_id)
    prev = before[(before["asset_id"] == b) & (before["ex_date"] == ca.loc[fixed, "ex_date"])]
    assert prev["value"].tolist() == pytest.approx([ca.loc[fixed, "value"]])

    full_store = str(tmp_path / "full")
    _refresh_at(full_store, vendor(days[-1]), markets=["US"])
    one = CuratedStore(full_store)
    want = one.read_table("corporate_actions")
    pd.testing.assert_frame_equal(
        got.sort_values(list(got.columns)).reset_index(drop=True),
        want.sort_values(list(want.columns)).reset_index(drop=True))
    xr.testing.assert_equal(inc.open_prices("US").load(), one.open_prices("US").load())
