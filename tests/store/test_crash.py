"""A commit killed with SIGKILL in the middle of its writes leaves the previous version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
import xarray as xr

from quantlib.store import WRITE_DELAY_ENV, CuratedStore

_WRITER = """
import sys
import pandas as pd
import xarray as xr
from quantlib.store import CuratedStore
frames = pd.read_pickle(sys.argv[2])
snap = CuratedStore(sys.argv[1]).commit(frames, message="second refresh", tag="v2")
print(snap)
"""


def _run_writer(store: str, frames_file: str, delay: str | None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop(WRITE_DELAY_ENV, None)
    if delay:
        env[WRITE_DELAY_ENV] = delay
    return subprocess.Popen([sys.executable, "-c", _WRITER, store, frames_file], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_mid_commit_keeps_previous_version(tmp_path, make_frames):
    store = str(tmp_path / "store")
    st = CuratedStore(store)
    v1 = make_frames(seed=1)
    s1 = st.commit(v1, message="first refresh", tag="v1")
    v2 = make_frames(seed=2)
    frames_file = str(tmp_path / "v2.pkl")
    pd.to_pickle(v2, frames_file)

    proc = _run_writer(store, frames_file, delay="2")
    written = []
    for line in proc.stderr:  # type: ignore[union-attr]
        if line.startswith("quantlib-store: wrote "):
            written.append(line.split()[-1])
            if written[-1] == "prices/KR":
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # the kill came while sleeping after the long tables and two panels were written
    assert written == ["assets", "symbols", "corporate_actions", "statements", "prices/EU",
                       "prices/KR"]

    fresh = CuratedStore(store)  # a new reader, as another process would open it
    assert list(fresh.snapshots()["snapshot_id"]) == [s1]
    assert fresh.resolve(None) == s1
    assert "v2" not in fresh.repo.list_tags()
    pd.testing.assert_frame_equal(fresh.read_table("assets"), v1["assets"])
    pd.testing.assert_frame_equal(fresh.read_table("statements"), v1["statements"])
    pd.testing.assert_frame_equal(
        fresh.read_table("prices"),
        v1["prices"].sort_values(["asset_id", "date"]).reset_index(drop=True))

    # the rerun completes and publishes v2; v1 stays pinnable
    rerun = _run_writer(store, frames_file, delay=None)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    s2 = out.strip().splitlines()[-1]
    after = CuratedStore(store)
    assert list(after.snapshots()["snapshot_id"]) == [s2, s1]
    pd.testing.assert_frame_equal(after.read_table("assets"), v2["assets"])
    pd.testing.assert_frame_equal(
        after.read_table("prices"),
        v2["prices"].sort_values(["asset_id", "date"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(
        after.read_table("prices", "v1"),
        v1["prices"].sort_values(["asset_id", "date"]).reset_index(drop=True))


_DELTA_WRITER = """
import sys
import pandas as pd
import xarray as xr
from quantlib.store import CuratedStore
delta = pd.read_pickle(sys.argv[2])
st = CuratedStore(sys.argv[1])
snap = st.commit(delta, message="incremental", tag="day2", delta=True)
print(snap, st.last_delta["appended_dates"])
"""


@pytest.mark.slow
def test_sigkill_mid_delta_commit_keeps_previous_version(tmp_path, make_frames):
    """An incremental (delta) commit killed after its region writes leaves the previous
    version readable; the rerun appends the sessions and equals a full build."""
    full = make_frames(n_assets=3, seed=4)
    cut = pd.Timestamp("2024-03-25")
    head = dict(full)
    head["prices"] = full["prices"][full["prices"]["date"] < cut]
    head["fx"] = full["fx"][full["fx"]["date"] < cut]
    store = str(tmp_path / "store")
    s1 = CuratedStore(store).commit(head, message="first refresh", tag="v1")
    delta = {"prices": full["prices"][full["prices"]["date"] >= cut],
             "fx": full["fx"][full["fx"]["date"] >= cut]}
    delta_file = str(tmp_path / "delta.pkl")
    pd.to_pickle(delta, delta_file)

    env = dict(os.environ, **{WRITE_DELAY_ENV: "30"})
    proc = subprocess.Popen([sys.executable, "-c", _DELTA_WRITER, store, delta_file], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # type: ignore[union-attr]
        if line.startswith("quantlib-store: wrote prices"):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    fresh = CuratedStore(store)
    assert list(fresh.snapshots()["snapshot_id"]) == [s1]
    assert pd.Timestamp(fresh.open_prices("KR")["date"].values[-1]) < cut
    pd.testing.assert_frame_equal(
        fresh.read_table("prices"),
        head["prices"].sort_values(["asset_id", "date"]).reset_index(drop=True))

    env.pop(WRITE_DELAY_ENV)
    rerun = subprocess.run([sys.executable, "-c", _DELTA_WRITER, store, delta_file], env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    s2, appended = rerun.stdout.split()[-2:]
    assert int(appended) > 0
    after = CuratedStore(store)
    assert list(after.snapshots()["snapshot_id"]) == [s2, s1]
    one = CuratedStore(tmp_path / "one")
    one.commit(full, message="full build")
    for m in one.markets():
        xr.testing.assert_equal(after.open_prices(m).load(), one.open_prices(m).load())
