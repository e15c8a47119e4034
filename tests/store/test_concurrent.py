"""Concurrent writers x store kinds: nobody's commit is silently lost.

Each writer merges its own assets over the version it read and commits on that version
only (``CuratedStore.commit_rebased``); a writer that loses the race rebuilds on the
winner's version. N real processes released at the same instant by a start file write
distinct assets; at the end every asset is in the latest version, there is one commit
per writer, and the losers report their rebases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from quantlib.errors import WriteConflictError
from quantlib.store import WRITE_DELAY_ENV, CuratedStore

_WRITER = """
import json, os, sys, time
import pandas as pd
from quantlib.store import CuratedStore

store_url, mine_file, go = sys.argv[1:4]
mine = pd.read_pickle(mine_file)
st = CuratedStore(store_url)
st.repo  # open before the start signal
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)

def build(base):
    if base is None:
        return {"assets": mine}
    old = st.read_table("assets", base)
    return {"assets": pd.concat([old, mine], ignore_index=True)}

snap, rebases = st.commit_rebased(build, message=f"writer {mine_file}", attempts=10)
print(json.dumps({"snapshot": snap, "rebases": rebases}), flush=True)
"""


def _assets(make_frames, seed: int) -> pd.DataFrame:
    return make_frames(n_assets=2, seed=seed, markets=("US",))["assets"]


def _run_writers(store: str, tmp_path, make_frames, n: int) -> list[dict]:
    go = tmp_path / "go"
    env = {**os.environ, WRITE_DELAY_ENV: "0.3"}
    procs = []
    for w in range(n):
        f = tmp_path / f"mine{w}.pkl"
        pd.to_pickle(_assets(make_frames, 10 + w), f)
        procs.append(subprocess.Popen([sys.executable, "-c", _WRITER, store, str(f), str(go)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    for p in procs:  # every writer has opened the store; release them together
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.write_text("go")
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def _check_all_present(store: str, make_frames, n: int, reports: list[dict]) -> None:
    st = CuratedStore(store)
    ids = set(st.read_table("assets")["asset_id"])
    want = {a for w in range(n) for a in _assets(make_frames, 10 + w)["asset_id"]}
    assert ids == want  # every writer's assets, nobody's lost
    assert len(st.snapshots()) == n  # one commit per writer
    assert {r["snapshot"] for r in reports} == set(st.snapshots()["snapshot_id"])
    # all read the same empty store at once: only one can win each round
    assert sum(r["rebases"] for r in reports) >= n - 1


@pytest.mark.slow
def test_concurrent_writers_local_folder(tmp_path, make_frames):
    store = str(tmp_path / "store")
    reports = _run_writers(store, tmp_path, make_frames, n=3)
    _check_all_present(store, make_frames, 3, reports)


@pytest.mark.s3
@pytest.mark.slow
def test_concurrent_writers_s3(s3_store, tmp_path, make_frames):
    reports = _run_writers(s3_store, tmp_path, make_frames, n=3)
    _check_all_present(s3_store, make_frames, 3, reports)


def test_commit_on_a_stale_parent_is_refused(tmp_path, make_frames):
    st = CuratedStore(str(tmp_path / "store"))
    first = st.commit({"assets": _assets(make_frames, 1)}, message="one", tag="v1")
    st.commit({"assets": _assets(make_frames, 2)}, message="two", parent=first)
    before = list(st.snapshots()["snapshot_id"])
    with pytest.raises(WriteConflictError) as info:
        st.commit({"assets": _assets(make_frames, 3)}, message="stale", parent=first)
    msg = str(info.value)
    assert "must be based on the latest version of main" in msg
    assert f"built on {first}" in msg and "nothing of this write was committed" in msg
    assert list(st.snapshots()["snapshot_id"]) == before


def test_writer_overtaken_between_read_and_commit_rebases(tmp_path, make_frames):
    """Another writer commits after this one built its frames: it rebuilds on top."""
    st = CuratedStore(str(tmp_path / "store"))
    st.commit({"assets": _assets(make_frames, 1)}, message="one")
    other, mine = _assets(make_frames, 2), _assets(make_frames, 3)
    bases: list[str | None] = []

    def build(base: str | None) -> dict[str, pd.DataFrame]:
        bases.append(base)
        frames = {"assets": pd.concat([st.read_table("assets", base), mine])}
        if len(bases) == 1:  # a second writer sneaks in a commit now
            old = st.read_table("assets")
            CuratedStore(st.url).commit({"assets": pd.concat([old, other])}, message="other")
        return frames

    snap, rebases = st.commit_rebased(build, message="mine")
    assert rebases == 1 and bases[1] != bases[0]
    ids = set(st.read_table("assets", snap)["asset_id"])
    assert ids == set(_assets(make_frames, 1)["asset_id"]) | set(other["asset_id"]) \
        | set(mine["asset_id"])


def test_rebase_gives_up_loudly(tmp_path, make_frames):
    st = CuratedStore(str(tmp_path / "store"))
    st.commit({"assets": _assets(make_frames, 1)}, message="one")

    def build(base: str | None) -> dict[str, pd.DataFrame]:  # always overtaken
        CuratedStore(st.url).commit({"assets": _assets(make_frames, int(time.time_ns()) % 90)},
                                    message="rival")
        return {"assets": _assets(make_frames, 99)}

    with pytest.raises(WriteConflictError, match="gave up after 3 attempts"):
        st.commit_rebased(build, message="loser", attempts=3)
    assert "loser" not in list(st.snapshots()["message"])
    assert not set(_assets(make_frames, 99)["asset_id"]) & set(st.read_table("assets")["asset_id"])


_OPENER = """
import os, sys, time
from quantlib.store import CuratedStore

store_url, go = sys.argv[1:3]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
st = CuratedStore(store_url)
st.repo
print(len(st.snapshots()), flush=True)
"""


@pytest.mark.s3
@pytest.mark.slow
def test_first_writers_racing_to_create_the_store_all_open_it(s3_store, tmp_path):
    """Processes finding no repository at once: one creates it, the others open it.

    CI once saw the loser of this race (S3 answers 412 to its conditional write) die
    before its first commit; every process must end with the one repository.
    """
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, s3_store, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.write_text("go")
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-2000:]
        assert stdout.strip() == "0"  # the empty store, no data version yet
