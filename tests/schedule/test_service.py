"""`quantlib schedule serve` as a real subprocess: its loop runs due jobs, its HTTP API
answers with the numbers from the state file; under the hub it requires a token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from croniter import croniter

from quantlib.platform.hubconfig import free_port
from quantlib.schedule import StateStore, load_schedules, run_job


@contextmanager
def _serve(schedules: Path, env_extra: dict[str, str], port: int,
           prefix: str = "/") -> Iterator[str]:
    env = {**os.environ, **env_extra}
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantlib.cli", "schedule", "serve", "--schedules",
         str(schedules), "--port", str(port), "--tick-seconds", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}{prefix}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read() if proc.stdout else "server exited")
            try:
                requests.get(base + "api/health", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_api_reports_last_run_outcome_duration_next_run(nb, tmp_path: Path) -> None:
    nb.write_notebook(tmp_path / "ok.ipynb", nb.OK_BODY)
    nb.write_notebook(tmp_path / "bad.ipynb", nb.FAIL_BODY)
    schedules = nb.write_schedules(tmp_path / "s.yaml", {
        "good": {"cron": "0 6 * * *", "notebook": "ok.ipynb", "parameters": {"x": 2}},
        "broken": {"cron": "15 7 * * 1", "notebook": "bad.ipynb", "owner": "researchers"},
        # registered an hour ago with an every-minute cron: due at the service's first tick
        "minutely": {"cron": "* * * * *", "notebook": "ok.ipynb", "parameters": {"x": 5}},
    })
    jobs = load_schedules(schedules)
    store = StateStore()
    ran = run_job(jobs["good"], now=datetime(2026, 3, 2, 6, 0, tzinfo=UTC))
    store.update("minutely", first_seen=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
    port = free_port()
    with _serve(schedules, {}, port) as base:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = {r["job"]: r for r in requests.get(base + "api/jobs", timeout=5).json()}
            if rows["minutely"]["outcome"] in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        one = requests.get(base + "api/jobs/good", timeout=5).json()
        missing = requests.get(base + "api/jobs/nope", timeout=5)
        root = requests.get(base, timeout=5, allow_redirects=False)
    good = rows["good"]
    assert good == one
    assert good["outcome"] == "succeeded"
    assert good["duration_s"] == ran["duration_s"] == store.get("good")["duration_s"]
    assert good["last_run"] == "2026-03-02T06:00:00+00:00"
    assert good["owner"] == "data-team" and good["attempts"] == 1
    assert good["record"].endswith("runs/good/20260302T060000Z.ipynb")
    now = datetime.now(UTC)
    expected_next = croniter("15 7 * * 1", now).get_next(datetime)
    next_broken = datetime.fromisoformat(rows["broken"]["next_run"])
    assert abs(next_broken - expected_next) < timedelta(minutes=1)
    assert next_broken.weekday() == 0 and (next_broken.hour, next_broken.minute) == (7, 15)
    assert rows["broken"]["outcome"] is None and rows["broken"]["last_run"] is None
    # the service's own loop ran the due job, once
    assert rows["minutely"]["outcome"] == "succeeded"
    records = list((store.path.parent / "runs" / "minutely").glob("*.ipynb"))
    assert len(records) == 1
    assert missing.status_code == 404 and "no job named 'nope'" in missing.json()["error"]
    assert root.status_code in (301, 302) and root.headers["Location"] == "/api/jobs"


def test_under_the_hub_requests_need_a_token(nb, tmp_path: Path) -> None:
    nb.write_notebook(tmp_path / "ok.ipynb", nb.OK_BODY)
    schedules = nb.write_schedules(tmp_path / "s.yaml", {
        "good": {"cron": "0 6 * * *", "notebook": "ok.ipynb"}})
    port = free_port()
    hub_env = {
        "JUPYTERHUB_API_TOKEN": "service-token-not-a-secret",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{free_port()}/hub/api",
        "JUPYTERHUB_SERVICE_NAME": "scheduler",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/scheduler/",
    }
    with _serve(schedules, hub_env, port, prefix="/services/scheduler/") as base:
        resp = requests.get(base + "api/jobs", timeout=5)
    assert resp.status_code == 403
    assert json.loads(resp.text)["error"] == ("a JupyterHub token with access to this service "
                                              "is required")


def test_standalone_refuses_non_loopback(nb, tmp_path: Path) -> None:
    from quantlib.errors import ScheduleError
    from quantlib.schedule.service import service_address

    with pytest.raises(ScheduleError, match="binds loopback only; found host 0.0.0.0"):
        service_address({}, host="0.0.0.0")
