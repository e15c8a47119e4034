"""The scheduler as a real hub-managed service: a real JupyterHub (+ configurable-http-proxy)
starts `quantlib schedule serve`; only tokens whose scopes grant access to it get the jobs."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from quantlib.platform.hubconfig import free_port

ROOT = Path(__file__).parents[2]
CHP = ROOT / "hub-config" / "node_modules" / ".bin" / "configurable-http-proxy"


def _port() -> int:
    # Below the ephemeral range (free_port's docstring): a port=0 port, released here and
    # bound by the proxy seconds later, can meanwhile become some other process's
    # ephemeral socket (CI's failure: EADDRINUSE on both proxy ports).
    return free_port()


def _listeners() -> str:
    """Who listens on TCP now (for a failure message)."""
    try:
        return subprocess.run(["ss", "-ltnp"], capture_output=True, text=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(ss failed: {exc})"


# JupyterHub gives configurable-http-proxy a fixed 10 s to bind its ports; on a loaded
# machine (CI's 2 cores running the suite) node can take longer, and the hub then exits
# with "Failed to start proxy". Such a start (or a port taken meanwhile) is retried with
# new ports; any other exit fails the test.
_RETRYABLE = ("Failed to start proxy", "EADDRINUSE", "Address already in use")


def _start_hub(tmp_path: Path, schedules: Path, allowed: str, denied: str,
               attempts: int = 3) -> tuple[subprocess.Popen, str, requests.Response]:
    """Start the hub with the scheduler service; (process, service URL, first 200 answer)."""
    for attempt in range(attempts):
        work = tmp_path / f"hub{attempt}"
        work.mkdir()
        hub, base, resp, log = _start_once(work, schedules, allowed, denied)
        if resp is not None:
            return hub, base, resp
        text = log.read_text(errors="replace")
        _kill_proxy(work / "proxy.pid")   # a proxy the failed hub left behind
        if attempt + 1 == attempts or not any(m in text for m in _RETRYABLE):
            pytest.fail("hub exited: " + text[-3000:] + "\nlisteners now:\n" + _listeners())
    raise AssertionError("unreachable")


def _kill_proxy(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text().strip()), 15)
    except (OSError, ValueError):
        pass


def _start_once(tmp_path: Path, schedules: Path, allowed: str, denied: str
                ) -> tuple[subprocess.Popen, str, requests.Response | None, Path]:
    hub_port, svc_port, api_port, proxy_api = _port(), _port(), _port(), _port()
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(f"""
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {hub_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {api_port}
c.JupyterHub.db_url = "sqlite:///{tmp_path / 'hub.sqlite'}"
c.JupyterHub.cookie_secret_file = "{tmp_path / 'cookie_secret'}"
c.ConfigurableHTTPProxy.command = ["{CHP}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.pid_file = "{tmp_path / 'proxy.pid'}"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.services = [
    {{"name": "scheduler", "url": "http://127.0.0.1:{svc_port}",
      "command": [{sys.executable!r}, "-m", "quantlib.cli", "schedule", "serve",
                  "--schedules", {str(schedules)!r}, "--tick-seconds", "3600"],
      "environment": {{"QUANTLIB_HOME": {os.environ["QUANTLIB_HOME"]!r}}}}},
    {{"name": "data-team-bot", "api_token": "{allowed}"}},
    {{"name": "outsider", "api_token": "{denied}"}},
]
c.JupyterHub.load_roles = [
    {{"name": "scheduler-reader", "scopes": ["access:services!service=scheduler"],
      "services": ["data-team-bot"]}},
]
""")
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16)}
    log = tmp_path / "hub.log"
    hub = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)],
                           cwd=tmp_path, env=env, stdout=log.open("w"),
                           stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{hub_port}/services/scheduler/"
    deadline, resp = time.monotonic() + 120, None
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            return hub, base, None, log
        try:
            resp = requests.get(base + "api/jobs", timeout=5,
                                headers={"Authorization": f"token {allowed}"})
            if resp.status_code == 200:
                return hub, base, resp, log
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    _stop(hub)
    pytest.fail(f"the scheduler service never answered 200: {resp and resp.text}")


def _stop(hub: subprocess.Popen) -> None:
    """Stop the hub and whatever it started (proxy, scheduler service), even when the hub
    has to be killed and cannot stop them itself."""
    try:
        children = psutil.Process(hub.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    hub.terminate()
    try:
        hub.wait(timeout=30)
    except subprocess.TimeoutExpired:
        hub.kill()
        hub.wait()
    _gone, alive = psutil.wait_procs(children, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


@pytest.mark.slow
@pytest.mark.hub
def test_hub_tokens_with_access_scope_see_the_jobs(nb, tmp_path: Path) -> None:
    if not CHP.exists():
        pytest.fail(f"configurable-http-proxy missing at {CHP}: run `npm ci --prefix hub-config`")
    nb.write_notebook(tmp_path / "ok.ipynb", nb.OK_BODY)
    schedules = nb.write_schedules(tmp_path / "s.yaml", {
        "nightly": {"cron": "0 6 * * *", "notebook": "ok.ipynb"}})
    allowed, denied = secrets.token_hex(16), secrets.token_hex(16)
    hub, base, resp = _start_hub(tmp_path, schedules, allowed, denied)
    try:
        assert resp is not None and resp.status_code == 200, resp and resp.text
        (row,) = resp.json()
        assert row["job"] == "nightly" and row["cron"] == "0 6 * * *"
        assert row["next_run"].endswith("T06:00:00+00:00")
        no_scope = requests.get(base + "api/jobs", timeout=10,
                                headers={"Authorization": f"token {denied}"})
        assert no_scope.status_code == 403
        anonymous = requests.get(base + "api/jobs", timeout=10, allow_redirects=False)
        assert anonymous.status_code == 403
        # a browser without a cookie is sent through the hub's OAuth login
        browser = requests.get(base + "api/jobs", timeout=10, allow_redirects=False,
                               headers={"Accept": "text/html"})
        assert browser.status_code == 302
        assert "/hub/api/oauth2/authorize" in browser.headers["Location"]
        assert "client_id=service-scheduler" in browser.headers["Location"]
    finally:
        _stop(hub)
