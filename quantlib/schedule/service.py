"""The scheduler service: a loop that runs due jobs and a small JSON API over HTTP.

Run as a hub-managed service (``quantlib schedule serve``), it binds the address in
``JUPYTERHUB_SERVICE_URL``, serves under ``JUPYTERHUB_SERVICE_PREFIX`` and accepts
only requests carrying a hub token or OAuth cookie allowed to access the service
(:class:`jupyterhub.services.auth.HubOAuth`; a browser without a cookie is sent
through the hub's OAuth login and back via ``<prefix>oauth_callback``). Run standalone for development it binds
loopback only and is open.

Endpoints (under the prefix):

- ``GET api/jobs`` -> JSON list, one object per job: ``job, owner, cron, notebook,
  last_run, outcome, duration_s, attempts, next_run, record, error``.
- ``GET api/jobs/<job>`` -> one of those objects.
- ``GET api/health`` -> ``{"ok": true, "jobs": n, "running": [...]}``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuthenticated
from tornado import ioloop, web

from quantlib.errors import ScheduleError
from quantlib.schedule.jobs import Job, load_schedules
from quantlib.schedule.runner import due_jobs, job_status, run_job
from quantlib.schedule.state import StateStore

__all__ = ["SchedulerService", "make_app", "serve", "service_address"]

log = logging.getLogger("quantlib.schedule")


class SchedulerService:
    """Re-reads the jobs file each tick and runs due jobs in background threads.

    Parameters
    ----------
    schedules_path : path
        The jobs file (``catalogs/schedules.yaml``).
    store : StateStore, optional
    max_parallel : int
        Jobs running at once (different jobs; one job never overlaps itself).
    """

    def __init__(self, schedules_path: str | Path, store: StateStore | None = None,
                 max_parallel: int = 2) -> None:
        self.schedules_path = Path(schedules_path)
        self.store = store or StateStore()
        self.pool = ThreadPoolExecutor(max_workers=max_parallel,
                                       thread_name_prefix="quantlib-job")
        self.running: set[str] = set()
        self._lock = threading.Lock()
        self.jobs: dict[str, Job] = load_schedules(self.schedules_path)

    def reload(self) -> dict[str, Job]:
        """Re-read the jobs file; keep the last good one if it became invalid."""
        try:
            self.jobs = load_schedules(self.schedules_path)
        except ScheduleError as exc:
            log.error("keeping the previous schedules: %s", exc)
        return self.jobs

    def tick(self, now: datetime | None = None) -> list[str]:
        """Start every due job not already running here; return their names."""
        now = now or datetime.now(UTC)
        started = []
        for job, tick in due_jobs(self.reload().values(), self.store, now):
            with self._lock:
                if job.name in self.running:
                    continue
                self.running.add(job.name)
            self.pool.submit(self._run, job, now, tick)
            started.append(job.name)
        return started

    def _run(self, job: Job, now: datetime, tick: datetime) -> None:
        try:
            result = run_job(job, now=now, tick=tick, store=self.store)
            log.info("job %s: %s after %s attempt(s), %.1fs", job.name, result["outcome"],
                     result["attempts"], result["duration_s"])
        except Exception:  # noqa: BLE001 - a crashing job must not stop the service
            log.exception("job %s crashed the runner", job.name)
        finally:
            with self._lock:
                self.running.discard(job.name)

    def status(self) -> list[dict[str, Any]]:
        """Rows of :func:`~quantlib.schedule.runner.job_status` for the current jobs."""
        return job_status(self.jobs.values(), self.store)


class _Base(HubAuthenticated, web.RequestHandler):
    def initialize(self, service: SchedulerService, hub_auth: Any) -> None:
        self.service = service
        self.use_hub = hub_auth is not None
        if hub_auth is not None:
            self.hub_auth = hub_auth

    def prepare(self) -> None:
        # under the hub: a token or OAuth cookie whose scopes allow access to this service
        if not self.use_hub or self.get_current_user():
            return
        browser = "text/html" in self.request.headers.get("Accept", "")
        if browser and "Authorization" not in self.request.headers:
            self.redirect(self.get_login_url())  # hub OAuth login, then back here
            return
        raise web.HTTPError(403, "a JupyterHub token with access to this service is required")

    def write_json(self, obj: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        msg = exc.log_message if isinstance(exc, web.HTTPError) else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": msg, "status": status_code}))


class JobsHandler(_Base):
    def get(self, name: str | None = None) -> None:
        rows = self.service.status()
        if name is None:
            self.write_json(rows)
            return
        for row in rows:
            if row["job"] == name:
                self.write_json(row)
                return
        raise web.HTTPError(404, f"no job named {name!r}")


class HealthHandler(_Base):
    def get(self) -> None:
        self.write_json({"ok": True, "jobs": len(self.service.jobs),
                         "running": sorted(self.service.running)})


def make_app(service: SchedulerService, prefix: str = "/", hub_auth: Any = None
             ) -> web.Application:
    """The tornado application serving the JSON API under ``prefix``."""
    from jupyterhub.services.auth import HubOAuthCallbackHandler

    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    kw = {"service": service, "hub_auth": hub_auth}
    oauth = [(rf"{prefix}oauth_callback", HubOAuthCallbackHandler)] if hub_auth else []
    return web.Application([
        *oauth,
        (rf"{prefix}api/jobs/?", JobsHandler, kw),
        (rf"{prefix}api/jobs/([a-z0-9-]+)", JobsHandler, kw),
        (rf"{prefix}api/health", HealthHandler, kw),
        (rf"{prefix}?", web.RedirectHandler, {"url": f"{prefix}api/jobs"}),
    ], cookie_secret=_cookie_secret(service.store.path.parent / "cookie_secret"))


def _cookie_secret(path: Path) -> bytes:
    """Signing key of the OAuth cookies, kept (mode 0600) so a restart keeps sessions."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32).hex().encode())
    return path.read_bytes().strip()


def service_address(environ: dict[str, str] | None = None, host: str | None = None,
                    port: int | None = None) -> tuple[str, int, str, bool]:
    """(host, port, prefix, under_hub) from the hub's environment or the arguments.

    Examples
    --------
    >>> service_address({"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
    ...                  "JUPYTERHUB_SERVICE_PREFIX": "/services/scheduler/",
    ...                  "JUPYTERHUB_API_TOKEN": "x"})
    ('127.0.0.1', 10101, '/services/scheduler/', True)
    >>> service_address({}, port=8765)
    ('127.0.0.1', 8765, '/', False)
    """
    env = os.environ if environ is None else environ
    under_hub = bool(env.get("JUPYTERHUB_API_TOKEN"))
    url = urlparse(env.get("JUPYTERHUB_SERVICE_URL", ""))
    h = host or url.hostname or "127.0.0.1"
    p = port if port is not None else (url.port or 8765)
    if not under_hub and h not in ("127.0.0.1", "localhost", "::1"):
        raise ScheduleError("without the hub the scheduler API is open, so it binds loopback only",
                            found=f"host {h}", fix="run it as a hub service or use 127.0.0.1",
                            field="host")
    return h, p, env.get("JUPYTERHUB_SERVICE_PREFIX", "/"), under_hub


def serve(schedules_path: str | Path, *, host: str | None = None, port: int | None = None,
          tick_seconds: float = 30.0) -> None:
    """Run the scheduler loop and the HTTP API until interrupted."""
    h, p, prefix, under_hub = service_address(host=host, port=port)
    service = SchedulerService(schedules_path)
    hub_auth = None
    if under_hub:
        from jupyterhub.services.auth import HubOAuth

        hub_auth = HubOAuth.instance()
    app = make_app(service, prefix, hub_auth)
    app.listen(p, address=h)
    log.info("scheduler serving %d job(s) at http://%s:%d%s (hub auth: %s)", len(service.jobs),
             h, p, prefix, under_hub)
    loop = ioloop.IOLoop.current()

    def _tick() -> None:
        loop.run_in_executor(None, service.tick)

    ioloop.PeriodicCallback(_tick, tick_seconds * 1000).start()
    loop.add_callback(_tick)
    loop.start()
