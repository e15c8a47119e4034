"""Run scheduled notebooks with papermill, one subprocess per attempt.

Algorithm (:func:`due_jobs` then :func:`run_job`, driven by a clock ``now`` that
tests inject):

1. For each enabled job, the latest cron tick at or before ``now`` is due when it is
   later than both the tick the last run covered and the moment the service first
   saw the job. Only the *latest* tick counts, so after downtime a job whose ticks
   were missed runs once, not once per missed tick.
2. A due job takes its lock (``locks/<job>.lock``, holding the pid). If another live
   process holds it the trigger is skipped (recorded as ``skipped``): two runs of one
   job never overlap.
3. Each attempt runs ``python -m papermill`` in its own process group with the job's
   parameters and is killed after ``timeout_s``. The executed notebook is kept as the
   run record under ``runs/<job>/<timestamp>.ipynb`` (``-retryN`` for retries) with
   papermill's log beside it.
4. A failed attempt is retried up to ``retries`` times, ``retry_delay_s`` apart; then
   the run is ``failed``. State (last run, tick, outcome, duration, attempts, record,
   error, next run) goes to ``state.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantlib.schedule.jobs import Job, next_tick, previous_tick
from quantlib.schedule.state import JobLock, StateStore, schedule_home

__all__ = ["due_jobs", "run_job", "run_due", "execute_notebook", "job_status"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _parse(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def due_jobs(jobs: Iterable[Job], store: StateStore, now: datetime) -> list[tuple[Job, datetime]]:
    """Jobs whose latest cron tick at or before ``now`` has not been run yet.

    A job seen for the first time is registered (``first_seen = now``) and waits
    for its next tick, so a fresh install does not fire every job at once.
    """
    state = store.all()
    out = []
    for job in jobs:
        if not job.enabled:
            continue
        st = state.get(job.name, {})
        first_seen = _parse(st.get("first_seen"))
        if first_seen is None:
            store.update(job.name, first_seen=_iso(now), next_run=_iso(next_tick(job.cron, now)))
            continue
        tick = previous_tick(job.cron, now)
        last_tick = _parse(st.get("last_tick"))
        if tick > first_seen and (last_tick is None or tick > last_tick):
            out.append((job, tick))
    return out


def execute_notebook(job: Job, output: Path, *, timeout_s: float) -> tuple[bool, str]:
    """Run ``job.notebook`` with papermill into ``output`` in a subprocess.

    Returns ``(ok, error)``; ``error`` is the tail of papermill's log on failure.
    The process group is killed when ``timeout_s`` runs out.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    log_path = output.with_suffix(".log")
    if not job.notebook.exists():
        msg = f"notebook {job.notebook} does not exist"
        log_path.write_text(msg + "\n")
        return False, msg
    cmd = [sys.executable, "-m", "papermill", str(job.notebook), str(output),
           "-y", json.dumps(job.parameters), "--cwd", str(job.notebook.parent),
           "--no-progress-bar", "--log-output",
           # papermill's default 60 s for the kernel to start is missed on a loaded machine;
           # the job's own timeout still bounds the whole run
           "--start-timeout", str(int(max(60, min(timeout_s, 600))))]
    env = {**os.environ, "QUANTLIB_SCHEDULED_JOB": job.name}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return False, f"timed out after {timeout_s:g}s"
    if rc == 0:
        return True, ""
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln and not ln.startswith(" ")]
    return False, (errors[-1] if errors else (lines[-1] if lines else f"exit status {rc}"))[:500]


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_job(job: Job, *, now: datetime | None = None, tick: datetime | None = None,
            store: StateStore | None = None, retries: int | None = None,
            sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run one job now (with retries) unless another run of it is in progress.

    Parameters
    ----------
    job : Job
    now : datetime, optional
        The clock (UTC); names the run record. Default: the real time.
    tick : datetime, optional
        The cron tick this run covers (``None`` for a manual run).
    retries : int, optional
        Override ``job.retries`` (the Kubernetes CronJob retries through ``backoffLimit``).

    Returns
    -------
    dict
        ``job, outcome ("succeeded"|"failed"|"skipped"), attempts, duration_s,
        started_at, record, records, error``.
    """
    store = store or StateStore()
    now = now or _utcnow()
    lock = JobLock(job.name, store.path.parent / "locks")
    if not lock.acquire():
        result = {"job": job.name, "outcome": "skipped", "attempts": 0, "duration_s": 0.0,
                  "started_at": _iso(now), "record": None, "records": [],
                  "error": f"already running (pid {lock.holder()})"}
        fields: dict[str, Any] = {"last_skip": _iso(now), "last_skip_reason": result["error"]}
        if tick is not None:
            fields["last_tick"] = _iso(tick)  # like concurrencyPolicy: Forbid, a busy tick is dropped
        store.update(job.name, **fields)
        return result
    try:
        store.update(job.name, outcome="running", last_run=_iso(now), pid=os.getpid())
        total = job.retries if retries is None else retries
        runs_dir = store.path.parent / "runs" / job.name
        started = time.monotonic()
        records: list[str] = []
        ok, error = False, ""
        for attempt in range(total + 1):
            if attempt:
                sleep(job.retry_delay_s)
            suffix = f"-retry{attempt}" if attempt else ""
            record = runs_dir / f"{_stamp(now)}{suffix}.ipynb"
            ok, error = execute_notebook(job, record, timeout_s=job.timeout_s)
            records.append(str(record))
            if ok:
                break
        duration = round(time.monotonic() - started, 3)
        result = {"job": job.name, "outcome": "succeeded" if ok else "failed",
                  "attempts": len(records), "duration_s": duration, "started_at": _iso(now),
                  "record": records[-1], "records": records, "error": error or None}
        fields = {"outcome": result["outcome"], "duration_s": duration,
                  "attempts": len(records), "record": records[-1], "error": error or None,
                  "next_run": _iso(next_tick(job.cron, now)), "pid": None}
        if tick is not None:
            fields["last_tick"] = _iso(tick)
        store.update(job.name, **fields)
        return result
    finally:
        lock.release()


def run_due(jobs: Iterable[Job], *, now: datetime | None = None,
            store: StateStore | None = None,
            sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """Run every due job once, one after another (see :func:`due_jobs`)."""
    store = store or StateStore()
    now = now or _utcnow()
    return [run_job(job, now=now, tick=tick, store=store, sleep=sleep)
            for job, tick in due_jobs(jobs, store, now)]


def job_status(jobs: Iterable[Job], store: StateStore | None = None,
               now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per job for the HTTP API and ``quantlib schedule list``.

    Keys: ``job, owner, cron, notebook, last_run, outcome, duration_s, attempts,
    next_run, record, error``.
    """
    store = store or StateStore()
    now = now or _utcnow()
    state = store.all()
    rows = []
    for job in jobs:
        st = state.get(job.name, {})
        rows.append({
            "job": job.name, "owner": job.owner, "cron": job.cron,
            "notebook": job.notebook_rel or str(job.notebook), "enabled": job.enabled,
            "last_run": st.get("last_run"), "outcome": st.get("outcome"),
            "duration_s": st.get("duration_s"), "attempts": st.get("attempts"),
            "next_run": _iso(next_tick(job.cron, now)) if job.enabled else None,
            "record": st.get("record"), "error": st.get("error"),
        })
    return rows


def runs_folder() -> Path:
    """``$QUANTLIB_HOME/schedule/runs`` (records of executed notebooks)."""
    return schedule_home() / "runs"
