"""``quantlib data sandbox`` as a real subprocess: state file, secrets, faults, SIGTERM."""

from __future__ import annotations

import ftplib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from quantlib.sandbox import SandboxConnection


def _wait_for(path, proc, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc.poll() is not None:
            pytest.fail(f"sandbox exited early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("sandbox did not write its state file in time")


@pytest.mark.slow
def test_cli_runs_until_sigterm(_isolated_home):
    state = _isolated_home / "run" / "sandbox.json"
    env = {**os.environ, "QUANTLIB_HOME": str(_isolated_home)}
    cmd = [sys.executable, "-m", "quantlib.cli", "data", "sandbox", "--assets", "10",
           "--years", "0.5", "--markets", "kr,us", "--fault", "http_5xx:/v1/fx:1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_for(state, proc)
        conn = SandboxConnection.load(state)
        assert conn.pid == proc.pid
        with ftplib.FTP() as ftp:
            ftp.connect(conn.ftp_host, conn.ftp_port, timeout=10)
            ftp.login(conn.ftp_user, conn.ftp_password)
            assert set(ftp.nlst("/")) == {"kr"}       # EU not requested, US is API-only
        req = urllib.request.Request(conn.http_url + "/v1/fx",
                                     headers={"X-API-Key": conn.api_key})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 503                 # the --fault was armed
        assert json.load(urllib.request.urlopen(req, timeout=10))["total_rows"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"ftp://127.0.0.1:{conn.ftp_port}" in out and conn.http_url in out
    assert str(state) in out and "sandbox stopped" in out
    assert conn.ftp_password not in out + err and conn.api_key not in out + err
    assert not state.exists()


_HANGING_STOP = """
import sys, time
import quantlib.sandbox.cli as cli
from quantlib.sandbox.server import Sandbox
cli.STOP_GRACE_S = 2.0
Sandbox.stop = lambda self: time.sleep(3600)   # a stop stuck on a dead client
from quantlib.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_cli_exits_after_the_grace_period_when_stopping_hangs(_isolated_home):
    """An orphaned sandbox (its refresh SIGKILLed) gets SIGTERM and must go away even if
    stopping its servers hangs: the process exits STOP_GRACE_S after the signal."""
    state = _isolated_home / "run" / "sandbox.json"
    env = {**os.environ, "QUANTLIB_HOME": str(_isolated_home)}
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_STOP, "data", "sandbox",
                             "--assets", "5", "--years", "0.3", "--markets", "us"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(state, proc)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        proc.communicate(timeout=60)
        waited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert waited >= 1.5      # it did wait for the (hanging) stop, then gave up on it


def test_cli_rejects_bad_fault_spec(_isolated_home):
    from quantlib.cli import main

    assert main(["data", "sandbox", "--fault", "bogus"]) == 2
