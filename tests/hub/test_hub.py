"""The local platform with a real JupyterHub, configurable-http-proxy and single-user servers.

One platform is started per module with ``quantlib platform up`` (a subprocess, as a user
would run it) in a temporary QUANTLIB_HOME on a free port, using the shipped
hub-config/platform.yaml. Logins go through the hub's HTML login form (``_xsrf`` cookie
and field); servers are started with the user's own API token, created through the REST
API with the login session. The last test stops the platform and checks nothing is left.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from quantlib.platform.hubconfig import free_port
from quantlib.platform.process import HubState, platform_processes
from quantlib.platform.settings import platform_paths

pytestmark = [pytest.mark.hub, pytest.mark.slow]

QUANTLIB = str(Path(sys.executable).parent / "quantlib")
PASSWORDS = {"alice": "alice-pass-1234", "mark": "mark-pass-1234", "dana": "dana-pass-1234"}


def cli(env: dict[str, str], *args: str, stdin: str | None = None,
        timeout: float = 240, prefix: list[str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), QUANTLIB, "platform", *args], env=env, input=stdin,
                          text=True, capture_output=True, timeout=timeout)


class Platform:
    def __init__(self, home: Path, port: int, env: dict[str, str], up_output: str,
                 start_s: float) -> None:
        self.home, self.port, self.env = home, port, env
        self.url = f"http://127.0.0.1:{port}/"
        self.up_output, self.start_s = up_output, start_s
        state = HubState.load(platform_paths(home))
        assert state is not None
        self.state = state

    def login(self, name: str, password: str) -> tuple[requests.Session, requests.Response]:
        session = requests.Session()
        form = session.get(self.url + "hub/login", timeout=10)
        assert form.status_code == 200 and 'name="_xsrf"' in form.text
        resp = session.post(self.url + "hub/login",
                            data={"username": name, "password": password,
                                  "_xsrf": session.cookies["_xsrf"]},
                            allow_redirects=False, timeout=30)
        return session, resp

    def token(self, name: str) -> str:
        session, resp = self.login(name, PASSWORDS[name])
        assert resp.status_code == 302
        made = session.post(self.url + f"hub/api/users/{name}/tokens",
                            json={"note": "tests/hub", "expires_in": 3600},
                            headers={"X-XSRFToken": session.cookies["_xsrf"]}, timeout=10)
        assert made.status_code == 201, made.text
        return made.json()["token"]


@pytest.fixture(scope="module")
def platform(tmp_path_factory, hub_prefix) -> Platform:
    home = tmp_path_factory.mktemp("platform-home")
    env = {**os.environ, "QUANTLIB_HOME": str(home)}
    for var in ("QUANTLIB_STORE", "QUANTLIB_RESULTS", "QUANTLIB_CONFIG",
                "QUANTLIB_PLATFORM_CONFIG"):
        env.pop(var, None)
    for name, password in PASSWORDS.items():
        done = cli(env, "users", "passwd", name, "--password-stdin", stdin=password + "\n")
        assert done.returncode == 0, done.stderr
    port = free_port()
    started = time.perf_counter()
    done = cli(env, "up", "--port", str(port), "--no-refresh", prefix=hub_prefix(home))
    start_s = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"\nhub start (quantlib platform up, 4 services): {start_s:.1f} s")
    plat = Platform(home, port, env, done.stdout, start_s)
    yield plat
    cli(env, "down")


def test_first_up_prints_url_and_a_working_admin_login(platform):
    out = platform.up_output
    assert f"the platform is running at {platform.url}" in out
    found = re.search(r"log in as 'admin' with password (\S+)", out)
    assert found, out
    assert "users without a password" not in out  # all three were set before `up`
    session, resp = platform.login("admin", found.group(1))
    assert resp.status_code == 302
    admin_page = session.get(platform.url + "hub/admin", timeout=10)
    assert admin_page.status_code == 200


def test_password_file_holds_hashes_only(platform):
    users_file = platform.home / "platform" / "users.json"
    text = users_file.read_text()
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert set(json.loads(text)["users"]) == {"admin", "alice", "mark", "dana"}
    for password in PASSWORDS.values():
        assert password not in text
    admin_pw = re.search(r"with password (\S+)", platform.up_output).group(1)
    assert admin_pw not in text


@pytest.mark.parametrize(("name", "password"), [
    ("alice", "alice-pass-WRONG"), ("nobody", "whatever-1234"), ("alice", ""),
])
def test_wrong_login_is_refused(platform, name, password):
    session, resp = platform.login(name, password)
    assert resp.status_code == 403
    assert "Invalid username or password" in resp.text
    assert not any(c.name.startswith("jupyterhub-session") or c.name == "jupyterhub-hub-login"
                   for c in session.cookies)
    assert session.get(platform.url + "hub/api/user", timeout=10).status_code == 403


def test_researcher_gets_a_server_with_the_platform_environment(platform):
    token = platform.token("alice")
    auth = {"Authorization": f"token {token}"}
    started = time.perf_counter()
    resp = requests.post(platform.url + "hub/api/users/alice/server", headers=auth, timeout=30)
    assert resp.status_code in (201, 202), resp.text
    deadline = time.monotonic() + 120
    while True:
        model = requests.get(platform.url + "hub/api/users/alice", headers=auth, timeout=10).json()
        if model["servers"].get("", {}).get("ready"):
            break
        assert time.monotonic() < deadline, model
        time.sleep(0.25)
    spawn_s = time.perf_counter() - started
    print(f"\nspawn time of a single-user server: {spawn_s:.1f} s")
    status = requests.get(platform.url + "user/alice/api/status", headers=auth, timeout=10)
    assert status.status_code == 200 and "kernels" in status.json()
    assert sorted(model["groups"]) == ["researchers"]
    # a file written through the server lands in alice's folder under the state dir
    put = requests.put(platform.url + "user/alice/api/contents/hello.txt", headers=auth,
                       json={"type": "file", "format": "text", "content": "hi"}, timeout=10)
    assert put.status_code in (200, 201), put.text
    assert (platform.home / "platform" / "users" / "alice" / "hello.txt").read_text() == "hi"
    # the server process: loopback, never root (its own account when the hub is root,
    # docs/security.md), catalog env set
    server = [p for p in platform_processes(platform.state.run_id)
              if "jupyterhub-singleuser" in " ".join(p.cmdline())
              and p.environ().get("JUPYTERHUB_USER") == "alice"]
    assert len(server) == 1
    env, cmdline = server[0].environ(), server[0].cmdline()
    assert "--allow-root" not in cmdline
    assert server[0].uids().real == (pwd.getpwnam("ql-alice").pw_uid if os.geteuid() == 0
                                     else os.getuid())
    assert env["QUANTLIB_STORE"] == str(platform.home / "store")
    private = platform.home / "results" / "users" / "alice"
    assert env["QUANTLIB_RESULTS"] == str(private if os.geteuid() == 0 else platform.home / "results")
    assert env["HOME"] == str(platform.home / "platform" / "users" / "alice")
    assert env["VIRTUAL_ENV"] == str(Path(sys.executable).parent.parent)
    listening = {c.laddr.ip for c in server[0].net_connections("inet") if c.status == "LISTEN"}
    assert listening == {"127.0.0.1"}


def test_dask_dashboard_is_reachable_through_the_users_server(platform):
    token = platform.token("alice")
    auth = {"Authorization": f"token {token}"}
    port = free_port()
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                              "--host", "127.0.0.1", "--port", "0",
                              "--dashboard-address", f"127.0.0.1:{port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        url = platform.url + f"user/alice/proxy/{port}/status"
        while True:
            resp = requests.get(url, headers=auth, timeout=10)
            if resp.status_code == 200:
                break
            assert time.monotonic() < deadline, resp.status_code
            time.sleep(0.5)
        assert "Dask" in resp.text and "status" in resp.text.lower()
        anonymous = requests.get(url, timeout=10, allow_redirects=False)
        assert anonymous.status_code in (302, 403)  # not open to the world
    finally:
        sched.terminate()
        sched.wait(timeout=20)


def test_manager_may_not_start_a_server_but_may_reach_the_dashboards(platform):
    session, resp = platform.login("mark", PASSWORDS["mark"])
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/services/dashboards/")  # not a server page
    xsrf = {"X-XSRFToken": session.cookies["_xsrf"]}
    refused = session.post(platform.url + "hub/api/users/mark/server", headers=xsrf, timeout=10)
    assert refused.status_code == 403
    assert "start:servers" in refused.json()["message"]
    assert session.get(platform.url + "hub/spawn", timeout=10).status_code == 403
    model = session.get(platform.url + "hub/api/user", headers=xsrf, timeout=10).json()
    assert model["name"] == "mark" and model["groups"] == ["managers"]
    assert "servers" not in model  # not even allowed to read server models
    token = platform.token("mark")
    me = requests.get(platform.url + "hub/api/user",
                      headers={"Authorization": f"token {token}"}, timeout=10).json()
    assert "access:services!service=dashboards" in me["scopes"]
    assert "access:services!service=results-api" in me["scopes"]
    assert not any(s.startswith(("servers", "start:servers")) for s in me["scopes"])
    # the dashboards service, through the hub's OAuth like a browser
    dash = session.get(platform.url + "services/dashboards/", timeout=60)
    assert dash.status_code == 200 and dash.url == platform.url + "services/dashboards/"
    assert "<html" in dash.text.lower()


def test_data_team_may_use_the_scheduler_and_write_the_catalog(platform):
    token = platform.token("dana")
    me = requests.get(platform.url + "hub/api/user",
                      headers={"Authorization": f"token {token}"}, timeout=10).json()
    assert me["groups"] == ["data-team"]
    assert "access:services!service=scheduler" in me["scopes"]
    assert "custom:catalog:write" in me["scopes"]
    assert "custom:results:publish" not in me["scopes"]


def test_second_up_finds_the_running_hub(platform):
    started = time.perf_counter()
    done = cli(platform.env, "up", "--port", str(platform.port), "--no-refresh")
    assert done.returncode == 0, done.stderr
    assert time.perf_counter() - started < 30
    assert f"already running at {platform.url} (hub pid {platform.state.pid})" in done.stdout
    assert "with password" not in done.stdout
    status = cli(platform.env, "status")
    assert status.returncode == 0 and "healthy" in status.stdout


def test_down_stops_every_process(platform):
    run_id, hub_pid = platform.state.run_id, platform.state.pid
    before = platform_processes(run_id)
    names = " ".join(" ".join(p.cmdline()) for p in before)
    assert "configurable-http-proxy" in names and "jupyterhub-singleuser" in names
    assert "quantlib.platform.supervise" in names and "jupyterhub_idle_culler" in names
    services = {p.environ()["JUPYTERHUB_SERVICE_NAME"] for p in before
                if p.ppid() == hub_pid and "JUPYTERHUB_SERVICE_NAME" in p.environ()}
    assert {"dashboards", "results-api", "scheduler"} <= services
    started = time.perf_counter()
    done = cli(platform.env, "down", timeout=90)
    print(f"\nplatform down: {time.perf_counter() - started:.1f} s\n{done.stdout}")
    assert done.returncode == 0 and "is stopped" in done.stdout
    lines = done.stdout.splitlines()
    # each step announced, then timed: services + servers together first, the hub last
    parallel = next(i for i, line in enumerate(lines) if "in parallel" in line)
    assert all(f"service {name}" in lines[parallel] for name in services), lines[parallel]
    assert "server of alice" in lines[parallel]
    timed = [i for i, line in enumerate(lines)
             if re.fullmatch(r"  (stopping .*): done in \d+\.\d s", line)]
    assert any(lines[i].startswith("  " + lines[parallel].removesuffix(" ...")) for i in timed)
    hub = next(i for i, line in enumerate(lines) if f"stopping the hub (pid {hub_pid})" in line)
    assert hub > parallel and any(i > hub and "stopping the hub" in lines[i] for i in timed)
    assert platform_processes(run_id) == []
    assert not psutil.pid_exists(hub_pid) or psutil.Process(hub_pid).status() == "zombie"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", platform.port)) != 0
    assert cli(platform.env, "status").returncode == 1
    assert not (platform.home / "platform" / "hub.json").exists()
