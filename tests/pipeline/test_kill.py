"""Kill points x commands: SIGKILL of ``quantlib data refresh --sandbox`` while its
sandbox child runs. The child dies with its parent (parent-death signal), the store
keeps its previous state, and the next start removes the temporary home left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from quantlib.pipeline.sandboxproc import HOME_PREFIX, _alive, clean_leftovers, sandbox_process
from quantlib.store import CuratedStore


def _home_of(pid: int) -> Path | None:
    for home in Path(tempfile.gettempdir()).glob(HOME_PREFIX + "*"):
        try:
            if (home / "owner.pid").read_text().strip() == str(pid):
                return home
        except OSError:
            continue
    return None


def _wait(cond, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sigkill_refresh_with_sandbox_kills_child_and_cleans_home(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantlib.cli", "data", "refresh", "--sandbox", "--assets", "5",
         "--years", "0.3", "--markets", "US", "--store", str(store), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        home = _wait(lambda: _home_of(proc.pid), 240, "the sandbox home")
        state = home / "run" / "sandbox.json"
        child = _wait(lambda: state.exists() and json.loads(state.read_text())["pid"], 240,
                      "the sandbox child's state file")
        assert _alive(child)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # SIGTERM (parent-death signal) -> the sandbox stops its servers: slow on a loaded box
    _wait(lambda: not _alive(child), 180, "the orphaned sandbox child to die")
    assert home.exists()  # a SIGKILLed parent cannot clean up...
    assert CuratedStore(str(store)).snapshots().empty  # ...and committed nothing
    with sandbox_process(n_assets=5, years=0.3, seed=1, end="2024-06-28",
                         markets=("US",)) as conn:  # ...the next start does
        assert not home.exists()
        assert conn.http_url.startswith("http://127.0.0.1:")


def test_clean_leftovers_keeps_live_owners(tmp_path):
    live = tmp_path / f"{HOME_PREFIX}live"
    dead = tmp_path / f"{HOME_PREFIX}dead"
    old_format = tmp_path / f"{HOME_PREFIX}old"
    for home in (live, dead, old_format):
        (home / "run").mkdir(parents=True)
    (live / "owner.pid").write_text(str(os.getpid()))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (dead / "owner.pid").write_text(gone)
    (old_format / "run" / "sandbox.json").write_text(json.dumps({"pid": int(gone)}))
    past = time.time() - 3600
    os.utime(old_format, (past, past))
    assert sorted(p.name for p in clean_leftovers(str(tmp_path))) == [dead.name,
                                                                       old_format.name]
    assert live.exists() and not dead.exists() and not old_format.exists()
