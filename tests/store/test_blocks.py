"""Block writes of a large delta (:mod:`quantlib.store.blocks`): a store months behind,
caught up in ONE delta commit whose new dates land in whole blocks of the date grid,
equals a full build of the same bars cell for cell, and has a full build's grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from quantlib.store import CuratedStore, dategrid
from quantlib.store.blocks import BarArrays
from quantlib.store.panels import PRICE_VARS, ns_values

CUT = pd.Timestamp("2023-11-01")    # the store's last version ends before it


class FrameBars:
    """A market's delta bars held as a frame (the BlockBars of a test)."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars.reset_index(drop=True)
        dates = ns_values(self.bars["date"])
        self.first, self.last, self.rows = dates.min(), dates.max(), len(self.bars)
        self.parts = [lambda: self.bars]
        self.reads: list[tuple[np.datetime64, np.datetime64]] = []

    def read(self, lo: np.datetime64, hi: np.datetime64, ids: pd.Index) -> BarArrays:
        self.reads.append((lo, hi))
        d = ns_values(self.bars["date"])
        b = self.bars[(d >= lo) & (d <= hi)]
        col = ids.get_indexer(b["asset_id"].astype(str))
        assert (col >= 0).all()
        return BarArrays(ns_values(b["date"]), col,
                         {v: b[v].to_numpy(dtype="float64") for v in PRICE_VARS},
                         ns_values(b["known_at"]).view("int64"))


def _history(make_frames) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(the vendor's state at CUT, its state at the end): ~1.4 y of two markets; by the
    end a listing (its id sorts first), a bar of the first stored block corrected, and a
    split announced late with its ex date in the second stored block."""
    f = make_frames(n_assets=5, start="2022-09-01", end="2024-06-28", seed=11,
                    markets=("KR", "US"))
    new = f["assets"][f["assets"]["market"] == "US"].iloc[[0]].assign(
        asset_id="US00000000000", known_at=pd.Timestamp("2024-01-10", tz="UTC"))
    src = f["prices"][f["prices"]["asset_id"] == f["assets"]["asset_id"].iloc[5]]
    listed = src[src["date"] >= "2024-01-10"].assign(asset_id="US00000000000")
    end = dict(f)
    end["assets"] = pd.concat([f["assets"], new], ignore_index=True)
    end["symbols"] = pd.concat([f["symbols"], pd.DataFrame(
        {"asset_id": ["US00000000000"], "symbol": ["NEWCO"],
         "valid_from": [pd.Timestamp("2024-01-10")], "valid_to": [pd.NaT]})],
        ignore_index=True)
    prices = pd.concat([f["prices"], listed], ignore_index=True)
    kr = f["assets"]["asset_id"].iloc[1]
    hit = (prices["asset_id"] == kr) & (prices["date"] == pd.Timestamp("2022-10-12"))
    assert hit.sum() == 1
    prices.loc[hit, ["open", "high", "low", "close"]] *= 1.04
    end["prices"] = prices
    us = f["assets"]["asset_id"].iloc[6]
    end["corporate_actions"] = pd.concat([f["corporate_actions"], pd.DataFrame(
        {"asset_id": [us], "ex_date": [pd.Timestamp("2023-04-03")], "kind": ["split"],
         "value": [2.0], "known_at": [pd.Timestamp("2024-02-01", tz="UTC")]})],
        ignore_index=True)
    head = dict(f)
    head["prices"] = f["prices"][f["prices"]["date"] < CUT]
    head["fx"] = f["fx"][f["fx"]["date"] < CUT]
    return head, end


def _edges(st: CuratedStore, market: str) -> dict[str, list[int]]:
    root = zarr.open_group(st.repo.readonly_session("main").store, mode="r")
    return {name: dategrid.date_edges(a) for name, a in
            dategrid.date_arrays(root[market if market == "fx" else f"prices/{market}"])
            if a.ndim == 2}


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_catch_up_blocks_equal_full_build(tmp_path, make_frames, scheduler):
    head, end = _history(make_frames)
    full = CuratedStore(tmp_path / "full")
    full.commit(end, message="full build")
    st = CuratedStore(tmp_path / "grown")
    first = st.commit(head, message="initial")
    stored = {m: st.open_prices(m).sizes["date"] for m in ("KR", "US")}
    assert all(2 * 128 < n < 3 * 128 for n in stored.values())   # 2 blocks + a tail
    # the delta: every bar from CUT on, the corrected bar, the late action's table
    p = end["prices"]
    fixed = p.merge(head["prices"], how="left", indicator=True,
                    on=list(p.columns))["_merge"].eq("left_only").to_numpy()
    delta = p[fixed]
    assert (delta["date"] < CUT).sum() == 1                       # the correction
    market = end["assets"].set_index("asset_id")["market"]
    blocks = {m: FrameBars(delta[market.reindex(delta["asset_id"]).to_numpy() == m])
              for m in ("KR", "US")}
    import dask

    with dask.config.set(scheduler=scheduler):
        snap = st.commit({"assets": end["assets"], "symbols": end["symbols"],
                          "corporate_actions": end["corporate_actions"],
                          "fx": end["fx"][end["fx"]["date"] >= CUT]},
                         message="catch-up", delta=True, price_blocks=blocks)
    assert st.resolve() == snap and len(st.snapshots()) == 2
    rows = st.last_delta
    n = {m: st.open_prices(m).sizes["date"] for m in ("KR", "US")}
    # KR rewritten from its first block (the correction), US from its second (the split)
    assert rows["rewrites"] == 0 and rows["block_chunks"] == \
        -(-n["KR"] // 128) + -(-n["US"] // 128) - 1       # one task per date block
    assert rows["appended_dates"] == sum(n[m] - stored[m] for m in n)
    assert rows["prices"] == len(delta)
    for m in ("KR", "US"):
        xr.testing.assert_equal(st.open_prices(m).load().drop_attrs(),
                                full.open_prices(m).load().drop_attrs())
        grown = _edges(st, m)
        assert grown == _edges(full, m) and len(grown) == 9
        n = st.open_prices(m).sizes["date"]
        assert grown["close"] == dategrid.sealed_edges(n) and n - stored[m] > 128
    xr.testing.assert_equal(st.open_fx().load().drop_attrs(), full.open_fx().load().drop_attrs())
    assert _edges(st, "fx") == _edges(full, "fx") and len(_edges(st, "fx")["rate"]) == \
        len(dategrid.sealed_edges(st.open_fx().sizes["date"]))     # no 1-date FX chunks
    # KR from its first block (the correction), US from its second (the late split)
    starts = {m: min(a for a, _ in b.reads) for m, b in blocks.items()}
    kr_dates = st.open_prices("KR")["date"].values
    us_dates = st.open_prices("US")["date"].values
    assert starts["KR"] == kr_dates[0] and starts["US"] == us_dates[128]
    # the previous version is untouched: its grid and values
    old = st.open_prices("KR", first).load()
    assert old.sizes["date"] == stored["KR"]
    kr = end["assets"]["asset_id"].iloc[1]
    was = float(old["close"].sel(asset=kr, date="2022-10-12"))
    now = float(st.open_prices("KR")["close"].sel(asset=kr, date="2022-10-12"))
    assert now == pytest.approx(was * 1.04) and now != was
    us = end["assets"]["asset_id"].iloc[6]
    split = st.open_prices("US")["split"].sel(asset=us, date="2023-04-03")
    assert float(split) == 2.0


def test_catch_up_blocks_only_rewrite_the_tail(tmp_path, make_frames):
    """Without corrections or late actions, the stored full blocks keep their chunks:
    only the partly filled last block and the new dates are written."""
    head, end = _history(make_frames)
    end["prices"] = pd.concat([head["prices"], end["prices"][end["prices"]["date"] >= CUT]],
                              ignore_index=True)
    end["corporate_actions"] = head["corporate_actions"]
    st = CuratedStore(tmp_path / "grown")
    first = st.commit(head, message="initial")
    delta = end["prices"][end["prices"]["date"] >= CUT]
    market = end["assets"].set_index("asset_id")["market"]
    blocks = {m: FrameBars(delta[market.reindex(delta["asset_id"]).to_numpy() == m])
              for m in ("KR", "US")}
    snap = st.commit({"assets": end["assets"], "symbols": end["symbols"]},
                     message="catch-up", delta=True, price_blocks=blocks)
    diff = st.repo.diff(from_snapshot_id=first, to_snapshot_id=snap)
    touched = {(path.strip("/"), c[0]) for path, chunks in diff.updated_chunks.items()
               for c in chunks if "/date" not in path and len(c) == 2}
    assert touched and min(c for _, c in touched) == 2      # blocks 0 and 1 kept
    full = CuratedStore(tmp_path / "full")
    full.commit(end, message="full build")
    for m in ("KR", "US"):
        xr.testing.assert_equal(st.open_prices(m).load().drop_attrs(),
                                full.open_prices(m).load().drop_attrs())
        assert _edges(st, m) == _edges(full, m)
