"""The partitioned build's spill folders: a running build's heartbeat keeps its folder,
a dead build's folder (stale or no heartbeat) is removed by the next build."""

from __future__ import annotations

import time

from quantlib.pipeline.spill import Heartbeat, remove_stale_spills
from quantlib.storage import resolve_location


def test_heartbeat_keeps_a_running_build_and_stale_ones_are_removed(tmp_path):
    builds = resolve_location(str(tmp_path / "store")).child("tmp", "builds")
    fs, root = builds.open_fs()
    fs.makedirs(f"{root}/killed/KR", exist_ok=True)          # no heartbeat at all
    fs.pipe_file(f"{root}/killed/KR/000000.parquet", b"x")
    fs.makedirs(f"{root}/old", exist_ok=True)                # beat long ago
    fs.pipe_file(f"{root}/old/_heartbeat", str(time.time() - 3600).encode())
    with Heartbeat(builds.child("running"), every=0.05):
        first = float(fs.cat_file(f"{root}/running/_heartbeat"))
        time.sleep(0.3)
        later = float(fs.cat_file(f"{root}/running/_heartbeat"))
        assert later > first                                  # it keeps beating
        removed = remove_stale_spills(builds, keep="mine", stale_s=60)
    assert removed == ["killed", "old"]
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)) == ["running"]
    # once it stopped beating for longer than the limit, it is a dead build too
    stopped = float(fs.cat_file(f"{root}/running/_heartbeat"))
    assert remove_stale_spills(builds, keep="mine", stale_s=60, now=stopped + 30) == []
    assert remove_stale_spills(builds, keep="mine", stale_s=60, now=stopped + 61) == \
        ["running"]
    assert remove_stale_spills(builds, keep="mine") == []     # nothing left, no error
