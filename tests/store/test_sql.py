"""quantlib.sql over the store's Parquet tables (local folder)."""

from __future__ import annotations

import pandas as pd
import pytest

import quantlib
from quantlib.errors import StoreError
from quantlib.store import CuratedStore, read_table_files, write_table_file


def test_sql_views_with_real_numbers(tmp_path, make_frames):
    store = str(tmp_path)
    st = CuratedStore(store)
    v1 = make_frames(n_assets=2)
    st.commit(v1, message="one", tag="v1")
    later = make_frames(n_assets=2, statement_offset_days=40)["statements"]
    later["value"] = 7.0
    s2 = st.commit({"statements": later}, message="two", tag="v2")
    assert (tmp_path / "tables" / "statements" / f"{s2}.parquet").exists()

    for i, rows in enumerate([[100, 5], [7]]):
        write_table_file(store, "manifest", f"fetch-{i}", pd.DataFrame(
            {"fetch_id": [f"fetch-{i}"] * len(rows), "rows": rows,
             "status": ["published"] * len(rows)}))
    write_table_file(store, "quarantine", "r1", pd.DataFrame(
        {"dataset": ["prices", "prices", "statements"], "reason": ["close<=0", "gap", "dup"]}))
    write_table_file(store, "validation", "r1", pd.DataFrame(
        {"check": ["positive_prices"], "failed": [2]}))

    got = quantlib.sql("select count(*) as files, sum(rows) as rows from manifest", store=store)
    assert (int(got["files"][0]), int(got["rows"][0])) == (3, 112)
    q = quantlib.sql("select dataset, count(*) as n from quarantine group by dataset "
                     "order by dataset", store=store)
    assert q.to_dict("list") == {"dataset": ["prices", "statements"], "n": [2, 1]}
    assert int(quantlib.sql("select failed from validation", store=store)["failed"][0]) == 2
    # statements = the latest version's: old rows + the later restatements
    stm = quantlib.sql("select count(*) as n, sum(value) as total, "
                       "count(distinct known_at) as k from statements", store=store)
    assert int(stm["n"][0]) == 2 * len(v1["statements"])
    assert float(stm["total"][0]) == pytest.approx(
        v1["statements"]["value"].sum() + 7.0 * len(later))
    assert int(stm["k"][0]) == 2
    snaps = quantlib.sql("select tags from snapshots order by written_at", store=store)
    assert snaps["tags"].tolist() == ["v1", "v2"]
    assert len(read_table_files(store, "manifest")) == 3


def test_sql_error_names_available_views(tmp_path):
    write_table_file(str(tmp_path), "manifest", "f", pd.DataFrame({"rows": [1]}))
    with pytest.raises(StoreError, match="query one of the views: manifest"):
        quantlib.sql("select * from quarantine", store=str(tmp_path))
