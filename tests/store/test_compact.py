"""Compaction: a store fragmented by daily appends is rechunked as its own commit, with
every panel unchanged and fewer chunks to read; the job is scheduled."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from quantlib.errors import SnapshotNotFoundError
from quantlib.store import CuratedStore, dategrid
from quantlib.store.compact import chunk_counts, compact

ROOT = Path(__file__).parents[2]


def _appended_store(path: Path, make_frames) -> CuratedStore:
    """A store started from a few sessions, then one delta commit per session."""
    truth = make_frames(n_assets=4, end="2024-02-09")
    st = CuratedStore(path)
    start = pd.Timestamp("2024-01-04")
    head = dict(truth)
    for name in ("prices", "fx"):
        head[name] = truth[name][truth[name]["date"] < start]
    st.commit(head, message="initial")
    for day in sorted(set(truth["prices"]["date"][truth["prices"]["date"] >= start])):
        st.commit({"prices": truth["prices"][truth["prices"]["date"] == day],
                   "fx": truth["fx"][truth["fx"]["date"] == day]},
                  message=f"increment {day.date()}", delta=True)
    return st


def test_compaction_restores_chunk_counts_and_keeps_every_cell(tmp_path, make_frames):
    st = _appended_store(tmp_path / "store", make_frames)
    first = st.snapshots()["snapshot_id"].iloc[-1]
    before_tip = st.resolve(None)
    at_start = chunk_counts(st, first)
    fragmented = chunk_counts(st)
    assert fragmented["prices/KR"] > at_start["prices/KR"] + 5   # appends fragmented it
    panels = {m: st.open_prices(m).load() for m in st.markets()}

    result = compact(str(tmp_path / "store"))
    assert result.snapshot_id == st.resolve(None) != before_tip        # its own commit
    assert result.tag is not None and result.tag.startswith("compact-")
    assert result.tag in st.snapshots().set_index("snapshot_id").loc[result.snapshot_id, "tags"]
    # every date array of each market and of fx: the 1-date chunks appended merged
    assert sorted(result.rewritten) == sorted(
        [f"prices/{m}/{v}" for m in ("EU", "KR", "US")
         for v in ("close", "date", "dividend", "high", "known_at", "low", "open", "returns",
                   "split", "volume")] + ["fx/date", "fx/known_at", "fx/rate"])
    assert result.before == fragmented
    after = chunk_counts(st)
    for group in ("prices/EU", "prices/KR", "prices/US"):
        # 9 variables: first build's chunk + one merged chunk; the date coordinate: 1
        assert after[group] == at_start[group] + 9 < fragmented[group]
    for m, ds in panels.items():
        xr.testing.assert_identical(ds.drop_attrs(), st.open_prices(m).load().drop_attrs())
        xr.testing.assert_identical(ds.drop_attrs(),
                                    st.open_prices(m, before_tip).load().drop_attrs())
        n0 = st.open_prices(m, first).sizes["date"]
        stored = zarr.open_array(st.repo.readonly_session("main").store,
                                 path=f"prices/{m}/close", mode="r")
        assert dategrid.date_edges(stored) == [n0, ds.sizes["date"] - n0]
    # appends after compaction keep working on the rechunked arrays
    again = compact(str(tmp_path / "store"))
    assert again.snapshot_id is None and "nothing to do" in str(again)
    assert len(st.snapshots()) == len(st.snapshots().drop_duplicates("snapshot_id"))


def test_compaction_needs_a_version(tmp_path):
    with pytest.raises(SnapshotNotFoundError):
        compact(str(tmp_path / "empty"))


def test_compact_cli(tmp_path, make_frames):
    from quantlib.cli import cli

    _appended_store(tmp_path / "store", make_frames)
    out = CliRunner().invoke(cli, ["data", "compact", "--store", str(tmp_path / "store"),
                                   "--tag", "weekly-compact"])
    assert out.exit_code == 0, out.output
    assert "(weekly-compact): 33 arrays rewritten" in out.output
    assert CuratedStore(tmp_path / "store").resolve("weekly-compact")


def test_compaction_is_a_scheduled_job():
    from quantlib.schedule.jobs import load_schedules

    jobs = load_schedules(ROOT / "catalogs" / "schedules.yaml")
    job = jobs["compact-store"]
    assert job.notebook_rel == "notebooks/compact_store.ipynb"
    assert (ROOT / job.notebook_rel).exists()
    assert job.owner == "data-team" and job.cron.split()[4] != "*"    # weekly
