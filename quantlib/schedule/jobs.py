"""The jobs file (``catalogs/schedules.yaml``): load, validate, compute ticks.

Every job names a notebook, its papermill parameters, a five-field cron expression
(UTC), how often a failed run is retried, a timeout, and the hub group that owns it.
A file that breaks the schema raises :class:`~quantlib.errors.ScheduleError` naming
the job and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from croniter import croniter

from quantlib.errors import ScheduleError
from quantlib.yamlfile import load_schema, load_yaml

__all__ = ["Job", "load_schedules", "default_schedules_path", "previous_tick", "next_tick",
           "SCHEDULES_SCHEMA_PATH"]

SCHEDULES_SCHEMA_PATH = Path(__file__).with_name("schedules.schema.json")


@cache
def _schema() -> dict[str, Any]:
    return load_schema(SCHEDULES_SCHEMA_PATH)


@dataclass(frozen=True)
class Job:
    """One scheduled notebook job (see ``schedules.schema.json``)."""

    name: str
    cron: str
    notebook: Path
    owner: str
    parameters: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    retry_delay_s: float = 60.0
    timeout_s: int = 3600
    description: str = ""
    enabled: bool = True
    notebook_rel: str = ""


def default_schedules_path() -> Path:
    """The jobs file: ``QUANTLIB_SCHEDULES``, else ``catalogs/schedules.yaml`` in the
    working directory, else the one in the source checkout quantlib was imported from.

    Examples
    --------
    >>> default_schedules_path().name
    'schedules.yaml'
    """
    import os

    if os.environ.get("QUANTLIB_SCHEDULES"):
        return Path(os.environ["QUANTLIB_SCHEDULES"])
    here = Path("catalogs/schedules.yaml")
    if here.exists():
        return here
    checkout = Path(__file__).resolve().parents[2] / "catalogs" / "schedules.yaml"
    return checkout if checkout.exists() else here


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def previous_tick(cron: str, now: datetime) -> datetime:
    """The latest cron tick at or before ``now`` (UTC).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> previous_tick("0 6 * * *", datetime(2026, 3, 4, 5, 0, tzinfo=UTC)).isoformat()
    '2026-03-03T06:00:00+00:00'
    >>> previous_tick("0 6 * * *", datetime(2026, 3, 4, 6, 0, tzinfo=UTC)).isoformat()
    '2026-03-04T06:00:00+00:00'
    """
    now = _aware(now)
    it = croniter(cron, now)
    if croniter.match(cron, now):
        return now.replace(second=0, microsecond=0)
    return it.get_prev(datetime)


def next_tick(cron: str, now: datetime) -> datetime:
    """The first cron tick strictly after ``now`` (UTC).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> next_tick("0 6 * * 1", datetime(2026, 3, 4, 5, 0, tzinfo=UTC)).isoformat()
    '2026-03-09T06:00:00+00:00'
    """
    return croniter(cron, _aware(now)).get_next(datetime)


def _locate(where: list[str]) -> dict[str, Any]:
    """Error context of a schema break: the job and the field within it."""
    job = where[1] if len(where) > 1 and where[0] == "jobs" else None
    fieldname = ".".join(where[2:]) if job else ".".join(where) or "<root>"
    return {"job": job, "field": fieldname or "<job>"}


def load_schedules(path: str | Path | None = None) -> dict[str, Job]:
    """Load and validate the jobs file; return ``{name: Job}``.

    Raises
    ------
    ScheduleError
        On a missing file, bad YAML, a schema violation or an invalid cron
        expression; the message names the file, the job and the field.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.yaml"
    >>> _ = p.write_text("jobs:\\n  nightly:\\n    cron: '0 1 * * *'\\n"
    ...                  "    notebook: nb.ipynb\\n    owner: data-team\\n    retries: eleven\\n")
    >>> load_schedules(p)
    Traceback (most recent call last):
    ...
    quantlib.errors.ScheduleError: the schedules file must match its schema; found 'eleven' is not of type 'integer' [file=.../s.yaml, field=retries, job=nightly]. Fix: see quantlib/schedule/schedules.schema.json
    """
    p = Path(path) if path is not None else default_schedules_path()
    raw = load_yaml(p, _schema(), what="the schedules file", error=ScheduleError,
                    fix="see quantlib/schedule/schedules.schema.json",
                    fix_missing="create it or set QUANTLIB_SCHEDULES", locate=_locate)
    root = (p.parent / raw.get("notebook_root", "..")).resolve()
    jobs: dict[str, Job] = {}
    for name, spec in (raw.get("jobs") or {}).items():
        if not croniter.is_valid(spec["cron"]) or len(spec["cron"].split()) != 5:
            raise ScheduleError("cron must be a five-field cron expression",
                                found=repr(spec["cron"]), fix="e.g. '30 23 * * 1-5' (UTC)",
                                file=str(p), job=name, field="cron")
        jobs[name] = Job(
            name=name, cron=spec["cron"], notebook=root / spec["notebook"],
            notebook_rel=spec["notebook"], owner=spec["owner"],
            parameters=dict(spec.get("parameters") or {}), retries=spec.get("retries", 0),
            retry_delay_s=float(spec.get("retry_delay_s", 60)),
            timeout_s=spec.get("timeout_s", 3600), description=spec.get("description", ""),
            enabled=spec.get("enabled", True))
    return jobs
