"""Delta commits with a new listing whose id sorts inside the stored asset axis (an ISIN
sorts anywhere): the panel is written by region, not rewritten whole, and still equals a
full build of the same bars cell for cell."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from quantlib import calendars
from quantlib.store import CuratedStore

NEW = "KR00000005505"   # sorts between the stored KR00000005500 and KR00000005510


def _with_listing(make_frames, first_day: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """600 KR assets (two 512-wide asset chunks) and a listing trading from ``first_day``."""
    f = make_frames(n_assets=600, start="2023-08-01", end="2024-03-29", seed=0, markets=("KR",))
    row = f["assets"].iloc[[3]].assign(asset_id=NEW,
                                       known_at=first_day.tz_localize("UTC"))
    src = f["prices"][f["prices"]["asset_id"] == f["assets"]["asset_id"].iloc[3]]
    bars = src[src["date"] >= first_day].assign(asset_id=NEW)
    f["assets"] = pd.concat([f["assets"], row], ignore_index=True)
    f["symbols"] = pd.concat([f["symbols"], pd.DataFrame(
        {"asset_id": [NEW], "symbol": ["550550"], "valid_from": [first_day],
         "valid_to": [pd.NaT]})], ignore_index=True)
    f["prices"] = pd.concat([f["prices"], bars], ignore_index=True)
    return f


def _fix(prices: pd.DataFrame, asset: str, day: pd.Timestamp) -> pd.DataFrame:
    hit = prices[(prices["asset_id"] == asset) & (prices["date"] == day)].copy()
    hit.loc[:, ["open", "high", "low", "close"]] *= 1.05
    return hit


def test_a_listing_inside_the_asset_axis_is_written_by_region(tmp_path, make_frames):
    days = pd.DatetimeIndex(calendars.sessions("KR", "2024-03-18", "2024-03-29"))
    listing, after = days[-2], days[-1]
    f = _with_listing(make_frames, listing)
    ids = sorted(f["assets"]["asset_id"])
    early, late = ids[10], ids[580]      # a stored column before the listing, one after it
    corrected = {early: _fix(f["prices"], early, days[-4]),
                 late: _fix(f["prices"], late, days[-5])}
    truth = dict(f)
    truth["prices"] = pd.concat([f["prices"], *corrected.values()]).drop_duplicates(
        ["asset_id", "date"], keep="last").sort_values(["asset_id", "date"])
    full = CuratedStore(tmp_path / "full")
    full.commit(truth, message="full build")

    inc = CuratedStore(tmp_path / "inc")
    head = {k: v for k, v in f.items() if k not in ("assets", "symbols", "prices")}
    head["assets"] = f["assets"][f["assets"]["asset_id"] != NEW]
    head["symbols"] = f["symbols"][f["symbols"]["asset_id"] != NEW]
    head["prices"] = f["prices"][f["prices"]["date"] < listing]
    s1 = inc.commit(head, message="initial")
    day1 = pd.concat([f["prices"][f["prices"]["date"] == listing], *corrected.values()])
    s2 = inc.commit({"prices": day1, "assets": f["assets"], "symbols": f["symbols"]},
                    message="listing day", delta=True)
    stats = dict(inc.last_delta)
    inc.commit({"prices": f["prices"][f["prices"]["date"] == after]}, message="next day",
               delta=True)
    assert stats["rewrites"] == 0 and inc.last_delta["rewrites"] == 0
    assert stats["appended_dates"] == 1 and inc.last_delta["appended_dates"] == 1
    got, want = inc.open_prices("KR").load(), full.open_prices("KR").load()
    xr.testing.assert_equal(got, want)
    assert got["close"].sel(asset=NEW).notnull().sum() == 2

    # what the listing day wrote: asset chunk 0 (columns 0-511) only the new date and
    # the corrected rows' chunk; asset chunk 1 (the listing's, 512-600) every date chunk
    diff = inc.repo.diff(from_snapshot_id=s1, to_snapshot_id=s2)
    close = [tuple(c) for c in diff.updated_chunks["/prices/KR/close"]]
    n_old = inc.open_prices("KR", s1).sizes["date"]
    date_chunks = -(-n_old // 128) + 1
    assert sorted(c for c in close if c[1] == 1) == [(i, 1) for i in range(date_chunks)]
    assert sorted(c for c in close if c[1] == 0) == [(date_chunks - 2, 0),
                                                     (date_chunks - 1, 0)]
