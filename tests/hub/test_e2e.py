"""End to end over HTTP: the whole local platform, as its users see it (issue #4, section 6).

``quantlib platform up`` on an empty QUANTLIB_HOME (small sandbox) refreshes the data
from the vendor sandbox, starts the hub and its services. Then:

- a researcher logs in with the hub's form, gets a JupyterLab server, and runs
  notebooks/backtest_and_sweep.ipynb cell by cell through a real kernel (Jupyter's
  websocket protocol; parameters cell replaced by a small run, like papermill): catalog
  read, backtest, lookahead check, sweep on a LocalCluster; then publishes the result;
- the Dask dashboard of that cluster answers through the researcher's server;
- a manager is refused a server (403), and the dashboards and results API (through the
  hub) answer them, listing the published result; the scheduler refuses them (403);
- the scheduler service (a job every minute running notebooks/refresh_data.ipynb) runs an
  incremental refresh against the same vendor clock: the data team sees it succeed in its
  API, and a fresh catalog read still sees `up`'s version (nothing new: no version);
- ``quantlib platform down`` leaves no process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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
import yaml
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from quantlib.platform.hubconfig import free_port
from quantlib.platform.process import HubState, platform_processes
from quantlib.platform.settings import HUB_CONFIG_DIR, platform_paths
from quantlib.store import CuratedStore

pytestmark = [pytest.mark.hub, pytest.mark.slow]

QUANTLIB = str(Path(sys.executable).parent / "quantlib")
ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"alice": "alice-pass-1234", "mark": "mark-pass-1234", "dana": "dana-pass-1234"}

NOTEBOOK = ROOT / "notebooks" / "backtest_and_sweep.ipynb"
PARAMETERS = """
store = None
markets = ["KR", "US", "EU"]
strategy = "xs_momentum"
max_workers = 1
windows = [20, 60]
skips = [0, 5]
"""
PUBLISH = """
import json
rid = quantlib.publish(result, title="e2e xs momentum", author="alice")
print("OUT" + json.dumps({"rid": rid, "link": client.dashboard_link,
                          "snapshot": data.attrs["snapshot"], "sweep_rows": len(table),
                          "assets": int(data.sizes["asset"]), "dates": int(data.sizes["date"])}))
"""


def notebook_cells() -> tuple[list[str], list[str]]:
    """The notebook's code cells, parameters replaced, split before ``client.close()``.

    A publish cell ends the first part (the cluster is still up for the dashboard check).
    """
    nb = json.loads(NOTEBOOK.read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    cells = [PARAMETERS if c.lstrip().startswith("# parameters") else c for c in cells]
    assert PARAMETERS in cells, "the notebook has a '# parameters' cell"
    close = [i for i, c in enumerate(cells) if c.strip() == "client.close()"]
    at = close[0] if close else len(cells)
    return cells[:at] + [PUBLISH], cells[at:]


def cli(env, *args, stdin=None, timeout=600, prefix=()):
    return subprocess.run([*prefix, QUANTLIB, "platform", *args], env=env, input=stdin,
                          text=True, capture_output=True, timeout=timeout)


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
def platform(tmp_path_factory, hub_prefix):
    home = tmp_path_factory.mktemp("e2e-home")
    config = home / "config.yaml"
    config.write_text("sandbox:\n  n_assets: 8\n  years: 2\n")
    schedules = home / "schedules.yaml"
    schedules.write_text(yaml.safe_dump({"notebook_root": str(ROOT), "jobs": {"refresh-data": {
        "description": "e2e: refresh US every minute", "cron": "* * * * *",
        "notebook": "notebooks/refresh_data.ipynb", "owner": "data-team", "retries": 0,
        "timeout_s": 900, "parameters": {"markets": ["US"], "sandbox": True}}}}))
    platform_yaml = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    platform_yaml["services"]["scheduler"]["command"] += [
        "--schedules", str(schedules), "--tick-seconds", "5"]
    (home / "platform.yaml").write_text(yaml.safe_dump(platform_yaml))
    env = {**os.environ, "QUANTLIB_HOME": str(home), "QUANTLIB_CONFIG": str(config),
           "QUANTLIB_PLATFORM_CONFIG": str(home / "platform.yaml")}
    for var in ("QUANTLIB_STORE", "QUANTLIB_RESULTS"):
        env.pop(var, None)
    for name, password in PASSWORDS.items():
        assert cli(env, "users", "passwd", name, "--password-stdin",
                   stdin=password + "\n").returncode == 0
    port = free_port()
    started = time.perf_counter()
    done = cli(env, "up", "--port", str(port), prefix=hub_prefix(home))  # + first refresh
    up_s = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    state = HubState.load(platform_paths(home))
    info = {"home": home, "env": env, "url": f"http://127.0.0.1:{port}/", "up": done.stdout,
            "up_s": up_s, "state": state, "t0": started}
    yield info
    cli(env, "down")


def run_async(coro):
    """Run a coroutine on a fresh event loop in its own thread.

    Another test in the same xdist worker may leave a loop running in this thread (a
    session-scoped Playwright browser does), where ``asyncio.run`` would refuse.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _run_cells(ws_url: str, token: str, cells: list[str], timeout: float) -> str:
    out = []
    for code in cells:
        text, errors = await _execute(ws_url, token, code, timeout)
        assert not errors, f"cell failed:\n{code}\n" + errors[0][-3000:]
        out.append(text)
    return "".join(out)


def spawn(url: str, auth: dict[str, str], name: str) -> float:
    started = time.perf_counter()
    assert requests.post(url + f"hub/api/users/{name}/server", headers=auth,
                         timeout=30).status_code in (201, 202)
    while not requests.get(url + f"hub/api/users/{name}", headers=auth, timeout=10).json()[
            "servers"].get("", {}).get("ready"):
        assert time.perf_counter() - started < 180
        time.sleep(0.25)
    return time.perf_counter() - started


@pytest.mark.timeout(1500)
def test_whole_platform_over_http(platform):
    url, home = platform["url"], platform["home"]
    first = re.search(r"data version refresh-\S+ \(snapshot (\S+)\) committed", platform["up"])
    assert first, platform["up"]
    assert (home / "store" / "curated").is_dir()

    # researcher: login -> own server -> the backtest notebook through a kernel
    alice, resp = login(url, "alice")
    assert resp.headers["Location"].endswith("/user/alice/")
    token = make_token(url, alice, "alice")
    auth = {"Authorization": f"token {token}"}
    spawn_s = spawn(url, auth, "alice")
    kernel = requests.post(url + "user/alice/api/kernels", headers=auth, json={"name": "python3"},
                           timeout=60)
    assert kernel.status_code == 201, kernel.text
    ws_url = url.replace("http", "ws", 1) + f"user/alice/api/kernels/{kernel.json()['id']}/channels"
    t_run = time.perf_counter()
    cells, closing = notebook_cells()
    out = run_async(_run_cells(ws_url, token, cells, timeout=600))
    run_s = time.perf_counter() - t_run
    assert "no lookahead" in out
    found = json.loads(out.split("OUT", 1)[1].splitlines()[0])
    # the sandbox's universe is drawn on the calendar (about n_assets per market are
    # listed in the window): the notebook's panel holds every asset of the stored panels
    store = CuratedStore(str(home / "store"))
    stored = sum(store.open_prices(m, found["snapshot"]).sizes["asset"] for m in ("KR", "US", "EU"))
    assert 12 <= stored <= 40, stored  # 8 per market, give or take the listings of 2 years
    assert found["sweep_rows"] == 4 and found["assets"] == stored and found["dates"] > 400
    # the cluster's dashboard link points through alice's server, and answers there
    port = re.search(r"/user/alice/proxy/(\d+)/status", found["link"])
    assert port, found["link"]
    dash = requests.get(url + f"user/alice/proxy/{port.group(1)}/status", headers=auth,
                        timeout=30)
    assert dash.status_code == 200 and "Dask" in dash.text
    run_async(_run_cells(ws_url, token, closing, timeout=120))
    published = json.loads((home / "results" / "index" / "published.json").read_text())
    assert found["rid"] in json.dumps(published)

    # manager: no server, no scheduler, but the dashboards and the results API answer
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
    assert found["rid"] in listed.text and "e2e xs momentum" in listed.text
    assert requests.get(url + "services/scheduler/api/jobs", headers=mark_auth,
                        timeout=30).status_code == 403

    # data team: the scheduled refresh (every minute) runs against the same vendor clock
    # as `up`'s full build: it succeeds and commits nothing (bars re-fetched in the
    # look-back window equal the stored ones; #12: they used to make a new version)
    dana, _ = login(url, "dana")
    dana_auth = {"Authorization": f"token {make_token(url, dana, 'dana')}"}
    deadline = time.monotonic() + 600
    while True:
        jobs = requests.get(url + "services/scheduler/api/jobs", headers=dana_auth, timeout=30)
        assert jobs.status_code == 200, jobs.text
        row = {r["job"]: r for r in jobs.json()}["refresh-data"]
        if row["outcome"] not in (None, "running"):
            break
        assert time.monotonic() < deadline, row
        time.sleep(3)
    assert row["outcome"] == "succeeded", row
    assert Path(row["record"]).exists()  # the executed notebook is the run record
    import quantlib

    assert "nothing new" in Path(row["record"]).read_text()
    fresh = quantlib.load_dataset(str(home / "store"), markets=["US"], fundamentals=False)
    assert fresh.attrs["snapshot"] == first.group(1)

    total_s = time.perf_counter() - platform["t0"]
    print(f"\ne2e: up (refresh + hub) {platform['up_s']:.1f} s, spawn {spawn_s:.1f} s, "
          f"backtest notebook {run_s:.1f} s, scheduled refresh {row['duration_s']:.1f} s, "
          f"end to end {total_s:.1f} s")

    run_id = platform["state"].run_id
    done = cli(platform["env"], "down", timeout=120)
    assert done.returncode == 0
    assert platform_processes(run_id) == []
