"""Delta commits: a store built by daily increments equals one full build, cell for cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
import zarr

import quantlib
from quantlib.store import CuratedStore, dategrid
from quantlib.store.parquet import statements_files


def _vendor_history(make_frames) -> dict[str, pd.DataFrame]:
    """Four markets x 5 assets over ~4 months, plus a listing that starts mid-way (its id
    sorts after the others, so the asset axis grows at its end)."""
    f = make_frames(n_assets=5, start="2024-01-02", end="2024-04-30", seed=3)
    kr = f["assets"][f["assets"]["market"] == "KR"].iloc[[0]].copy()
    kr["asset_id"] = "KR99999999990"
    kr["known_at"] = pd.Timestamp("2024-03-01", tz="UTC")
    src = f["prices"][f["prices"]["asset_id"] == f["assets"]["asset_id"].iloc[0]]
    late = src[src["date"] >= "2024-03-04"].assign(asset_id="KR99999999990")
    f["assets"] = pd.concat([f["assets"], kr], ignore_index=True)
    f["symbols"] = pd.concat([f["symbols"], pd.DataFrame(
        {"asset_id": ["KR99999999990"], "symbol": ["999999"],
         "valid_from": [pd.Timestamp("2024-03-04")], "valid_to": [pd.NaT]})],
        ignore_index=True)
    f["prices"] = pd.concat([f["prices"], late], ignore_index=True)
    return f


def _correct(prices: pd.DataFrame, asset: str, date: str, factor: float) -> pd.DataFrame:
    out = prices.copy()
    hit = (out["asset_id"] == asset) & (out["date"] == pd.Timestamp(date))
    for col in ("open", "high", "low", "close"):
        out.loc[hit, col] *= factor
    return out


def _assert_same_store(a: CuratedStore, b: CuratedStore) -> None:
    assert a.markets() == b.markets()
    for m in a.markets():
        xr.testing.assert_equal(a.open_prices(m).load(), b.open_prices(m).load())
    xr.testing.assert_equal(a.open_fx().load(), b.open_fx().load())
    for name in ("assets", "symbols", "corporate_actions"):
        pd.testing.assert_frame_equal(a.read_table(name), b.read_table(name))
    key = ["asset_id", "field", "period_end", "known_at"]
    pd.testing.assert_frame_equal(
        a.read_table("statements").sort_values(key).reset_index(drop=True),
        b.read_table("statements").sort_values(key).reset_index(drop=True))


def test_daily_increments_equal_full_build(tmp_path, make_frames):
    truth = _vendor_history(make_frames)
    # what the vendor serves at the end: a bar corrected, an action announced late
    first_kr, first_us = (truth["assets"].loc[truth["assets"]["market"] == m, "asset_id"]
                          .iloc[1] for m in ("KR", "US"))
    final = dict(truth)
    final["prices"] = _correct(truth["prices"], first_kr, "2024-03-05", 1.03)
    late_action = pd.DataFrame({"asset_id": [first_us], "ex_date": [pd.Timestamp("2024-03-12")],
                                "kind": ["dividend"], "value": [0.75],
                                "known_at": [pd.Timestamp("2024-03-20", tz="UTC")]})
    final["corporate_actions"] = pd.concat([truth["corporate_actions"], late_action],
                                           ignore_index=True)
    full = CuratedStore(tmp_path / "full")
    full.commit(final, message="full build")

    inc = CuratedStore(tmp_path / "inc")
    start = pd.Timestamp("2024-02-01")
    head = {k: v for k, v in truth.items()}
    for name, col in (("prices", "date"), ("fx", "date")):
        head[name] = truth[name][truth[name][col] < start]
    head["assets"] = truth["assets"][truth["assets"]["asset_id"] != "KR99999999990"]
    head["symbols"] = truth["symbols"][truth["symbols"]["asset_id"] != "KR99999999990"]
    inc.commit(head, message="initial")
    days = sorted(set(truth["prices"]["date"][truth["prices"]["date"] >= start]))
    rows, appended, rewrites = [], 0, 0
    for day in days:
        delta: dict[str, pd.DataFrame] = {
            "prices": truth["prices"][truth["prices"]["date"] == day],
            "fx": truth["fx"][truth["fx"]["date"] == day]}
        if day == pd.Timestamp("2024-03-04"):   # the new listing arrives with its first bar
            delta["assets"], delta["symbols"] = truth["assets"], truth["symbols"]
        if day == pd.Timestamp("2024-03-08"):   # correction of a bar 3 sessions back
            fixed = final["prices"]
            delta["prices"] = pd.concat([delta["prices"], fixed[
                (fixed["asset_id"] == first_kr) & (fixed["date"] == "2024-03-05")]])
        if day == pd.Timestamp("2024-03-20"):   # a dividend announced after its ex date
            delta["corporate_actions"] = final["corporate_actions"]
        if day == pd.Timestamp("2024-04-15"):   # statements published later, appended
            later = truth["statements"].assign(
                known_at=pd.Timestamp("2024-04-15 08:00", tz="UTC"), value=1.0)
            delta["statements"] = later
        inc.commit(delta, message=f"increment {day.date()}", delta=True)
        rows.append(inc.last_delta["region_cells"])
        appended += inc.last_delta["appended_dates"]
        rewrites += inc.last_delta["rewrites"]
    final["statements"] = pd.concat([truth["statements"], truth["statements"].assign(
        known_at=pd.Timestamp("2024-04-15 08:00", tz="UTC"), value=1.0)], ignore_index=True)
    full2 = CuratedStore(tmp_path / "full2")
    full2.commit(final, message="full build with the later statements")
    _assert_same_store(inc, full2)
    assert len(days) >= 55
    assert rewrites == 0
    # every day appends a session; most days only write that one row per market
    assert appended >= len(days)
    kr_assets = 6
    assert min(rows) <= 4 * kr_assets * 10   # one row per market panel (<= 6 assets, 10 vars)


def _kr_store(tmp_path, make_frames):
    """KR x 3 assets from 2023-01-02, stored up to the session before 2024-03-28."""
    f = make_frames(n_assets=3, start="2023-01-02", end="2024-03-29", seed=5, markets=("KR",))
    st = CuratedStore(tmp_path / "s")
    cut = pd.Timestamp("2024-03-28")
    head = dict(f)
    head["prices"] = f["prices"][f["prices"]["date"] < cut]
    head["fx"] = f["fx"][f["fx"]["date"] < cut]
    return f, st, cut, st.commit(head, message="initial")


def test_region_write_touches_only_new_chunks(tmp_path, make_frames):
    """An append writes new 1-date chunks only: every stored chunk keeps its bytes."""
    f, st, cut, s1 = _kr_store(tmp_path, make_frames)
    s2 = st.commit({"prices": f["prices"][f["prices"]["date"] >= cut]}, message="day",
                   delta=True)
    changed = _changed_chunks(st, s1, s2)
    assert changed and all(k.startswith("prices/KR/") for k in changed)
    n_old = st.open_prices("KR", s1).sizes["date"]
    assert 256 < n_old < 384
    # the build's grid: 128, 128 and the rest in chunks of <= 16 dates (the coordinate:
    # 1 chunk); 2 sessions appended: 2 new 1-date chunks per variable, nothing stored
    # rewritten
    rest = n_old - 256
    built = [128, 128, *[16] * (rest // 16), *([rest % 16] if rest % 16 else [])]
    assert built == dategrid.sealed_edges(n_old)
    variables = ("close", "dividend", "high", "known_at", "low", "open", "returns", "split",
                 "volume")
    expected = sorted([f"prices/KR/{v}/c/{i}/0" for v in variables
                       for i in (len(built), len(built) + 1)]
                      + ["prices/KR/date/c/1", "prices/KR/date/c/2"])
    assert changed == expected
    stored = zarr.open_array(st.repo.readonly_session("main").store, path="prices/KR/close",
                             mode="r")
    assert dategrid.date_edges(stored) == [*built, 1, 1]
    assert np.isfinite(st.open_prices("KR")["returns"].values[-1]).all()


def test_unchanged_chunks_are_not_rewritten(tmp_path, make_frames):
    """A look-back window re-delivering stored bars unchanged rewrites no stored chunk;
    a correction rewrites only the chunks whose values it changes (the corrected prices
    and returns, not volume, split, dividend or known_at)."""
    f, st, cut, s1 = _kr_store(tmp_path, make_frames)
    dates = sorted(set(f["prices"]["date"][f["prices"]["date"] < cut]))
    window = f["prices"][f["prices"]["date"] >= dates[-3]]   # 3 stored sessions + the new ones
    s2 = st.commit({"prices": window}, message="day with a look-back window", delta=True)
    n_old = st.open_prices("KR", s1).sizes["date"]
    built = dategrid.sealed_edges(n_old)
    variables = ("close", "dividend", "high", "known_at", "low", "open", "returns", "split",
                 "volume")
    assert _changed_chunks(st, s1, s2) == sorted(
        [f"prices/KR/{v}/c/{i}/0" for v in variables for i in (len(built), len(built) + 1)]
        + ["prices/KR/date/c/1", "prices/KR/date/c/2"])
    asset = f["assets"]["asset_id"].iloc[1]
    day = dates[-2]
    fixed = _correct(f["prices"], asset, str(day.date()), 1.05)
    s3 = st.commit({"prices": fixed[(fixed["asset_id"] == asset) & (fixed["date"] == day)]},
                   message="a correction", delta=True)
    edges = np.cumsum(dategrid.date_edges(zarr.open_array(
        st.repo.readonly_session("main").store, path="prices/KR/close", mode="r")))
    row = dates.index(day)
    chunks = sorted({int(np.searchsorted(edges, r, side="right")) for r in (row, row + 1)})
    assert _changed_chunks(st, s2, s3) == sorted(
        f"prices/KR/{v}/c/{i}/0" for v in ("close", "high", "low", "open", "returns")
        for i in (chunks if v == "returns" else chunks[:1]))
    got = st.open_prices("KR").sel(asset=asset).load()
    want = fixed[(fixed["asset_id"] == asset)].set_index("date")["close"]
    assert got["close"].sel(date=day).item() == want[day]
    assert got["close"].sel(date=day).item() != f["prices"].set_index(
        ["asset_id", "date"])["close"][(asset, day)]
    assert np.isclose(got["returns"].sel(date=dates[-1]).item(),
                      want[dates[-1]] / want[day] - 1)


def test_a_delisted_asset_is_not_searched_for_a_seed_close(tmp_path, make_frames,
                                                           monkeypatch):
    """The delta's seed closes (the last close before its region) are looked up only for
    columns with a bar or a stored close in the region: an asset gone for months is not
    searched back through the history; the panel still equals a full build's."""
    from quantlib.store import increment

    f = make_frames(n_assets=3, start="2023-01-02", end="2024-03-29", seed=5, markets=("KR",))
    gone = f["assets"]["asset_id"].iloc[0]
    f["prices"] = f["prices"][(f["prices"]["asset_id"] != gone)
                              | (f["prices"]["date"] < "2023-06-01")]
    cut = pd.Timestamp("2024-03-28")
    st = CuratedStore(tmp_path / "s")
    st.commit({**f, "prices": f["prices"][f["prices"]["date"] < cut],
               "fx": f["fx"][f["fx"]["date"] < cut]}, message="initial")
    asked: list[int] = []
    real = increment.last_closes
    monkeypatch.setattr(increment, "last_closes",
                        lambda close, before, cols: asked.append(len(cols)) or
                        real(close, before, cols))
    st.commit({"prices": f["prices"][f["prices"]["date"] >= cut]}, message="day", delta=True)
    assert asked == [2]     # the two live assets, not the delisted one
    full = CuratedStore(tmp_path / "full")
    full.commit(f, message="full")
    xr.testing.assert_equal(st.open_prices("KR").load(), full.open_prices("KR").load())


def _changed_chunks(st: CuratedStore, a: str, b: str) -> list[str]:
    diff = st.repo.diff(from_snapshot_id=a, to_snapshot_id=b)
    out = []
    for path, chunks in diff.updated_chunks.items():
        out += [f"{path.strip('/')}/c/" + "/".join(map(str, c)) for c in chunks]
    return sorted(out)


def test_statements_stored_in_known_at_order_keep_the_freshness_check_bounded(
        tmp_path, make_frames):
    """The full build stores statements in known_at order whatever order they came in,
    so a delta's freshness check reads only the row chunk(s) its known_at can be in
    (tables.rows_holding), however long the history: here 3 chunks of 65,536 rows."""
    from quantlib.store.tables import CHUNK_ROWS, rows_holding

    f = make_frames(n_assets=2, markets=("KR",))
    base = f["statements"]
    copies = -(-(2 * CHUNK_ROWS + 100) // len(base))
    history = pd.concat([base.assign(known_at=pd.Timestamp("2010-01-04", tz="UTC")
                                     + pd.Timedelta(days=i)) for i in range(copies)],
                        ignore_index=True).sample(frac=1.0, random_state=7)   # shuffled
    st = CuratedStore(tmp_path / "s")
    st.commit({**f, "statements": history}, message="initial")
    root = zarr.open_group(st.repo.readonly_session(branch="main").store, mode="r")
    latest = history["known_at"].max()
    held = rows_holding(root, "statements", pd.Series([latest]))
    assert held is not None and sum(sl.stop - sl.start for sl in held) <= CHUNK_ROWS
    assert held[-1].stop == len(history)
    stored = st.read_table("statements")
    assert stored["known_at"].is_monotonic_increasing and len(stored) == len(history)
    # a look-back re-delivery of the latest filings plus new rows: only the new appended
    new = base.head(8).assign(known_at=latest + pd.Timedelta(days=1)) \
        .drop_duplicates(["asset_id", "field", "period_end"])
    st.commit({"statements": pd.concat([history[history["known_at"] == latest], new])},
              message="day", delta=True)
    assert st.last_delta["statements"] == len(new) > 1
    assert len(st.read_table("statements")) == len(history) + len(new)


def test_delta_statements_append_only_fresh_rows(tmp_path, make_frames):
    f = make_frames(n_assets=2, markets=("KR",))
    st = CuratedStore(tmp_path / "s")
    st.commit(f, message="initial")
    again = pd.concat([f["statements"], f["statements"].assign(
        known_at=pd.Timestamp("2024-05-01", tz="UTC"))], ignore_index=True)
    st.commit({"statements": again}, message="re-delivery", delta=True)
    assert st.last_delta["statements"] == len(f["statements"])
    assert len(st.read_table("statements")) == 2 * len(f["statements"])
    root = zarr.open_group(st.repo.readonly_session(branch="main").store, mode="r")
    assert root["statements"].attrs["rows"] == 2 * len(f["statements"])
    # the SQL export of a delta holds only its appended rows; the statements view is the
    # full export plus the deltas after it (a commit without statements in between)
    n = len(f["statements"])
    st.commit({"assets": f["assets"]}, message="reference only", delta=True)
    third = st.commit({"statements": again.assign(
        known_at=pd.Timestamp("2024-06-03", tz="UTC"))[:3]}, message="three", delta=True)
    files = statements_files(st)
    assert [p.rsplit("/", 1)[-1].split(".", 1)[1] for p in files] == \
        ["parquet", "delta.parquet", "delta.parquet"]
    assert files[-1].endswith(f"{third}.delta.parquet")
    assert [len(pd.read_parquet(p)) for p in files] == [n, n, 3]
    got = quantlib.sql("select count(*) as n, max(known_at) as k from statements",
                       store=str(tmp_path / "s"))
    assert int(got["n"][0]) == 2 * n + 3
    k = pd.Timestamp(got["k"][0])
    k = k.tz_localize("UTC") if k.tzinfo is None else k.tz_convert("UTC")
    assert k == pd.Timestamp("2024-06-03", tz="UTC")


def test_last_closes_equals_a_full_scan():
    """last_closes (growing windows, only the columns still without a close) gives each
    column's last non-NaN value before the row, NaN for a column with none."""
    from quantlib.store.increment import last_closes

    rng = np.random.default_rng(3)
    values = rng.normal(size=(700, 40))
    values[rng.random(values.shape) < 0.7] = np.nan
    values[:, 5] = np.nan                 # never a close: searched back to row 0
    values[:650, 9] = np.nan              # listed late
    values[3, 11], values[4:, 11] = 1.5, np.nan   # one close, far back
    arr = zarr.create_array({}, shape=values.shape, chunks=(64, 8), dtype="f8",
                            fill_value=np.nan)
    arr[:] = values
    cols = np.array([0, 5, 9, 11, 17, 39, 23])
    for before in (1, 10, 600, 700):
        want = []
        for c in cols:
            seen = values[:before, c][~np.isnan(values[:before, c])]
            want.append(seen[-1] if len(seen) else np.nan)
        np.testing.assert_array_equal(last_closes(arr, before, cols), np.array(want))
