"""The platform run by a non-root user: no ``--allow-root``, servers still start, clean down.

Two runs:

- ``test_platform_as_a_normal_user`` re-runs the CLI inside a new user namespace
  (``unshare --user``), where the effective uid is 65534 (``nobody``): JupyterHub, the
  spawner and jupyter-server all see a normal user (jupyter-server refuses to run as root
  without ``--allow-root``, so a spawn succeeding there proves the non-root path). File
  access is still checked against the real account outside the namespace, so that run
  says nothing about file protections.
- the ``nonroot_hub`` tests run the platform under a real system account (``ql-nrhub``,
  made with ``useradd``; ``setpriv`` drops root before the CLI starts), start a server,
  and run a probe process under another real account (``ql-nrother``): reading the hub's
  cookie secret, ``users.json``, database and log, listing the hub's state or a user's
  home, writing into that home, the data store or the results store each end in a real
  ``PermissionError`` from the kernel, while reading the shared data store works.

Run as a normal user, tests/hub/test_hub.py already is the first test.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
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
    left = [(p.pid, p.username(), " ".join(p.cmdline())[:120])
            for p in platform_processes(state.run_id)]
    assert left == [], f"{left}\n{done.stdout}{done.stderr}"


# -- a real non-root account runs the platform; other accounts meet real PermissionErrors --

HUB_ACCOUNT, OTHER_ACCOUNT = "ql-nrhub", "ql-nrother"

PROBE = r"""
import json, os, pathlib, sys
home = pathlib.Path(sys.argv[1])
state = home / "platform"
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
print(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "cells": {
    "read cookie_secret": attempt(lambda: (state / "cookie_secret").read_bytes()),
    "read users.json": attempt(lambda: (state / "users.json").read_bytes()),
    "read jupyterhub.sqlite": attempt(lambda: (state / "jupyterhub.sqlite").read_bytes()),
    "read hub.log": attempt(lambda: (state / "hub.log").read_bytes()),
    "list hub state": attempt(lambda: os.listdir(state)),
    "list alice's home": attempt(lambda: os.listdir(state / "users" / "alice")),
    "write into alice's home": attempt(write(state / "users" / "alice" / "planted.py")),
    "write data store": attempt(write(home / "store" / "curated" / "forged.txt")),
    "replace data file": attempt(write(home / "store" / "curated" / "data.txt")),
    "write results store": attempt(write(home / "results" / "forged.txt")),
    "read data store": attempt(lambda: (home / "store" / "curated" / "data.txt").read_text()),
}}))
"""

NONROOT_MATRIX = {  # another local account (not root, not the hub's) -> expected outcome
    "read cookie_secret": "denied", "read users.json": "denied",
    "read jupyterhub.sqlite": "denied", "read hub.log": "denied", "list hub state": "denied",
    "list alice's home": "denied", "write into alice's home": "denied",
    "write data store": "denied", "replace data file": "denied",
    "write results store": "denied",
    "read data store": "allowed",  # the control: the probe can read what is shared
}


def _account(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _as(account: pwd.struct_passwd) -> list[str]:
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
            "--init-groups"]


@pytest.fixture(scope="module")
def nonroot_hub(hub_prefix):
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("needs root with useradd and setpriv to run the hub as another account")
    hub, other = _account(HUB_ACCOUNT), _account(OTHER_ACCOUNT)
    home = Path(tempfile.mkdtemp(prefix="ql-nonroot-"))
    raw = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    for name in ("dashboards", "results-api", "scheduler"):  # covered by test_hub.py
        raw["services"][name]["enabled"] = False
    (home / "platform.yaml").write_text(yaml.safe_dump(raw))
    (home / "store" / "curated").mkdir(parents=True)
    (home / "store" / "curated" / "data.txt").write_text("shared data")
    (home / "results").mkdir()
    for path in [home, *home.rglob("*")]:  # a home the hub's account owns, as installed
        os.chown(path, hub.pw_uid, hub.pw_gid)
    os.chmod(home, 0o755)
    env = {**os.environ, "QUANTLIB_HOME": str(home), "HOME": str(home),
           "QUANTLIB_PLATFORM_CONFIG": str(home / "platform.yaml")}
    for var in ("QUANTLIB_STORE", "QUANTLIB_RESULTS", "QUANTLIB_CONFIG", "QUANTLIB_RESULTS_API"):
        env.pop(var, None)
    prefix = hub_prefix(home)

    def platform_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *_as(hub), QUANTLIB, "platform", *args], env=env,
                              input=stdin, text=True, capture_output=True, timeout=420)

    done = platform_cli("users", "passwd", "alice", "--password-stdin",
                        stdin="alice-pass-1234\n")
    assert done.returncode == 0, done.stderr
    port = free_port()
    done = platform_cli("up", "--port", str(port), "--no-refresh")
    assert done.returncode == 0, done.stdout + done.stderr
    state = HubState.load(platform_paths(home))
    assert state is not None
    url = f"http://127.0.0.1:{port}/"
    session = requests.Session()
    session.get(url + "hub/login", timeout=30)
    session.post(url + "hub/login", allow_redirects=False, timeout=60,
                 data={"username": "alice", "password": "alice-pass-1234",
                       "_xsrf": session.cookies["_xsrf"]})
    xsrf = {"X-XSRFToken": session.cookies["_xsrf"]}
    started = session.post(url + "hub/api/users/alice/server", headers=xsrf, timeout=60)
    assert started.status_code in (201, 202), started.text
    deadline = time.monotonic() + 240
    while not session.get(url + "hub/api/user", headers=xsrf, timeout=30).json()[
            "servers"].get("", {}).get("ready"):
        assert time.monotonic() < deadline
        time.sleep(1)
    probe = subprocess.run([*prefix, *_as(other), sys.executable, "-c", PROBE, str(home)],
                           text=True, capture_output=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    yield SimpleNamespace(hub=hub, other=other, home=home, state=state,
                          probe=json.loads(probe.stdout.strip().splitlines()[-1]),
                          processes=platform_processes(state.run_id), cli=platform_cli)
    platform_cli("down")
    shutil.rmtree(home, ignore_errors=True)


def test_the_platform_runs_as_the_non_root_account(nonroot_hub):
    hub_uid = nonroot_hub.hub.pw_uid
    assert hub_uid != 0
    procs = {p.pid: p for p in nonroot_hub.processes}
    hub = psutil.Process(nonroot_hub.state.pid)
    assert hub.uids().real == hub.uids().effective == hub_uid
    servers = [p for p in procs.values() if "jupyterhub-singleuser" in " ".join(p.cmdline())]
    assert len(servers) == 1 and "--allow-root" not in servers[0].cmdline()
    for proc in procs.values():  # hub, proxy, server, culler: none of them root
        assert proc.uids().real == proc.uids().effective == hub_uid, proc.cmdline()
    for name in ("cookie_secret", "users.json", "jupyterhub.sqlite", "hub.log"):
        st = (nonroot_hub.home / "platform" / name).stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (hub_uid, 0o600), name


def test_probe_ran_as_another_real_account(nonroot_hub):
    uid = nonroot_hub.other.pw_uid
    assert nonroot_hub.probe["uid"] == nonroot_hub.probe["euid"] == uid
    assert uid not in (0, nonroot_hub.hub.pw_uid)


@pytest.mark.parametrize("cell", sorted(NONROOT_MATRIX))
def test_other_accounts_meet_permission_errors(nonroot_hub, cell):
    assert nonroot_hub.probe["cells"][cell] == NONROOT_MATRIX[cell]


def test_the_non_root_account_stops_it(nonroot_hub):
    started = time.perf_counter()
    done = nonroot_hub.cli("down")
    print(f"\nplatform down as {HUB_ACCOUNT}: {time.perf_counter() - started:.1f} s\n"
          f"{done.stdout}")
    assert done.returncode == 0 and "is stopped" in done.stdout, done.stdout + done.stderr
    assert "in parallel (server of alice, service idle-culler)" in done.stdout
    assert platform_processes(nonroot_hub.state.run_id) == []
