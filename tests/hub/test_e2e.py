"""End to end over HTTP: the whole local platform, as its users see it (issue #4, section 6).

``quantlib platform up`` on an empty QUANTLIB_HOME (small sandbox) refreshes the data
from the vendor sandbox, starts the hub and its services. Then:

- a researcher logs in with the hub's form, gets a JupyterLab server, and through a real
  kernel (Jupyter's websocket protocol) starts a LocalCluster with ``connect()``, reads
  the catalog, backtests and publishes;
- the Dask dashboard of that cluster answers through the researcher's server;
- a manager is refused a server (403), and the dashboards and results API (through the
  hub) answer them, listing the published result;
- ``quantlib platform down`` leaves no process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from quantlib.platform.hubconfig import free_port
from quantlib.platform.process import HubState, platform_processes
from quantlib.platform.settings import platform_paths

pytestmark = [pytest.mark.hub, pytest.mark.slow]

QUANTLIB = str(Path(sys.executable).parent / "quantlib")
PASSWORDS = {"alice": "alice-pass-1234", "mark": "mark-pass-1234"}

RESEARCH = """
import json, quantlib
from quantlib.cluster import connect
from quantlib.backtest import run
client = connect(kind="local", min_workers=1, max_workers=1)
ds = quantlib.open_catalog(markets=["US"]).prices.read()
n_workers = len(client.scheduler_info()["workers"])
res = run("ma_crossover", ds, fast=5, slow=20)
rid = quantlib.publish(res, title="e2e ma crossover", author="alice")
print("OUT" + json.dumps({"rid": rid, "link": client.dashboard_link, "workers": n_workers,
                          "assets": int(ds.sizes["asset"]), "dates": int(ds.sizes["date"])}))
"""


def cli(env, *args, stdin=None, timeout=600):
    return subprocess.run([QUANTLIB, "platform", *args], env=env, input=stdin, text=True,
                          capture_output=True, timeout=timeout)


def xsrf(session: requests.Session) -> str:
    """The hub's xsrf cookie (services set their own, on their own paths)."""
    return session.cookies.get("_xsrf", path="/hub/")


def login(url: str, name: str) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    session.get(url + "hub/login", timeout=10)
    resp = session.post(url + "hub/login", allow_redirects=False, timeout=30,
                        data={"username": name, "password": PASSWORDS[name],
                              "_xsrf": xsrf(session)})
    assert resp.status_code == 302, resp.text
    return session, resp


def make_token(url: str, session: requests.Session, name: str) -> str:
    made = session.post(url + f"hub/api/users/{name}/tokens", json={"expires_in": 3600},
                        headers={"X-XSRFToken": xsrf(session)}, timeout=10)
    assert made.status_code == 201, made.text
    return made.json()["token"]


async def _execute(ws_url: str, token: str, code: str, timeout: float) -> tuple[str, list]:
    """Run ``code`` in a kernel over Jupyter's websocket protocol; (stdout, errors)."""
    conn = await websocket_connect(HTTPRequest(ws_url, headers={
        "Authorization": f"token {token}"}))
    msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "alice", "session": session,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
    out, errors = [], []
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
        assert raw is not None, "kernel websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            errors.append("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            break
    conn.close()
    return "".join(out), errors


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e-home")
    config = home / "config.yaml"
    config.write_text("sandbox:\n  n_assets: 8\n  years: 2\n")
    env = {**os.environ, "QUANTLIB_HOME": str(home), "QUANTLIB_CONFIG": str(config)}
    for var in ("QUANTLIB_STORE", "QUANTLIB_RESULTS", "QUANTLIB_PLATFORM_CONFIG"):
        env.pop(var, None)
    for name, password in PASSWORDS.items():
        assert cli(env, "users", "passwd", name, "--password-stdin",
                   stdin=password + "\n").returncode == 0
    port = free_port()
    started = time.perf_counter()
    done = cli(env, "up", "--port", str(port))  # with the first-start data refresh
    up_s = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    state = HubState.load(platform_paths(home))
    info = {"home": home, "env": env, "url": f"http://127.0.0.1:{port}/", "up": done.stdout,
            "up_s": up_s, "state": state, "t0": started}
    yield info
    cli(env, "down")


def test_whole_platform_over_http(platform):
    url, home = platform["url"], platform["home"]
    assert re.search(r"data version refresh-\S+ \(snapshot \S+\) committed", platform["up"])
    assert (home / "store" / "curated").is_dir()

    # researcher: login -> own server
    alice, resp = login(url, "alice")
    assert resp.headers["Location"].endswith("/user/alice/")
    token = make_token(url, alice, "alice")
    auth = {"Authorization": f"token {token}"}
    t_spawn = time.perf_counter()
    assert requests.post(url + "hub/api/users/alice/server", headers=auth,
                         timeout=30).status_code in (201, 202)
    while not requests.get(url + "hub/api/users/alice", headers=auth, timeout=10).json()[
            "servers"].get("", {}).get("ready"):
        assert time.perf_counter() - t_spawn < 180
        time.sleep(0.25)
    spawn_s = time.perf_counter() - t_spawn

    # a kernel in that server: LocalCluster, catalog, backtest, publish
    kernel = requests.post(url + "user/alice/api/kernels", headers=auth, json={"name": "python3"},
                           timeout=60)
    assert kernel.status_code == 201, kernel.text
    ws_url = url.replace("http", "ws", 1) + f"user/alice/api/kernels/{kernel.json()['id']}/channels"
    t_run = time.perf_counter()
    out, errors = asyncio.run(_execute(ws_url, token, RESEARCH, timeout=300))
    run_s = time.perf_counter() - t_run
    assert not errors, errors[0][-3000:]
    found = json.loads(out.split("OUT", 1)[1].splitlines()[0])
    assert found["workers"] == 1 and found["assets"] == 8 and found["dates"] > 400
    # the cluster's dashboard link points through alice's server, and answers there
    port = re.search(r"/user/alice/proxy/(\d+)/status", found["link"])
    assert port, found["link"]
    dash = requests.get(url + f"user/alice/proxy/{port.group(1)}/status", headers=auth,
                        timeout=30)
    assert dash.status_code == 200 and "Dask" in dash.text
    published = json.loads((home / "results" / "index" / "published.json").read_text())
    assert found["rid"] in json.dumps(published)

    # manager: no server, but the dashboards and the results API answer
    mark, resp = login(url, "mark")
    assert resp.headers["Location"].endswith("/services/dashboards/")
    refused = mark.post(url + "hub/api/users/mark/server", timeout=10,
                        headers={"X-XSRFToken": xsrf(mark)})
    assert refused.status_code == 403
    page = mark.get(url + "services/dashboards/", timeout=120)
    assert page.status_code == 200 and "<html" in page.text.lower()
    mark_auth = {"Authorization": f"token {make_token(url, mark, 'mark')}"}
    listed = requests.get(url + "services/results-api/api/v1/results", headers=mark_auth,
                          timeout=60)
    assert listed.status_code == 200, listed.text
    assert found["rid"] in listed.text and "e2e ma crossover" in listed.text

    total_s = time.perf_counter() - platform["t0"]
    print(f"\ne2e: up (refresh + hub) {platform['up_s']:.1f} s, spawn {spawn_s:.1f} s, "
          f"kernel research cell {run_s:.1f} s, end to end {total_s:.1f} s")

    run_id = platform["state"].run_id
    done = cli(platform["env"], "down", timeout=120)
    assert done.returncode == 0
    assert platform_processes(run_id) == []
