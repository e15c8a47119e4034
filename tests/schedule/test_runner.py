"""The runner with a fake clock and real papermill subprocesses."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from quantlib.errors import ScheduleError
from quantlib.schedule import JobLock, StateStore, due_jobs, load_schedules, run_due, run_job

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


def _jobs(nb, tmp_path: Path, body: str, **spec):
    nb.write_notebook(tmp_path / "nb" / "job.ipynb", body)
    path = nb.write_schedules(tmp_path / "schedules.yaml", {"job": {
        "cron": "0 6 * * *", "notebook": "nb/job.ipynb", **spec}})
    return load_schedules(path)


def test_due_job_runs_once_and_keeps_its_executed_notebook(nb, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    jobs = _jobs(nb, tmp_path, nb.OK_BODY, parameters={"x": 21, "out": str(out)})
    store = StateStore()
    assert due_jobs(jobs.values(), store, T0) == []  # first sight: wait for the next tick
    assert store.get("job")["next_run"] == "2026-03-03T06:00:00+00:00"
    assert run_due(jobs.values(), now=T0 + timedelta(hours=17)) == []  # 05:00, not yet due
    now = T0 + timedelta(hours=18, minutes=1)  # 06:01 next day
    (result,) = run_due(jobs.values(), now=now)
    assert result["outcome"] == "succeeded" and result["attempts"] == 1, result
    assert out.read_text() == "42\n"
    record = Path(result["record"])
    assert record.name == "20260303T060100Z.ipynb"
    assert record.parent == store.path.parent / "runs" / "job"
    executed = nbformat.read(record, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "x = 21" in injected[0].source
    assert any("result 42" in o.get("text", "") for c in executed.cells
               for o in c.get("outputs", []))
    state = store.get("job")
    assert state["outcome"] == "succeeded"
    assert state["last_run"] == "2026-03-03T06:01:00+00:00"
    assert state["last_tick"] == "2026-03-03T06:00:00+00:00"
    assert state["next_run"] == "2026-03-04T06:00:00+00:00"
    assert 0 < state["duration_s"] == result["duration_s"]
    assert run_due(jobs.values(), now=now + timedelta(minutes=30)) == []  # tick already covered


@pytest.mark.slow
def test_failing_notebook_is_retried_then_marked_failed(nb, tmp_path: Path) -> None:
    jobs = _jobs(nb, tmp_path, nb.FAIL_BODY, parameters={"x": 7}, retries=2, retry_delay_s=5)
    delays: list[float] = []
    result = run_job(jobs["job"], now=T0, sleep=delays.append)
    assert result["outcome"] == "failed"
    assert result["attempts"] == 3  # 1 + 2 retries
    assert delays == [5.0, 5.0]
    names = [Path(r).name for r in result["records"]]
    assert names == ["20260302T120000Z.ipynb", "20260302T120000Z-retry1.ipynb",
                     "20260302T120000Z-retry2.ipynb"]
    assert all(Path(r).exists() for r in result["records"])  # each attempt is kept
    assert "ValueError" in result["error"] and "boom 7" in result["error"]
    state = StateStore().get("job")
    assert state["outcome"] == "failed" and state["attempts"] == 3
    assert "last_tick" not in state  # a manual run covers no cron tick


@pytest.mark.slow
def test_flaky_notebook_succeeds_on_retry(nb, tmp_path: Path) -> None:
    counter = tmp_path / "tries.txt"
    jobs = _jobs(nb, tmp_path, nb.FLAKY_BODY, parameters={"x": 2, "out": str(counter)}, retries=3)
    result = run_job(jobs["job"], now=T0, sleep=lambda s: None)
    assert (result["outcome"], result["attempts"]) == ("succeeded", 2)
    assert counter.read_text() == "try\ntry\n"


def test_missed_ticks_after_downtime_run_once(nb, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    nb.write_notebook(tmp_path / "hourly.ipynb", nb.OK_BODY)
    path = nb.write_schedules(tmp_path / "schedules.yaml", {"hourly": {
        "cron": "0 * * * *", "notebook": "hourly.ipynb", "parameters": {"x": 1, "out": str(out)}}})
    jobs = load_schedules(path)
    store = StateStore()
    assert run_due(jobs.values(), now=T0, store=store) == []  # registered at 12:00
    # the service was down from 12:00 to 17:30: five ticks (13:00..17:00) were missed
    back = T0 + timedelta(hours=5, minutes=30)
    results = run_due(jobs.values(), now=back, store=store)
    assert [r["outcome"] for r in results] == ["succeeded"]
    assert store.get("hourly")["last_tick"] == "2026-03-02T17:00:00+00:00"
    assert run_due(jobs.values(), now=back + timedelta(minutes=20), store=store) == []
    assert out.read_text() == "2\n"  # exactly one execution


@pytest.mark.slow
def test_overlapping_trigger_is_skipped(nb, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    jobs = _jobs(nb, tmp_path, nb.SLOW_BODY, parameters={"x": 4, "out": str(out)})
    job = jobs["job"]
    results: dict[str, dict] = {}
    first = threading.Thread(target=lambda: results.setdefault("first", run_job(job, now=T0)))
    first.start()
    lock = JobLock("job", StateStore().path.parent / "locks")
    deadline = time.monotonic() + 30
    while lock.holder() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = run_job(job, now=T0 + timedelta(minutes=1), tick=T0 + timedelta(minutes=1))
    first.join(timeout=120)
    assert second["outcome"] == "skipped"
    assert second["error"].startswith("already running (pid ")
    assert results["first"]["outcome"] == "succeeded"
    assert out.read_text() == "slept\n"  # the notebook ran once
    state = StateStore().get("job")
    assert state["last_skip"] == "2026-03-02T12:01:00+00:00"
    assert state["last_tick"] == "2026-03-02T12:01:00+00:00"  # Forbid: the busy tick is dropped


@pytest.mark.slow
def test_stale_lock_of_a_dead_process_is_broken(nb, tmp_path: Path) -> None:
    jobs = _jobs(nb, tmp_path, nb.OK_BODY, parameters={"x": 1})
    lock_path = StateStore().path.parent / "locks" / "job.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path.write_text(str(alive.pid))
        assert run_job(jobs["job"], now=T0)["outcome"] == "skipped"
    finally:
        alive.kill()
        alive.wait()
    # the pid is dead now: its lock is stale and is broken
    result = run_job(jobs["job"], now=T0 + timedelta(minutes=5))
    assert result["outcome"] == "succeeded"
    assert not lock_path.exists()


def test_timeout_kills_the_notebook(nb, tmp_path: Path) -> None:
    jobs = _jobs(nb, tmp_path, nb.SLOW_BODY, parameters={"x": 60}, timeout_s=4)
    start = time.monotonic()
    result = run_job(jobs["job"], now=T0)
    assert time.monotonic() - start < 25
    assert (result["outcome"], result["error"]) == ("failed", "timed out after 4s")


def test_missing_notebook_fails_with_its_path(nb, tmp_path: Path) -> None:
    path = nb.write_schedules(tmp_path / "s.yaml", {"ghost": {"cron": "0 6 * * *",
                                                           "notebook": "nope.ipynb"}})
    result = run_job(load_schedules(path)["ghost"], now=T0)
    assert result["outcome"] == "failed"
    assert result["error"] == f"notebook {tmp_path / 'nope.ipynb'} does not exist"


@pytest.mark.parametrize(("spec", "field", "found"), [
    ({"cron": "61 * * * *"}, "cron", "'61 * * * *'"),
    ({"owner": "interns"}, "owner", "'interns' is not one of"),
    ({"retries": -1}, "retries", "-1 is less than the minimum of 0"),
    ({"notebook": "job.py"}, "notebook", "'job.py' does not match"),
    ({"schedule": "daily"}, "<job>", "Additional properties are not allowed"),
])
def test_bad_schedules_name_job_and_field(nb, tmp_path: Path, spec: dict, field: str,
                                          found: str) -> None:
    path = nb.write_schedules(tmp_path / "s.yaml", {"nightly": {
        "cron": "0 1 * * *", "notebook": "job.ipynb", **spec}})
    with pytest.raises(ScheduleError) as info:
        load_schedules(path)
    msg = str(info.value)
    assert f"field={field}" in msg and "job=nightly" in msg and found in msg
    assert info.value.exit_code == 8


def test_repository_schedules_define_the_default_jobs() -> None:
    jobs = load_schedules(Path(__file__).parents[2] / "catalogs" / "schedules.yaml")
    refresh = jobs["refresh-data"]
    assert refresh.notebook_rel == "notebooks/refresh_data.ipynb"
    assert refresh.parameters == {"markets": ["KR", "US", "EU"], "sandbox": True}
    assert refresh.owner == "data-team" and refresh.retries >= 1
    assert refresh.cron.split()[2:] == ["*", "*", "1-5"]  # every weekday
    health = jobs["data-health-report"]
    assert health.owner == "data-team"
    assert health.cron.split()[2:4] == ["*", "*"] and health.cron.split()[4] != "*"  # weekly
