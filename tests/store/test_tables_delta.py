"""What a delta commit reads and writes of the long tables: the statements key check
reads only the row ranges that can hold the day's ``known_at``; reference tables the
vendor only added rows to are appended, not rewritten."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr

from quantlib.pipeline.incremental import upsert_appending, upsert_table
from quantlib.store import CuratedStore
from quantlib.store.curated import STORED_ROWS_ATTR, _fresh_statements
from quantlib.store.tables import (
    CHUNK_ROWS,
    RANGE_COLUMN,
    append_table,
    read_table_group,
    rows_holding,
    write_table,
)


def _statements(n: int, seed: int, start: str = "2010-01-01", days: int = 3000
                ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    known = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.integers(0, days, n), "D")
    return pd.DataFrame({
        "asset_id": [f"US{i:010d}" for i in rng.integers(0, 500, n)],
        "field": rng.choice(["revenue", "net_income", "assets"], n),
        "period_end": (known - pd.Timedelta(days=40)).tz_localize(None).normalize(),
        "value": rng.normal(size=n), "known_at": known})


def _covered(slices: list[slice] | None, n: int) -> np.ndarray:
    rows = np.zeros(n, dtype=bool)
    for s in slices if slices is not None else [slice(0, n)]:
        rows[s] = True
    return rows


def test_row_ranges_cover_every_matching_row_and_skip_the_rest():
    root = zarr.group(store=zarr.storage.MemoryStore())
    full = _statements(3 * CHUNK_ROWS + 123, seed=1)
    write_table(root, "s", full)
    days = [_statements(50 + 7 * i, seed=10 + i, start=f"2019-03-{i + 1:02d}", days=1)
            for i in range(30)]
    for day in days:
        append_table(root, "s", day)
    stored = read_table_group(root, "s")
    ranges = dict(root["s"].attrs)["ranges"][RANGE_COLUMN]
    # contiguous, complete, exact bounds; the 30 small appends merged to a few ranges
    assert [r[0] for r in ranges[1:]] == [r[1] for r in ranges[:-1]]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(stored)
    ticks = stored[RANGE_COLUMN].dt.tz_localize(None).to_numpy().view("int64")
    for start, stop, lo, hi in ranges:
        assert ticks[start:stop].min() >= lo and ticks[start:stop].max() <= hi
    assert sum(r[1] - r[0] < CHUNK_ROWS for r in ranges) <= 16
    for values in (days[-1]["known_at"], days[3]["known_at"].iloc[:2],
                   full["known_at"].iloc[[5, 70_000]],
                   pd.Series(pd.to_datetime(["2030-01-01"], utc=True))):
        got = _covered(rows_holding(root, "s", values), len(stored))
        hit = stored[RANGE_COLUMN].isin(values).to_numpy()
        assert got[hit].all()                       # never misses a row
        assert got.sum() < len(stored)              # and does not read everything
    # a day newer than everything stored: no range at all
    assert rows_holding(root, "s", pd.Series(pd.to_datetime(["2030-01-01"], utc=True))) == []


def test_table_written_before_ranges_gets_them_on_its_first_append():
    root = zarr.group(store=zarr.storage.MemoryStore())
    old = _statements(1000, seed=2)
    write_table(root, "s", old)
    root["s"].attrs.update({"ranges": None})   # as a store written before row ranges
    del root["s"].attrs["ranges"]
    assert rows_holding(root, "s", old["known_at"]) is None
    new = _statements(10, seed=3, start="2025-01-01", days=1)
    append_table(root, "s", new)
    assert rows_holding(root, "s", new["known_at"]) == [slice(1000, 1010)]
    assert rows_holding(root, "s", old["known_at"].iloc[:1]) == [slice(0, 1000)]


def test_fresh_statements_equal_a_check_against_every_stored_key():
    root = zarr.group(store=zarr.storage.MemoryStore())
    stored = _statements(2 * CHUNK_ROWS + 17, seed=4)
    write_table(root, "statements", stored)
    append_table(root, "statements", _statements(40, seed=5, start="2019-01-02", days=1))
    everything = read_table_group(root, "statements")
    # a delivery: 30 stored rows (re-delivered), 25 new filings, a restatement of a
    # stored key with a later known_at, and a late filing with an old known_at
    again = everything.sample(30, random_state=0)
    new = _statements(25, seed=6, start="2019-01-03", days=1)
    restated = everything.iloc[[3]].assign(known_at=pd.Timestamp("2019-01-03", tz="UTC"))
    late = everything.iloc[[9]].assign(field="late_field")
    batch = pd.concat([again, new, restated, late], ignore_index=True)
    got = _fresh_statements(root, batch)
    keys = ["asset_id", "field", "period_end", "known_at"]
    want = batch.drop_duplicates(keys).merge(everything[keys], on=keys, how="left",
                                             indicator=True)
    want = want[want["_merge"] == "left_only"].drop(columns="_merge")
    pd.testing.assert_frame_equal(got.sort_values(keys).reset_index(drop=True),
                                  want.sort_values(keys).reset_index(drop=True))
    assert len(got) == 27


@pytest.mark.parametrize("seed", range(6))
def test_upsert_appending_keeps_the_rows_of_upsert_table(seed):
    rng = np.random.default_rng(seed)
    stored = pd.DataFrame({"asset_id": rng.choice(list("ABCDEFG"), 40),
                           "ex_date": pd.to_datetime("2020-01-01")
                           + pd.to_timedelta(rng.integers(0, 90, 40), "D"),
                           "value": rng.choice([0.5, 1.0, np.nan], 40)})
    delivered = stored[stored["asset_id"].isin(list("BCE"))]
    extra = pd.DataFrame({"asset_id": ["B", "H"], "ex_date": pd.to_datetime(["2021-01-04"] * 2),
                          "value": [np.nan, 2.0]})
    cases = [pd.concat([delivered, extra]).sample(frac=1, random_state=seed),   # added
             delivered.iloc[1:],                                              # removed
             delivered.assign(value=delivered["value"].fillna(0) + (seed == 3)),  # changed
             delivered]                                                       # unchanged
    for new in cases:
        new = new.reset_index(drop=True)
        got, want = upsert_appending(stored, new), upsert_table(stored, new)
        cols = list(stored.columns)
        pd.testing.assert_frame_equal(got.sort_values(cols).reset_index(drop=True),
                                      want.sort_values(cols).reset_index(drop=True))
        if STORED_ROWS_ATTR in got.attrs:
            pd.testing.assert_frame_equal(got.iloc[:len(stored)], stored)
    assert upsert_appending(stored, cases[0]).attrs[STORED_ROWS_ATTR] == len(stored)
    assert len(upsert_appending(stored, cases[0])) == len(stored) + 2
    assert STORED_ROWS_ATTR not in upsert_appending(stored, cases[1]).attrs
    assert len(upsert_appending(stored, cases[3])) == len(stored)


def test_delta_commit_appends_added_actions_and_skips_an_unchanged_delivery(tmp_path, frames):
    st = CuratedStore(str(tmp_path))
    first = st.commit(frames, message="full")
    actions = frames["corporate_actions"]
    early = actions.iloc[[1]].assign(kind="dividend", value=0.25,
                                     ex_date=pd.Timestamp("2024-01-05"))
    market = frames["assets"].set_index("asset_id")["market"]
    on = st.open_prices(str(market[actions["asset_id"].iloc[0]]))["date"].values[-3]
    late = actions.iloc[[0]].assign(kind="dividend", value=9.0, ex_date=pd.Timestamp(on))
    snaps = [first]
    for delivered in (pd.concat([actions, early], ignore_index=True),
                      pd.concat([early, actions, late], ignore_index=True)):
        table = upsert_appending(st.read_table("corporate_actions"), delivered)
        n = len(st.read_table("corporate_actions"))
        assert table.attrs[STORED_ROWS_ATTR] == n
        snaps.append(st.commit({"corporate_actions": table}, message="action", delta=True))
        assert st.last_delta["corporate_actions"] == 1
        pd.testing.assert_frame_equal(st.read_table("corporate_actions"), table)
    # the second append writes only its own chunk: no stored chunk of the table changed
    # (the first append after a full write sizes the partly filled chunk once)
    diff = st.repo.diff(from_snapshot_id=snaps[1], to_snapshot_id=snaps[2])
    paths = [p for p in diff.updated_chunks if p.startswith("/corporate_actions/")]
    assert paths
    for path in paths:
        assert [tuple(c) for c in diff.updated_chunks[path]] == [(2,)], path
    assert sorted(st.read_table("corporate_actions")["value"]) == \
        sorted([*actions["value"], 0.25, 9.0])
    # the late action is in the panel: a dividend on its ex date
    ds = st.open_prices(str(market[late["asset_id"].iloc[0]]))
    assert float(ds["dividend"].sel(asset=late["asset_id"].iloc[0], date=on)) == 9.0
    # the same delivery again: nothing to write, no new version
    again = upsert_appending(st.read_table("corporate_actions"), delivered)
    assert again.attrs[STORED_ROWS_ATTR] == len(again)
    assert st.commit({}, message="nothing", delta=True) == snaps[-1] == st.tip()


def test_upsert_appending_checks_hash_pairs_cell_by_cell(monkeypatch):
    """Rows are paired by hash; a collision (forced here: every row hashes alike) must
    fall back to the rewrite, never keep a changed row."""
    stored = pd.DataFrame({"asset_id": ["A", "B"], "value": [1.0, 2.0]})
    changed = pd.DataFrame({"asset_id": ["A", "B"], "value": [1.0, 5.0]})
    monkeypatch.setattr(pd.util, "hash_pandas_object",
                        lambda f, index=False: pd.Series(np.zeros(len(f), dtype="uint64")))
    got = upsert_appending(stored, changed)
    assert STORED_ROWS_ATTR not in got.attrs
    pd.testing.assert_frame_equal(got, upsert_table(stored, changed))
    # colliding rows that are truly equal (paired in order here) still append the rest
    more = pd.DataFrame({"asset_id": ["A", "B", "A"], "value": [1.0, 2.0, 3.0]})
    got = upsert_appending(stored, more)
    assert got.attrs[STORED_ROWS_ATTR] == 2 and got["value"].tolist() == [1.0, 2.0, 3.0]
