"""The platform run by a non-root user: no ``--allow-root``, servers still start, clean down.

CI runs as root, so this test re-runs the CLI inside a new user namespace
(``unshare --user``), where the effective uid is 65534 (``nobody``): JupyterHub, the
spawner and jupyter-server all see a normal user (jupyter-server refuses to run as root
without ``--allow-root``, so a spawn succeeding here proves the non-root path). File
access is still checked against the real account outside the namespace, which keeps the
root-only venv usable. Run as a normal user, tests/hub/test_hub.py already is this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from quantlib.platform.hubconfig import free_port
from quantlib.platform.process import HubState, platform_processes
from quantlib.platform.settings import HUB_CONFIG_DIR, platform_paths

pytestmark = [pytest.mark.hub, pytest.mark.slow]

QUANTLIB = str(Path(sys.executable).parent / "quantlib")


def _userns_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--user", "id", "-u"], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() != "0"


needs_root_with_userns = pytest.mark.skipif(
    os.geteuid() != 0 or not _userns_works(),
    reason="as a normal user tests/hub/test_hub.py is the non-root test; "
           "as root this needs `unshare --user`")


def as_nobody(env: dict[str, str], *args: str, stdin: str | None = None):
    return subprocess.run(["unshare", "--user", QUANTLIB, "platform", *args], env=env,
                          input=stdin, text=True, capture_output=True, timeout=300)


@needs_root_with_userns
def test_platform_as_a_normal_user(tmp_path):
    raw = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    for name in ("dashboards", "results-api", "scheduler"):  # covered by test_hub.py
        raw["services"][name]["enabled"] = False
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump(raw))
    home = tmp_path / "home"
    env = {**os.environ, "QUANTLIB_HOME": str(home), "QUANTLIB_PLATFORM_CONFIG": str(config)}
    done = as_nobody(env, "users", "passwd", "alice", "--password-stdin",
                     stdin="alice-pass-1234\n")
    assert done.returncode == 0, done.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    done = as_nobody(env, "up", "--port", str(port), "--no-refresh")
    assert done.returncode == 0, done.stdout + done.stderr
    state = HubState.load(platform_paths(home))
    assert state is not None
    try:
        session = requests.Session()
        session.get(url + "hub/login", timeout=10)
        resp = session.post(url + "hub/login", allow_redirects=False, timeout=30,
                            data={"username": "alice", "password": "alice-pass-1234",
                                  "_xsrf": session.cookies["_xsrf"]})
        assert resp.status_code == 302
        assert resp.headers["Location"].endswith("/user/alice/")  # a researcher lands there
        xsrf = {"X-XSRFToken": session.cookies["_xsrf"]}
        started = session.post(url + "hub/api/users/alice/server", headers=xsrf, timeout=30)
        assert started.status_code in (201, 202), started.text
        deadline = time.monotonic() + 120
        while not session.get(url + "hub/api/user", headers=xsrf, timeout=10).json()[
                "servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        # like a browser: the server's OAuth dance with the hub, then JupyterLab
        lab = session.get(url + "user/alice/lab", timeout=60)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        assert session.get(url + "user/alice/api/status", timeout=10).status_code == 200
        servers = [p for p in platform_processes(state.run_id)
                   if "jupyterhub-singleuser" in " ".join(p.cmdline())]
        assert len(servers) == 1 and "--allow-root" not in servers[0].cmdline()
    finally:
        done = as_nobody(env, "down")
    assert done.returncode == 0, done.stderr
    assert platform_processes(state.run_id) == []
