"""The statements SQL export of a delta commit: only the day's rows are written, and a
version whose export was lost (the process killed between the Icechunk commit and the
export) is exported again by the reader, so the ``statements`` view never misses a
committed row."""

from __future__ import annotations

import os

import pandas as pd

import quantlib
from quantlib.store import CuratedStore, parquet
from quantlib.store.parquet import statements_files


def test_delta_export_holds_the_new_rows_only_and_a_lost_export_is_redone(
        tmp_path, make_frames, monkeypatch):
    f = make_frames(n_assets=3, markets=("KR",))
    root = tmp_path / "s"
    st = CuratedStore(root)
    st.commit(f, message="full")
    written: list[int] = []
    write = parquet.write_table_file_parts   # every export (a full one by parts)

    def counting(location, name, key, parts):
        parts = list(parts)
        written.append(sum(len(p) for p in parts))
        return write(location, name, key, parts)
    monkeypatch.setattr(parquet, "write_table_file_parts", counting)
    n = len(f["statements"])
    later = []
    for day in range(3):
        new = f["statements"].iloc[:2].assign(
            known_at=pd.Timestamp("2024-05-01", tz="UTC") + pd.Timedelta(days=day))
        later.append(st.commit({"statements": new}, message=f"day {day}", delta=True))
    assert written == [2, 2, 2]   # each export: that day's rows, whatever is stored
    # the middle day's export lost (killed after its commit): the reader redoes that
    # version whole and stops there
    lost = root / "tables" / "statements" / f"{later[1]}.delta.parquet"
    os.remove(lost)
    written.clear()
    files = statements_files(st)
    assert written == [n + 4]
    assert [os.path.basename(p) for p in files] == [f"{later[1]}.parquet",
                                                    f"{later[2]}.delta.parquet"]
    got = quantlib.sql("select count(*) as n from statements", store=str(root))
    assert int(got["n"][0]) == n + 6 == len(st.read_table("statements"))
    written.clear()
    assert statements_files(st) == files and written == []   # redone once
