"""A hub that dies while starting takes what it started with it.

The hub starts its proxy and services before it can fail (a bad service, a crash): those
carry the platform's run id and must not outlive a failed ``platform up``.
"""

from __future__ import annotations

import sys

import psutil
import pytest

from quantlib.errors import QuantlibError
from quantlib.platform import process
from quantlib.platform.hubconfig import free_port
from quantlib.platform.settings import platform_paths

_DYING_HUB = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("child", child.pid, flush=True)
time.sleep(1.0)
sys.exit(3)
"""


def test_a_hub_that_dies_while_starting_leaves_nothing_running(tmp_path, monkeypatch):
    monkeypatch.setattr(process, "hub_command", lambda: [sys.executable, "-c", _DYING_HUB])
    paths = platform_paths(tmp_path)
    port = free_port()
    with pytest.raises(QuantlibError, match="the hub must start") as err:
        process.start_hub(paths, port=port, wait_s=60)
    assert "exited with 3" in str(err.value)
    line = next(x for x in paths.log_file.read_text().splitlines() if x.startswith("child"))
    child = int(line.split()[1])
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert not paths.state_file.exists()
