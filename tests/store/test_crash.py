"""A commit killed with SIGKILL in the middle of its writes leaves the previous version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from quantlib.store import WRITE_DELAY_ENV, CuratedStore

_WRITER = """
import sys
import pandas as pd
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
