"""Delta commits with a new listing whose id sorts inside the stored asset axis (an ISIN
sorts anywhere): the listing is appended at the end of the stored axis, no stored chunk
of the existing columns is written, whatever the history; readers still see the sorted
panel of a full build, cell for cell; compaction puts the columns back in sorted order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import quantlib
from quantlib import calendars
from quantlib.pipeline.incremental import previous_closes
from quantlib.store import CuratedStore, assetgrid, dategrid
from quantlib.store.compact import compact

NEW = "KR00000002505"   # sorts between the stored KR00000002500 and KR00000002510
END = "2024-03-29"
VARS = ("close", "dividend", "high", "known_at", "low", "open", "returns", "split", "volume")


def _with_listing(make_frames, first_day: pd.Timestamp, start: str = "2023-08-01"
                  ) -> dict[str, pd.DataFrame]:
    """600 KR assets (two 512-wide asset chunks, the second partly filled) and a listing
    trading from ``first_day`` whose id sorts at column 251."""
    f = make_frames(n_assets=600, start=start, end=END, seed=0, markets=("KR",))
    row = f["assets"].iloc[[3]].assign(asset_id=NEW, known_at=first_day.tz_localize("UTC"))
    src = f["prices"][f["prices"]["asset_id"] == f["assets"]["asset_id"].iloc[3]]
    bars = src[src["date"] >= first_day].assign(asset_id=NEW)
    f["assets"] = pd.concat([f["assets"], row], ignore_index=True)
    f["symbols"] = pd.concat([f["symbols"], pd.DataFrame(
        {"asset_id": [NEW], "symbol": ["250550"], "valid_from": [first_day],
         "valid_to": [pd.NaT]})], ignore_index=True)
    f["prices"] = pd.concat([f["prices"], bars], ignore_index=True)
    return f


def _days() -> pd.DatetimeIndex:
    return pd.DatetimeIndex(calendars.sessions("KR", "2024-03-18", END))


def _incremental(path, f: dict[str, pd.DataFrame], listing: pd.Timestamp
                 ) -> tuple[CuratedStore, str, str]:
    """Stored up to the session before ``listing``, then the listing day as a delta
    (the new asset with its first bar); returns the store and both snapshots."""
    st = CuratedStore(path)
    head = {k: v for k, v in f.items() if k not in ("assets", "symbols", "prices")}
    head["assets"] = f["assets"][f["assets"]["asset_id"] != NEW]
    head["symbols"] = f["symbols"][f["symbols"]["asset_id"] != NEW]
    head["prices"] = f["prices"][f["prices"]["date"] < listing]
    s1 = st.commit(head, message="initial")
    s2 = st.commit({"prices": f["prices"][f["prices"]["date"] == listing],
                    "assets": f["assets"], "symbols": f["symbols"]},
                   message="listing day", delta=True)
    return st, s1, s2


def _changed(st: CuratedStore, a: str, b: str) -> dict[str, list[tuple[int, ...]]]:
    diff = st.repo.diff(from_snapshot_id=a, to_snapshot_id=b)
    return {p.strip("/"): sorted(tuple(c) for c in cs) for p, cs in diff.updated_chunks.items()}


def _stored(st: CuratedStore, snapshot: str | None = None) -> zarr.Group:
    session = st.repo.readonly_session(snapshot_id=st.resolve(snapshot))
    return zarr.open_group(session.store, path="prices/KR", mode="r")


def _full(path, f: dict[str, pd.DataFrame], until: pd.Timestamp) -> CuratedStore:
    truth = dict(f)
    truth["prices"] = f["prices"][f["prices"]["date"] <= until]
    st = CuratedStore(path)
    st.commit(truth, message="full build")
    return st


def test_a_mid_axis_listing_writes_no_stored_chunk(tmp_path, make_frames):
    days = _days()
    listing, after = days[-2], days[-1]
    f = _with_listing(make_frames, listing)
    inc, s1, s2 = _incremental(tmp_path / "inc", f, listing)
    assert inc.last_delta["rewrites"] == 0 and inc.last_delta["appended_dates"] == 1
    n_old = inc.open_prices("KR", s1).sizes["date"]
    old_date_chunks = len(dategrid.sealed_edges(n_old))   # the build's sealed grid

    changed = _changed(inc, s1, s2)
    # no chunk of a stored date row: only the new 1-date chunk, in both asset chunks
    # (the listing sits in the second one, at stored column 600)
    for var in VARS:
        assert all(c[0] == old_date_chunks for c in changed.get(f"prices/KR/{var}", [])), var
    assert changed["prices/KR/close"] == [(old_date_chunks, 0), (old_date_chunks, 1)]
    # the coordinate's chunk is as long as the first build's axis: the new id starts a new one
    assert changed["prices/KR/asset"] == [(1,)]
    # stored order: the listing at the end; readers: sorted
    ids = assetgrid.stored_ids(_stored(inc))
    assert ids[-1] == NEW and len(ids) == 601
    got = inc.open_prices("KR")
    assert list(got["asset"].values) == sorted(ids)
    assert int(np.flatnonzero(got["asset"].values == NEW)[0]) == 251
    # one dask block per stored asset chunk (the listing joins the first): no stored
    # chunk of the sorted part is read by two blocks
    assert got["close"].data.chunks[1] == (513, 88)

    inc.commit({"prices": f["prices"][f["prices"]["date"] == after]}, message="next day",
               delta=True)
    full = _full(tmp_path / "full", f, after)
    xr.testing.assert_equal(inc.open_prices("KR").load(), full.open_prices("KR").load())
    assert int(inc.open_prices("KR")["close"].sel(asset=NEW).notnull().sum()) == 2
    # a stored column, read through the reader that indexes stored arrays directly
    late = sorted(ids)[400]
    bars = f["prices"][f["prices"]["asset_id"].isin([late, NEW]) & (f["prices"]["date"] == after)]
    seeds = previous_closes(inc, "KR", bars).set_index("asset_id")["close"]
    want = full.open_prices("KR")["close"].sel(date=listing)
    assert seeds[late] == float(want.sel(asset=late)) and seeds[NEW] == float(want.sel(asset=NEW))


def test_a_listing_costs_the_same_whatever_the_history(tmp_path, make_frames):
    """The chunks a listing day writes do not depend on how many dates are stored."""
    listing = _days()[-2]
    written = {}
    for start in ("2023-08-01", "2021-08-02"):
        f = _with_listing(make_frames, listing, start=start)
        st, s1, s2 = _incremental(tmp_path / start, f, listing)
        assert st.last_delta["rewrites"] == 0
        changed = _changed(st, s1, s2)
        written[start] = sum(len(changed.get(f"prices/KR/{v}", [])) for v in VARS)
        assert written[start] and st.last_delta["region_cells"] == 601   # one row
    assert written["2023-08-01"] == written["2021-08-02"]


def test_the_catalog_reads_the_sorted_panel(tmp_path, make_frames):
    days = _days()
    f = _with_listing(make_frames, days[-3])
    inc, _, _ = _incremental(tmp_path / "inc", f, days[-3])
    for day in days[-2:]:
        inc.commit({"prices": f["prices"][f["prices"]["date"] == day]}, message="day",
                   delta=True)
    _full(tmp_path / "full", f, days[-1])
    kw = dict(markets=["KR"], start="2024-02-01", end=END)
    got = quantlib.open_catalog(str(tmp_path / "inc"), **kw)["prices"].read()
    want = quantlib.open_catalog(str(tmp_path / "full"), **kw)["prices"].read()
    assert list(got["asset"].values) == list(want["asset"].values)
    for var in ("close", "returns", "open"):
        np.testing.assert_array_equal(got[var].values, want[var].values)
    assert np.isfinite(got["close"].sel(asset=NEW).values).sum() == 3


def test_compaction_restores_the_sorted_order(tmp_path, make_frames):
    days = _days()
    f = _with_listing(make_frames, days[-2])
    inc, _, s2 = _incremental(tmp_path / "inc", f, days[-2])
    panel = inc.open_prices("KR").load()
    result = compact(str(tmp_path / "inc"))
    assert result.snapshot_id is not None and "prices/KR/asset" in result.rewritten
    ids = assetgrid.stored_ids(_stored(inc))
    assert list(ids) == sorted(ids) and ids[251] == NEW
    xr.testing.assert_equal(inc.open_prices("KR").load(), panel)
    # direct stored reads agree with the reader now (no permutation left)
    np.testing.assert_array_equal(_stored(inc)["close"][:], panel["close"].values)
    inc.commit({"prices": f["prices"][f["prices"]["date"] == days[-1]]}, message="next",
               delta=True)
    xr.testing.assert_equal(inc.open_prices("KR").load(),
                            _full(tmp_path / "full", f, days[-1]).open_prices("KR").load())


def test_a_panel_without_no_bar_fills_is_rewritten_once(tmp_path, make_frames, monkeypatch):
    """A store written before the fill values (split/dividend filled with NaN) cannot
    rely on never-written cells: its first listing rewrites the panel, which then has
    them, and the next listing is appended."""
    days = _days()
    f = _with_listing(make_frames, days[-2])
    with monkeypatch.context() as m:
        m.setattr(assetgrid, "fill_encoding", lambda ds: {})
        st = CuratedStore(tmp_path / "old")
        head = dict(f)
        head["assets"] = f["assets"][f["assets"]["asset_id"] != NEW]
        head["symbols"] = f["symbols"][f["symbols"]["asset_id"] != NEW]
        head["prices"] = f["prices"][f["prices"]["date"] < days[-2]]
        st.commit(head, message="initial, old fill values")
    assert not assetgrid.has_no_bar_fills(_stored(st))
    st.commit({"prices": f["prices"][f["prices"]["date"] == days[-2]],
               "assets": f["assets"], "symbols": f["symbols"]}, message="listing", delta=True)
    assert st.last_delta["rewrites"] == 1 and assetgrid.has_no_bar_fills(_stored(st))
    xr.testing.assert_equal(st.open_prices("KR").load(),
                            _full(tmp_path / "full", f, days[-2]).open_prices("KR").load())


@pytest.mark.parametrize("where", ["first", "last"])
def test_listings_at_either_end_are_appended_too(tmp_path, make_frames, where):
    days = _days()
    f = make_frames(n_assets=3, start="2024-01-02", end=END, seed=0, markets=("KR",))
    new = "KQ99999999999" if where == "first" else "KR99999999999"
    row = f["assets"].iloc[[0]].assign(asset_id=new)
    f["assets"] = pd.concat([f["assets"], row], ignore_index=True)
    bars = f["prices"][(f["prices"]["asset_id"] == f["assets"]["asset_id"].iloc[0])
                       & (f["prices"]["date"] >= days[-1])].assign(asset_id=new)
    f["prices"] = pd.concat([f["prices"], bars], ignore_index=True)
    st = CuratedStore(tmp_path / "s")
    head = dict(f)
    head["assets"] = f["assets"][f["assets"]["asset_id"] != new]
    head["prices"] = f["prices"][f["prices"]["date"] < days[-1]]
    st.commit(head, message="initial")
    st.commit({"prices": f["prices"][f["prices"]["date"] == days[-1]],
               "assets": f["assets"]}, message="listing", delta=True)
    assert st.last_delta["rewrites"] == 0
    assert assetgrid.stored_ids(_stored(st))[-1] == new
    full = CuratedStore(tmp_path / "full")
    full.commit(f, message="full")
    xr.testing.assert_equal(st.open_prices("KR").load(), full.open_prices("KR").load())


def test_the_sorted_view_equals_fancy_indexing():
    """SortedColumns (what readers of an unsorted panel go through) against numpy."""
    rng = np.random.default_rng(7)
    ids = np.array(sorted(f"X{i:05d}" for i in rng.choice(99999, 1300, replace=False)))
    stored = np.concatenate([np.delete(ids, [5, 600, 1299]), ids[[600, 5, 1299]]])
    values = rng.normal(size=(40, len(stored)))
    order = assetgrid.sorted_order(stored)
    view = assetgrid.SortedColumns(values, order, assetgrid.sorted_prefix(stored))
    want = values[:, order]
    assert list(stored[order]) == list(ids) and assetgrid.sorted_prefix(stored) == 1297
    for key in [(slice(None), slice(0, 513)), (slice(3, 9), slice(500, 1300)), (slice(None), 5),
                (7, slice(None)), (slice(None), np.array([1299, 0, 600]))]:
        np.testing.assert_array_equal(view[key], want[key])
    blocks = assetgrid.sorted_blocks(stored, order, 512)
    assert sum(blocks) == 1300 and len(blocks) == 3
