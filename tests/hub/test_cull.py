"""Idle single-user servers are culled by the hub's idle-culler service.

The platform runs with the shipped ``platform.yaml`` except for the culler's timings
(idle after 15 s, checked every 3 s instead of 1 h / 5 min) and the other managed services
turned off (they only compete for the machine here): a researcher's server that
nobody uses disappears on its own, while the hub and the user stay. The server's last
activity is its start (it reports it when it is ready), so 15 s leaves the test time to
see it ready before the culler may stop it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from quantlib.platform.hubconfig import free_port
from quantlib.platform.settings import HUB_CONFIG_DIR

pytestmark = [pytest.mark.hub, pytest.mark.slow]

QUANTLIB = str(Path(sys.executable).parent / "quantlib")
IDLE_S = 15  # the culler's --timeout here (shipped: 3600)


def _cli(env, *args, stdin=None, prefix=()):
    return subprocess.run([*prefix, QUANTLIB, "platform", *args], env=env, input=stdin,
                          text=True, capture_output=True, timeout=600)


@pytest.mark.timeout(900)
def test_idle_server_is_culled(tmp_path, hub_prefix):
    spec = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    culler = spec["services"]["idle-culler"]["command"]
    assert any(a.startswith("--timeout=") for a in culler)  # the shipped culler is on
    spec["services"]["idle-culler"]["command"] = [
        a for a in culler if not a.startswith(("--timeout=", "--cull-every="))
    ] + [f"--timeout={IDLE_S}", "--cull-every=3"]
    for name in ("dashboards", "results-api", "scheduler"):
        spec["services"][name]["enabled"] = False
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "QUANTLIB_HOME": str(tmp_path / "home"),
           "QUANTLIB_PLATFORM_CONFIG": str(tmp_path / "platform.yaml")}
    assert _cli(env, "users", "passwd", "alice", "--password-stdin",
                stdin="alice-pass-1234\n").returncode == 0
    port = free_port()
    up = _cli(env, "up", "--port", str(port), "--no-refresh",
              prefix=hub_prefix(tmp_path / "home"))
    url = f"http://127.0.0.1:{port}/"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        s = requests.Session()
        s.get(url + "hub/login", timeout=10)
        resp = s.post(url + "hub/login", allow_redirects=False, timeout=30,
                      data={"username": "alice", "password": "alice-pass-1234",
                            "_xsrf": s.cookies.get("_xsrf", path="/hub/")})
        assert resp.status_code == 302, resp.text
        made = s.post(url + "hub/api/users/alice/tokens", json={"expires_in": 3600},
                      headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/")},
                      timeout=10)
        assert made.status_code == 201, made.text
        auth = {"Authorization": f"token {made.json()['token']}"}

        def servers() -> dict:
            got = requests.get(url + "hub/api/users/alice", headers=auth, timeout=10)
            assert got.status_code == 200, got.text
            return got.json()["servers"]

        assert requests.post(url + "hub/api/users/alice/server", headers=auth,
                             timeout=30).status_code in (201, 202)
        deadline = time.monotonic() + 240
        while not servers().get("", {}).get("ready"):
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.5)
        ready_at = time.monotonic()
        active = datetime.fromisoformat(servers()[""]["last_activity"].replace("Z", "+00:00"))
        while servers():
            assert time.monotonic() - ready_at < 300, "the idle server was not culled"
            time.sleep(0.5)
        # culled for being idle: not before IDLE_S after its last activity
        assert datetime.now(UTC) - active >= timedelta(seconds=IDLE_S)
        assert requests.get(url + "hub/health", timeout=10).status_code == 200
    finally:
        _cli(env, "down")
