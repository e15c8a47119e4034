"""``quantlib schedule``: list, run, serve and render the scheduled notebook jobs."""

from __future__ import annotations

from pathlib import Path

import click

from quantlib.errors import ScheduleError

__all__ = ["schedule"]

_SCHEDULES = click.option("--schedules", "schedules", type=click.Path(dir_okay=False),
                          default=None, help="Jobs file [default: QUANTLIB_SCHEDULES or "
                          "catalogs/schedules.yaml].")


def _path(schedules: str | None) -> Path:
    from quantlib.schedule.jobs import default_schedules_path

    return Path(schedules) if schedules else default_schedules_path()


@click.group()
def schedule() -> None:
    """Scheduled notebook jobs (catalogs/schedules.yaml)."""


@schedule.command("list")
@_SCHEDULES
def list_cmd(schedules: str | None) -> None:
    """Show each job with its last run, outcome, duration and next run."""
    from quantlib.schedule.jobs import load_schedules
    from quantlib.schedule.runner import job_status

    rows = job_status(load_schedules(_path(schedules)).values())
    click.echo(f"{'job':<22} {'owner':<11} {'cron':<16} {'outcome':<10} {'duration_s':>10}  "
               "next_run")
    for r in rows:
        dur = "" if r["duration_s"] is None else f"{r['duration_s']:.1f}"
        click.echo(f"{r['job']:<22} {r['owner']:<11} {r['cron']:<16} "
                   f"{r['outcome'] or '-':<10} {dur:>10}  {r['next_run'] or '-'}")


@schedule.command("run")
@click.argument("job")
@_SCHEDULES
@click.option("--retries", type=int, default=None, help="Override the job's retries.")
def run_cmd(job: str, schedules: str | None, retries: int | None) -> None:
    """Run JOB now (papermill), keeping the executed notebook as the run record."""
    from quantlib.schedule.jobs import load_schedules
    from quantlib.schedule.runner import run_job

    path = _path(schedules)
    jobs = load_schedules(path)
    if job not in jobs:
        raise ScheduleError("the job must be defined in the schedules file", found=repr(job),
                            fix="use one of: " + ", ".join(sorted(jobs)), file=str(path),
                            job=job)
    result = run_job(jobs[job], retries=retries)
    click.echo(f"{job}: {result['outcome']} after {result['attempts']} attempt(s) in "
               f"{result['duration_s']:.1f}s; record: {result['record']}")
    if result["outcome"] == "skipped":
        raise ScheduleError("the job must not already be running", found=result["error"],
                            fix="wait for the running one to finish", job=job)
    if result["outcome"] != "succeeded":
        raise ScheduleError("the scheduled notebook must run to completion",
                            found=result["error"], fix=f"open the run record {result['record']}",
                            job=job)


@schedule.command("serve")
@_SCHEDULES
@click.option("--host", default=None, help="Bind address [default: from JUPYTERHUB_SERVICE_URL "
              "or 127.0.0.1].")
@click.option("--port", type=int, default=None)
@click.option("--tick-seconds", type=float, default=30.0, show_default=True)
def serve_cmd(schedules: str | None, host: str | None, port: int | None,
              tick_seconds: float) -> None:
    """Run due jobs and serve their state over HTTP (a hub-managed service)."""
    import logging

    from quantlib.schedule.service import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(_path(schedules), host=host, port=port, tick_seconds=tick_seconds)


@schedule.command("render-k8s")
@_SCHEDULES
@click.option("--output", type=click.Path(dir_okay=False),
              default="hub-config/k8s/rendered/cronjobs.yaml", show_default=True)
@click.option("--image", default=None, help="Single-user image [default: DEFAULT_IMAGE].")
@click.option("--namespace", default=None)
def render_cmd(schedules: str | None, output: str, image: str | None,
               namespace: str | None) -> None:
    """Write the jobs as Kubernetes CronJobs."""
    from quantlib.schedule.render import DEFAULT_IMAGE, write_cronjobs

    out = write_cronjobs(_path(schedules), output, image=image or DEFAULT_IMAGE,
                         namespace=namespace)
    click.echo(f"wrote {out}")
