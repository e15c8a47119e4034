"""Roles stop at the OS: per-user accounts, private files, publishing only through the service.

One platform (``quantlib platform up``, shipped platform.yaml plus a second researcher,
bob) is started as root with ``hub.user_accounts: auto``. alice and bob get real
single-user servers through the hub; code runs in real kernels of those servers
(Jupyter's kernel websocket, through the proxy), so it runs exactly as a researcher's
notebook would. The matrix in docs/security.md is this file's assertions:

- ``test_matrix_http``: roles (anonymous, alice researcher, mark manager, dana data-team)
  x endpoints (hub API, another user's server, dashboards, results API read and publish,
  scheduler), each cell an expected status;
- ``test_kernel_*``: what a researcher's kernel can do on disk and through the service.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from quantlib.platform.hubconfig import free_port
from quantlib.platform.process import HubState, platform_processes
from quantlib.platform.settings import HUB_CONFIG_DIR, platform_paths

pytestmark = [pytest.mark.hub, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="per-user accounts need root; "
                                 "as a normal user every server runs as that user")]

QUANTLIB = str(Path(sys.executable).parent / "quantlib")
PASSWORDS = {"alice": "alice-pass-1234", "bob": "bob-pass-12345", "mark": "mark-pass-1234",
             "dana": "dana-pass-1234"}


class Hub:
    def __init__(self, home: Path, port: int, env: dict[str, str]) -> None:
        self.home, self.port, self.env = home, port, env
        self.url = f"http://127.0.0.1:{port}/"
        self.state = HubState.load(platform_paths(home))
        self._tokens: dict[str, str] = {}

    def session(self, name: str) -> requests.Session:
        session = requests.Session()
        session.get(self.url + "hub/login", timeout=30)
        resp = session.post(self.url + "hub/login", allow_redirects=False, timeout=60,
                            data={"username": name, "password": PASSWORDS[name],
                                  "_xsrf": session.cookies["_xsrf"]})
        assert resp.status_code == 302, resp.text[:300]
        return session

    def token(self, name: str) -> str:
        if name not in self._tokens:
            session = self.session(name)
            made = session.post(self.url + f"hub/api/users/{name}/tokens",
                                json={"note": "isolation", "expires_in": 3600},
                                headers={"X-XSRFToken": session.cookies["_xsrf"]}, timeout=30)
            assert made.status_code == 201, made.text
            self._tokens[name] = made.json()["token"]
        return self._tokens[name]

    def auth(self, name: str | None) -> dict[str, str]:
        return {"Authorization": f"token {self.token(name)}"} if name else {}


def _cli(env: dict[str, str], *args: str, stdin: str | None = None,
         prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), QUANTLIB, "platform", *args], env=env, input=stdin,
                          text=True, capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def hub(hub_prefix) -> Hub:
    home = Path(tempfile.mkdtemp(prefix="ql-isolation-"))
    os.chmod(home, 0o755)  # like a real QUANTLIB_HOME: other accounts may reach the store
    spec = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    spec["users"].append({"name": "bob", "groups": ["researchers"]})
    assert spec["hub"].get("user_accounts", "auto") == "auto"
    (home / "platform.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "QUANTLIB_HOME": str(home),
           "QUANTLIB_PLATFORM_CONFIG": str(home / "platform.yaml")}
    for var in ("QUANTLIB_STORE", "QUANTLIB_RESULTS", "QUANTLIB_CONFIG", "QUANTLIB_RESULTS_API"):
        env.pop(var, None)
    (home / "store" / "curated").mkdir(parents=True)
    (home / "store" / "curated" / "data.txt").write_text("shared data")
    for name, password in PASSWORDS.items():
        done = _cli(env, "users", "passwd", name, "--password-stdin", stdin=password + "\n")
        assert done.returncode == 0, done.stderr
    port = free_port()
    done = _cli(env, "up", "--port", str(port), "--no-refresh", prefix=hub_prefix(home))
    assert done.returncode == 0, done.stdout + done.stderr
    h = Hub(home, port, env)
    for name in ("alice", "bob"):
        started = requests.post(h.url + f"hub/api/users/{name}/server", headers=h.auth(name),
                                timeout=60)
        assert started.status_code in (201, 202), started.text
    deadline = time.monotonic() + 300
    for name in ("alice", "bob"):
        while not requests.get(h.url + f"hub/api/users/{name}", headers=h.auth(name),
                               timeout=30).json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, (platform_paths(home).log_file).read_text()[-3000:]
            time.sleep(1)
    yield h
    _cli(env, "down")
    shutil.rmtree(home, ignore_errors=True)


async def _execute(hub: Hub, user: str, code: str, timeout: float = 240) -> str:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    base = hub.url + f"user/{user}/api/kernels"
    made = requests.post(base, json={"name": "python3"}, headers=hub.auth(user), timeout=60)
    assert made.status_code == 201, made.text
    kernel = made.json()["id"]
    ws_url = base.replace("http://", "ws://") + f"/{kernel}/channels"
    ws = await websocket_connect(HTTPRequest(ws_url, headers=hub.auth(user),
                                             request_timeout=timeout))
    msg_id, out = uuid.uuid4().hex, []
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False}}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(ws.read_message(), timeout=deadline - time.monotonic())
        assert raw is not None, "kernel websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    ws.close()
    requests.delete(f"{base}/{kernel}", headers=hub.auth(user), timeout=60)
    return "".join(out)


def run_in_kernel(hub: Hub, user: str, code: str) -> dict:
    text = asyncio.run(_execute(hub, user, code))
    return json.loads(text.strip().splitlines()[-1])


# -- who runs the servers ------------------------------------------------------------

def test_each_server_runs_as_its_users_own_account(hub):
    seen = {}
    for proc in platform_processes(hub.state.run_id):
        env = proc.environ()
        if "jupyterhub-singleuser" in " ".join(proc.cmdline()) and env.get("JUPYTERHUB_USER"):
            seen[env["JUPYTERHUB_USER"]] = (proc.uids().real, proc.uids().effective,
                                            proc.cmdline(), env)
    assert set(seen) == {"alice", "bob"}
    for name, (ruid, euid, cmdline, env) in seen.items():
        account = pwd.getpwnam(f"ql-{name}")
        assert ruid == euid == account.pw_uid != 0
        assert "--allow-root" not in cmdline
        home = platform_paths(hub.home).user_dir(name)
        assert env["HOME"] == str(home)
        st = home.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (account.pw_uid, 0o700)
        assert env["QUANTLIB_RESULTS"] == str(hub.home / "results" / "users" / name)
        assert env["QUANTLIB_RESULTS_API"] == hub.url + "services/results-api/"
    assert seen["alice"][0] != seen["bob"][0]


def test_hub_state_is_the_hubs_only(hub):
    root = platform_paths(hub.home).root
    assert stat.S_IMODE(root.stat().st_mode) == 0o711
    for name in ("cookie_secret", "users.json", "jupyterhub.sqlite", "hub.log"):
        st = (root / name).stat()
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600, name


# -- a researcher's kernel against the disk ------------------------------------------

ATTACK = r"""
import json, os, pathlib
home = pathlib.Path(os.environ["QUANTLIB_HOME"])
state = home / "platform"
results = home / "results"
def attempt(fn):
    try:
        fn()
        return "allowed"
    except PermissionError:
        return "denied"
    except FileNotFoundError:
        return "missing"
def write(path):
    return lambda: pathlib.Path(path).write_text("x")
cells = {
    "read cookie_secret": attempt(lambda: (state / "cookie_secret").read_bytes()),
    "read users.json": attempt(lambda: (state / "users.json").read_bytes()),
    "read jupyterhub.sqlite": attempt(lambda: (state / "jupyterhub.sqlite").read_bytes()),
    "read hub.log": attempt(lambda: (state / "hub.log").read_bytes()),
    "list hub state": attempt(lambda: os.listdir(state)),
    "list other homes": attempt(lambda: os.listdir(state / "users")),
    "read bob's home": attempt(lambda: os.listdir(state / "users" / "bob")),
    "read bob's unpublished result": attempt(
        lambda: (results / "users" / "bob" / "objects" / BOB_RID / "meta.json").read_bytes()),
    "list private results": attempt(lambda: os.listdir(results / "users")),
    "read published result": attempt(
        lambda: (results / "objects" / PUB_RID / "meta.json").read_bytes()),
    "read published index": attempt(lambda: (results / "index" / "published.json").read_bytes()),
    "write results objects": attempt(write(results / "objects" / "forged")),
    "replace published index": attempt(write(results / "index" / "published.json")),
    "write into published result": attempt(write(results / "objects" / PUB_RID / "meta.json")),
    "read data store": attempt(lambda: (home / "store" / "curated" / "data.txt").read_text()),
    "write data store": attempt(write(home / "store" / "curated" / "forged.txt")),
}
print(json.dumps({"uid": os.getuid(), "cells": cells}))
"""

SAVE_PRIVATE = r"""
import json, os
from quantlib.testing.demo import demo_result
from quantlib.results import save_result
res = demo_result(seed=SEED, years=1, strategy="STRATEGY")
res.info["author"] = os.environ["JUPYTERHUB_USER"]
print(json.dumps({"rid": save_result(res), "uid": os.getuid()}))
"""

PUBLISH_AS = r"""
import json, os
from quantlib.testing.demo import demo_result
from quantlib.results import publish
res = demo_result(seed=SEED, years=1, strategy="STRATEGY")
rid = publish(res, "published from a kernel", author="bob", allow_synthetic=True)  # claims bob
print(json.dumps({"rid": rid}))
"""


@pytest.fixture(scope="module")
def kernel_findings(hub):
    bob = run_in_kernel(hub, "bob", SAVE_PRIVATE.replace("SEED", "3").replace("STRATEGY", "bobs"))
    alice_pub = run_in_kernel(hub, "alice", PUBLISH_AS.replace("SEED", "4")
                              .replace("STRATEGY", "alice_pub"))
    code = f"BOB_RID = {bob['rid']!r}\nPUB_RID = {alice_pub['rid']!r}\n" + ATTACK
    attack = run_in_kernel(hub, "alice", code)
    return {"bob": bob, "published": alice_pub, "attack": attack}


def test_kernel_runs_as_the_users_account(hub, kernel_findings):
    assert kernel_findings["attack"]["uid"] == pwd.getpwnam("ql-alice").pw_uid
    assert kernel_findings["bob"]["uid"] == pwd.getpwnam("ql-bob").pw_uid


def test_unpublished_results_are_private_on_disk(hub, kernel_findings):
    rid = kernel_findings["bob"]["rid"]
    folder = hub.home / "results" / "users" / "bob"
    bob_uid = pwd.getpwnam("ql-bob").pw_uid
    assert (folder.stat().st_uid, stat.S_IMODE(folder.stat().st_mode)) == (bob_uid, 0o700)
    meta = folder / "objects" / rid / "meta.json"
    assert meta.stat().st_uid == bob_uid and not meta.stat().st_mode & 0o077
    assert not (hub.home / "results" / "objects" / rid).exists()  # never in the shared store


KERNEL_MATRIX = {  # alice's kernel (researcher) -> expected outcome
    "read cookie_secret": "denied", "read users.json": "denied",
    "read jupyterhub.sqlite": "denied", "read hub.log": "denied", "list hub state": "denied",
    "list other homes": "denied", "read bob's home": "denied",
    "read bob's unpublished result": "denied", "list private results": "denied",
    "read published result": "allowed", "read published index": "allowed",
    "write results objects": "denied", "replace published index": "denied",
    "write into published result": "denied",
    "read data store": "allowed", "write data store": "denied",
}


@pytest.mark.parametrize("cell", sorted(KERNEL_MATRIX))
def test_kernel_matrix(kernel_findings, cell):
    assert kernel_findings["attack"]["cells"][cell] == KERNEL_MATRIX[cell]


def test_kernel_publish_goes_through_the_service_as_the_real_author(hub, kernel_findings):
    rid = kernel_findings["published"]["rid"]
    meta_path = hub.home / "results" / "objects" / rid / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["author"] == "alice" and meta["published"] is True  # not the claimed bob
    st = meta_path.stat()
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o640  # group-readable, not world
    listed = requests.get(hub.url + "services/results-api/api/v1/results",
                          params={"author": "bob"}, headers=hub.auth("mark"), timeout=30).json()
    assert rid not in {m["result_id"] for m in listed}


# -- roles x HTTP endpoints ----------------------------------------------------------

API = "services/results-api/api/v1/"
HTTP_MATRIX = [  # (endpoint, method, path, {role: expected status})
    ("hub: another user's model", "GET", "hub/api/users/bob",
     {None: 403, "alice": 404, "mark": 404, "dana": 404}),
    ("hub: start own server", "POST", "hub/api/users/{me}/server",
     {"mark": 403}),
    ("notebook server: bob's", "GET", "user/bob/api/status",
     {None: 403, "alice": 403, "mark": 403, "dana": 403}),
    ("results API: list", "GET", API + "results",
     {None: 401, "alice": 200, "mark": 200, "dana": 200}),
    ("results API: 5,000-char id", "GET", API + "results/" + "a" * 5000,
     {"alice": 422}),
    ("results API: publish", "POST", API + "results",
     {None: 401, "mark": 403, "dana": 403}),
    ("results API: docs page", "GET", "services/results-api/",
     {None: 302, "alice": 200, "mark": 200, "dana": 200}),
    ("results API: openapi.json", "GET", "services/results-api/openapi.json",
     {None: 200, "alice": 200}),
    ("scheduler: jobs", "GET", "services/scheduler/api/jobs",
     {None: 403, "alice": 403, "mark": 403, "dana": 200}),
]


def _cells():
    for endpoint, method, path, expected in HTTP_MATRIX:
        for role, status in expected.items():
            yield pytest.param(method, path, role, status, id=f"{endpoint}-{role or 'anonymous'}")


@pytest.mark.parametrize(("method", "path", "role", "status"), list(_cells()))
def test_matrix_http(hub, method, path, role, status):
    url = hub.url + path.replace("{me}", role or "nobody")
    body = {"title": "x", "files": {}} if method == "POST" and "results" in path else None
    resp = requests.request(method, url, headers=hub.auth(role), json=body, timeout=60,
                            allow_redirects=False)
    assert resp.status_code == status, resp.text[:300]


def test_matrix_dashboards_by_login(hub):
    for role in ("alice", "mark", "dana"):
        page = hub.session(role).get(hub.url + "services/dashboards/", timeout=120)
        assert page.status_code == 200 and page.url == hub.url + "services/dashboards/", role
    anonymous = requests.get(hub.url + "services/dashboards/", allow_redirects=False, timeout=60)
    assert anonymous.status_code == 302 and "login" in anonymous.headers["Location"]


def test_down_leaves_no_user_process(hub):
    run_id = hub.state.run_id
    done = _cli(hub.env, "down")
    assert done.returncode == 0, done.stderr
    assert platform_processes(run_id) == []  # servers and kernels carry the run id
