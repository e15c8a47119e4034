"""Data-health facts for the dashboards: freshness, refresh runs, quarantine, validation, schedule.

Everything is read from the data store's documented tables (``docs/architecture.md``
"Store layout") through :mod:`quantlib.store` and :mod:`quantlib.pipeline.status`, and
from the scheduler service (``GET <hub>/services/scheduler/api/jobs``) when the hub lets
this service call it; otherwise the next runs are computed from
``catalogs/schedules.yaml`` (the schedule's one source of truth).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["DataHealth", "data_health", "refresh_runs", "delivery_states", "quarantine_reasons",
           "latest_report", "schedule_runs", "calendar_freshness", "STALE_AFTER_SESSIONS"]

#: a market is stale when this many of its sessions, known by now, are missing
STALE_AFTER_SESSIONS = 1

log = logging.getLogger(__name__)


@dataclass
class DataHealth:
    """What the data-health page shows (all frames may be empty)."""

    store: str
    versions: pd.DataFrame
    freshness: pd.DataFrame
    runs: pd.DataFrame
    quarantine: pd.DataFrame
    reasons: pd.DataFrame
    report: tuple[str, str] | None
    schedule: pd.DataFrame
    markets: pd.DataFrame = field(default_factory=pd.DataFrame)
    quarantine_rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    errors: list[str] = field(default_factory=list)


#: how far a delivery got: its manifest rows' statuses, in lifecycle order
_PROGRESS = {"fetched": 0, "standardized": 1, "quarantined": 2, "published": 3,
             "rejected": 3, "failed": 3}
#: a run's outcome is the worst state among its files
_SEVERITY = {"failed": 5, "rejected": 4, "quarantined": 3, "fetched": 2, "standardized": 2,
             "published": 1}


def delivery_states(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per delivery (fetch, source, file, content) with the state it reached.

    The manifest is append-only: a delivery gets a ``fetched`` row when it arrives and a
    later row for each stage it reaches (``standardized``, ``quarantined``, then
    ``published``, ``rejected`` or ``failed``). Its state is the furthest stage recorded
    (the worst, if two end states were recorded).

    Examples
    --------
    >>> m = pd.DataFrame({"fetch_id": "a", "source": "ftp-kr", "market": "KR",
    ...                   "file": ["x", "x", "y"], "sha256": "0",
    ...                   "fetched_at": pd.Timestamp("2025-01-01"), "rows": [10, 10, 5],
    ...                   "status": ["fetched", "published", "fetched"]})
    >>> delivery_states(m)[["file", "rows", "status"]].values.tolist()
    [['x', 10, 'published'], ['y', 5, 'fetched']]
    """
    keys = [k for k in ("market", "source", "fetch_id", "file", "sha256") if k in manifest]
    m = manifest.assign(_progress=manifest["status"].map(_PROGRESS).fillna(0),
                        _severity=manifest["status"].map(_SEVERITY).fillna(2))
    m = m.sort_values(["_progress", "_severity"], kind="stable")
    return m.groupby(keys, as_index=False, sort=True).last().drop(
        columns=["_progress", "_severity"])


def refresh_runs(manifest: pd.DataFrame, last: int = 5) -> pd.DataFrame:
    """The last ``last`` fetch runs per market and source, with their outcome.

    Each delivery counts once, in the state it reached (:func:`delivery_states`), so a
    published delivery reads ``published`` although its ``fetched`` row is still in the
    manifest. The outcome of a run is the worst state among its files (``failed`` >
    ``rejected`` > ``quarantined`` > ``fetched``/``standardized``, i.e. not finished, >
    ``published``).

    Examples
    --------
    >>> m = pd.DataFrame({"fetch_id": ["a", "a", "a", "b", "b"], "market": "KR",
    ...                   "source": "ftp-kr", "file": ["x", "y", "x", "z", "z"],
    ...                   "sha256": "0", "rows": [10, 5, 10, 7, 7],
    ...                   "fetched_at": pd.to_datetime(["2025-01-01"] * 3 + ["2025-01-02"] * 2),
    ...                   "status": ["fetched", "rejected", "published", "fetched", "published"]})
    >>> refresh_runs(m)[["fetch_id", "files", "rows", "outcome"]].values.tolist()
    [['b', 1, 7, 'published'], ['a', 2, 15, 'rejected']]
    """
    cols = ["market", "source", "fetch_id", "fetched_at", "files", "rows", "outcome"]
    if manifest.empty:
        return pd.DataFrame(columns=cols)
    files = delivery_states(manifest)
    files["_rank"] = files["status"].map(_SEVERITY).fillna(2)
    runs = files.groupby(["market", "source", "fetch_id"], as_index=False).agg(
        fetched_at=("fetched_at", "max"), files=("status", "size"), rows=("rows", "sum"),
        _rank=("_rank", "max"))
    inverse = {v: k for k, v in reversed(list(_SEVERITY.items()))}
    runs["outcome"] = runs["_rank"].map(inverse)
    runs = runs.sort_values("fetched_at", ascending=False)
    runs = runs.groupby(["market", "source"], group_keys=False).head(last)
    return runs[cols].reset_index(drop=True)


def calendar_freshness(freshness: pd.DataFrame, now: datetime | None = None,
                       lag_minutes: int = 15) -> pd.DataFrame:
    """Per market: the last session the exchange calendar says is known by ``now``
    (its close plus the vendor lag, ``lag_minutes``) against the last session the store holds.

    ``freshness`` is :func:`quantlib.pipeline.status.status`'s frame (``market``,
    ``latest_known_at``); markets the calendar registry does not know (e.g. FX) are left
    out. ``sessions_behind`` counts the sessions known by now but not held; ``stale``
    is true from :data:`STALE_AFTER_SESSIONS` of them.

    Examples
    --------
    >>> f = pd.DataFrame({"market": ["US"], "latest_known_at":
    ...                   [pd.Timestamp("2024-12-23 21:15", tz="UTC")]})
    >>> out = calendar_freshness(f, datetime(2024, 12, 27, 23, 0, tzinfo=UTC))
    >>> out[["market", "expected_session", "held_session", "sessions_behind", "stale"]
    ...     ].values.tolist()
    [['US', '2024-12-27', '2024-12-23', 3, True]]
    """
    from quantlib.calendars import MARKETS, session_closes, sessions

    now_ts = pd.Timestamp(now or datetime.now(UTC))
    rows = []
    held_by_market = freshness.groupby("market")["latest_known_at"].max() \
        if not freshness.empty else pd.Series(dtype="datetime64[ns, UTC]")
    for code, held in held_by_market.items():
        if code not in MARKETS:
            continue
        days = sessions(str(code), now_ts - pd.Timedelta(days=60), now_ts)
        known = pd.Series(session_closes(str(code), days) + pd.Timedelta(minutes=lag_minutes),
                          index=days)
        known = known[known <= now_ts]
        if known.empty:
            continue
        held_days = known[known <= held].index if pd.notna(held) else known.index[:0]
        behind = int((known > held).sum()) if pd.notna(held) else len(known)
        rows.append({"market": code, "expected_session": str(known.index[-1].date()),
                     "held_session": str(held_days[-1].date()) if len(held_days) else "none",
                     "sessions_behind": behind, "stale": behind >= STALE_AFTER_SESSIONS})
    return pd.DataFrame(rows, columns=["market", "expected_session", "held_session",
                                       "sessions_behind", "stale"])


def quarantine_reasons(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows per market, source, check and reason (most frequent first).

    Examples
    --------
    >>> q = pd.DataFrame({"market": ["KR", "KR", "US"], "source": ["ftp-kr"] * 2 + ["api"],
    ...                   "check": ["ohlc", "ohlc", "jump"], "reason": ["high<low"] * 2 + ["x"]})
    >>> quarantine_reasons(q)["rows"].tolist()
    [2, 1]
    """
    keys = [k for k in ("market", "source", "check", "reason") if k in quarantine]
    if quarantine.empty or not keys:
        return pd.DataFrame(columns=[*keys, "rows"])
    q = quarantine
    if "severity" in q:
        q = q[q["severity"] != "info"]
    out = q.groupby(keys, dropna=False).size().rename("rows").reset_index()
    return out.sort_values("rows", ascending=False).reset_index(drop=True)


def latest_report(store: str) -> tuple[str, str] | None:
    """``(refresh_id, markdown)`` of the newest validation report, or None."""
    from quantlib.storage import resolve_location

    fs, reports = resolve_location(store).open_fs("reports")
    try:
        paths = [p for p in fs.ls(reports, detail=False)
                 if str(p).endswith(".md")]
    except FileNotFoundError:
        return None
    if not paths:
        return None
    newest = max(paths, key=lambda p: (fs.info(p).get("mtime") or 0, p))
    with fs.open(newest, "r") as fh:
        text = fh.read()
    return os.path.basename(newest).removesuffix(".md"), text


def schedule_runs(now: datetime | None = None) -> pd.DataFrame:
    """Scheduled jobs with last and next runs: scheduler service first, schedules.yaml else."""
    cols = ["job", "owner", "cron", "last_run", "outcome", "next_run", "source"]
    jobs = _scheduler_api()
    if jobs is not None:
        frame = pd.DataFrame(jobs)
        frame["source"] = "scheduler service"
        return frame.reindex(columns=cols)
    from quantlib.schedule.jobs import default_schedules_path, load_schedules, next_tick

    path = default_schedules_path()
    if not path.exists():  # a service's working directory is not the checkout
        path = Path(__file__).resolve().parents[3] / "catalogs" / "schedules.yaml"
    now = now or datetime.now(UTC)
    rows = [{"job": name, "owner": job.owner, "cron": job.cron, "last_run": None,
             "outcome": None, "next_run": next_tick(job.cron, now).isoformat(),
             "source": "schedules.yaml"} for name, job in load_schedules(path).items()]
    return pd.DataFrame(rows, columns=cols)


def _scheduler_api() -> list[dict[str, Any]] | None:
    api = os.environ.get("JUPYTERHUB_API_URL")
    token = os.environ.get("JUPYTERHUB_API_TOKEN")
    if not (api and token):
        return None
    import requests

    base = api.rstrip("/").removesuffix("/hub/api")
    url = f"{base}/services/scheduler/api/jobs"
    try:
        r = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=5)
    except requests.RequestException as exc:
        log.info("scheduler service unreachable (%s): using schedules.yaml", exc)
        return None
    if r.status_code != 200:
        log.info("scheduler service answered %s: using schedules.yaml", r.status_code)
        return None
    return list(r.json())


def data_health(store: str | None = None) -> DataHealth:
    """Gather every data-health fact for the store (default: the configured one)."""
    from quantlib.config import load_config
    from quantlib.pipeline.status import status
    from quantlib.store import read_table_files

    url = store or load_config().store_url
    errors: list[str] = []
    st = status(url)
    manifest = read_table_files(url, "manifest")
    quarantine = read_table_files(url, "quarantine")
    try:
        schedule = schedule_runs()
    except Exception as exc:  # noqa: BLE001 - shown on the page, the rest still renders
        errors.append(f"schedule: {exc}")
        schedule = pd.DataFrame()
    try:
        markets = calendar_freshness(st.freshness)
    except Exception as exc:  # noqa: BLE001 - shown on the page, the rest still renders
        errors.append(f"calendar freshness: {exc}")
        markets = pd.DataFrame()
    return DataHealth(store=url, versions=st.versions, freshness=st.freshness,
                      runs=refresh_runs(manifest), quarantine=st.quarantine,
                      reasons=quarantine_reasons(quarantine), report=latest_report(url),
                      schedule=schedule, markets=markets, errors=errors,
                      quarantine_rows=quarantine)
