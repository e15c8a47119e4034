"""Scheduled notebook jobs: ``catalogs/schedules.yaml``, the runner service, CronJobs.

The jobs file is the one source of truth: locally ``quantlib schedule serve`` (a
hub-managed service) runs due notebooks with papermill and keeps each executed
notebook as the run record; on Kubernetes :func:`render_cronjobs` turns the same
file into CronJobs.
"""

from quantlib.schedule.jobs import Job, load_schedules, next_tick, previous_tick
from quantlib.schedule.render import cronjob_for, render_cronjobs, write_cronjobs
from quantlib.schedule.runner import due_jobs, execute_notebook, job_status, run_due, run_job
from quantlib.schedule.service import SchedulerService, make_app, serve
from quantlib.schedule.state import JobLock, StateStore

__all__ = [
    "Job",
    "load_schedules",
    "previous_tick",
    "next_tick",
    "due_jobs",
    "run_job",
    "run_due",
    "execute_notebook",
    "job_status",
    "JobLock",
    "StateStore",
    "SchedulerService",
    "make_app",
    "serve",
    "render_cronjobs",
    "write_cronjobs",
    "cronjob_for",
]
