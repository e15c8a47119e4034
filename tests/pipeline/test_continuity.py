"""StoredTail (quantlib.pipeline.continuity) against a real store built from the sandbox:
what it reads for a batch equals what the stored long bars say, asset by asset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlib.pipeline import continuity, refresh
from quantlib.pipeline.continuity import StoredTail
from quantlib.pipeline.incremental import drop_unchanged
from quantlib.sandbox import generate, start_sandbox
from quantlib.standardize import CanonicalBatch
from quantlib.store import CuratedStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    u = generate(n_assets=8, years=0.25, seed=7, end="2024-03-28")
    store = str(tmp_path_factory.mktemp("tail") / "s")
    with start_sandbox(u, write_state=False) as sb:
        refresh(store, connection=sb.connection())
    st = CuratedStore(store)
    return st, st.read_table("prices"), st.read_table("assets")


def _batch(bars: pd.DataFrame, ids: list[str], dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Stored bars of ``ids`` from ``dates[0]`` on, some changed, plus a bar on a new
    date for each and an asset the store does not hold."""
    b = bars[bars["asset_id"].isin(ids) & (bars["date"] >= dates[0])].copy()
    b = b.reset_index(drop=True)
    b.loc[0, "close"] += 1.0                                  # a corrected value
    b.loc[1, "known_at"] += pd.Timedelta(hours=1)             # re-stamped, same values
    b.loc[2, "volume"] = np.nan                               # a value lost
    new = b.groupby("asset_id").tail(1).assign(date=dates[-1] + pd.Timedelta(days=1))
    other = b.iloc[:1].assign(asset_id="KR7000000009")
    return pd.concat([b, new, other], ignore_index=True).assign(source="s", file="f", row=1)


def test_stored_tail_reads_the_cells_and_last_bars_the_store_holds(built, monkeypatch):
    monkeypatch.setattr(continuity, "_WINDOW", 2)    # several backward windows
    st, bars, assets = built
    ids = assets.loc[assets["market"] == "KR", "asset_id"].tolist()
    kr = bars[bars["asset_id"].isin(ids)]
    dates = pd.DatetimeIndex(sorted(kr["date"].unique()))
    batch = _batch(kr, ids, dates[-12:])
    tail = StoredTail.open(st, "KR")
    assert tail is not None

    # unchanged: exactly the stored bars delivered again as stored
    same = tail.unchanged(batch)
    stored = batch.merge(kr, on=["asset_id", "date"], how="left", suffixes=("", "_s"))
    want = np.array(stored["known_at"].eq(stored["known_at_s"]), dtype=bool)
    for var in ("open", "high", "low", "close", "volume"):
        a, s = stored[var].to_numpy(), stored[var + "_s"].to_numpy()
        want &= (a == s) | (np.isnan(a) & np.isnan(s))
    assert same.tolist() == want.tolist()
    assert 0 < same.sum() == len(batch) - 3 - len(ids) - 1
    out, dropped = drop_unchanged(st, "KR", CanonicalBatch.empty().replace(prices=batch), tail)
    assert dropped == same.sum() and len(out.prices) == len(batch) - dropped

    # last bars: each stored asset's last bar, whatever the batch delivers
    last = tail.last_bars(batch)
    pd.testing.assert_series_equal(
        last.sort_index(), kr.groupby("asset_id")["date"].max().sort_index()
        .rename_axis("asset_id").rename("date"), check_index_type=False)

    # previous closes: the last stored bar before each asset's first bar in the batch
    late = batch[batch["asset_id"] != ids[0]]
    late = pd.concat([late, kr[kr["asset_id"] == ids[0]].tail(1)])  # ids[0]: its last bar
    prev = tail.previous_closes(late).set_index("asset_id").sort_index()
    first = late.groupby("asset_id")["date"].min()
    before = kr[kr["date"] < kr["asset_id"].map(first)]
    want_prev = before.sort_values("date").groupby("asset_id").tail(1).set_index(
        "asset_id").sort_index()
    assert prev.index.tolist() == want_prev.index.tolist() and "KR7000000009" not in prev.index
    assert prev["date"].tolist() == want_prev["date"].tolist()
    assert prev["close"].tolist() == want_prev["close"].tolist()


def test_stored_tail_fx_and_absent_panels(built, tmp_path):
    st = built[0]
    fx = st.read_table("fx")
    rows = fx[fx["date"] >= fx["date"].max() - pd.Timedelta(days=10)].reset_index(drop=True)
    rows.loc[0, "rate"] *= 1.001
    tail = StoredTail.open(st, "FX")
    assert tail is not None
    assert tail.unchanged(rows).tolist() == [False] + [True] * (len(rows) - 1)
    assert StoredTail.open(st, "JP") is None                 # no panel of that market
    assert StoredTail.open(CuratedStore(str(tmp_path / "empty")), "KR") is None
