"""What a daily refresh reads of the stored corporate actions: the actions table is
stored in ex date order with ``ex_date`` row ranges, so the continuity step and a delta
commit read only the row ranges of the recent actions, never the whole table, and still
give the same result as a full read (issue #12: the daily cost does not grow with
history)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from quantlib.pipeline.incremental import stored_action_dates
from quantlib.store import CuratedStore, curated, tables

RANGE = 64   # rows per range (and chunk) of a whole write in these tests


@pytest.fixture
def small_ranges(monkeypatch):
    monkeypatch.setattr(tables, "_CHUNK_ROWS", RANGE)


@pytest.fixture
def rows_read(monkeypatch):
    """Rows read from each stored long table through ``curated`` (where every reader
    of the actions goes)."""
    counts: dict[str, int] = {}
    read = curated.read_table_group

    def counting(root, name, *args, **kwargs):
        out = read(root, name, *args, **kwargs)
        counts[name] = counts.get(name, 0) + len(out)
        return out
    monkeypatch.setattr(curated, "read_table_group", counting)
    return counts


def _history(make_frames) -> dict[str, pd.DataFrame]:
    """Frames of 2024-01-02..2024-04-05 whose actions also hold 13 years of quarterly
    dividends per asset (a long history of actions, a short panel)."""
    f = make_frames(n_assets=12, markets=("KR", "US"), end="2024-04-05")
    ids = f["assets"]["asset_id"].to_numpy()
    ex = pd.date_range("2011-01-15", "2023-12-15", freq="QS-JAN") + pd.Timedelta(days=14)
    old = pd.DataFrame({"asset_id": np.repeat(ids, len(ex)), "ex_date": np.tile(ex, len(ids)),
                        "kind": "dividend", "value": 0.1,
                        "known_at": pd.Timestamp("2010-12-01", tz="UTC")})
    f["corporate_actions"] = pd.concat([old, f["corporate_actions"]], ignore_index=True)
    f["corporate_actions"]["ex_date"] = f["corporate_actions"]["ex_date"].astype(
        "datetime64[ns]")
    return f


def test_stored_action_dates_reads_only_the_recent_row_ranges(tmp_path, make_frames,
                                                              small_ranges, rows_read):
    f = _history(make_frames)
    st = CuratedStore(str(tmp_path))
    st.commit(f, message="full")
    n = len(f["corporate_actions"])
    assert n > 8 * RANGE
    prices = f["prices"][f["prices"]["date"] >= "2024-01-10"]
    rows_read.clear()
    got = stored_action_dates(st, prices)
    # the same rows as a filter of the whole table ...
    ca = f["corporate_actions"]
    want = ca[(ca["ex_date"] >= prices["date"].min()) &
              ca["asset_id"].isin(prices["asset_id"])][["asset_id", "ex_date"]]
    key = ["ex_date", "asset_id"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  want.sort_values(key).reset_index(drop=True),
                                  check_dtype=False)
    assert len(got) > 0
    # ... from the last row ranges only
    assert 0 < rows_read["corporate_actions"] <= 2 * RANGE


def test_delta_commit_reads_only_the_actions_its_regions_need(tmp_path, make_frames,
                                                              small_ranges, rows_read):
    f = _history(make_frames)
    day = f["prices"]["date"] > "2024-03-29"
    base = {**f, "prices": f["prices"][~day].reset_index(drop=True)}
    st = CuratedStore(str(tmp_path / "delta"))
    st.commit(base, message="base")
    rows_read.clear()
    st.commit({"prices": f["prices"][day].reset_index(drop=True)}, message="day", delta=True)
    assert st.last_delta["rewrites"] == 0 and st.last_delta["appended_dates"] > 0
    assert "corporate_actions" in rows_read   # the regions' actions come from the store
    assert rows_read["corporate_actions"] <= 2 * RANGE < len(f["corporate_actions"])
    # the panels equal a full build of the same bars and actions, cell for cell
    full = CuratedStore(str(tmp_path / "full"))
    full.commit(f, message="full")
    for market in ("KR", "US"):
        xr.testing.assert_equal(st.open_prices(market).load().drop_attrs(),
                                full.open_prices(market).load().drop_attrs())
    pd.testing.assert_frame_equal(st.read_table("corporate_actions"),
                                  full.read_table("corporate_actions"))
