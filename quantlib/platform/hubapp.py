"""JupyterHub with its managed services started in parallel.

JupyterHub 5 starts managed services one after another, waiting for each to answer
before launching the next, so the platform's start costs the sum of the services'
start times (dashboards ~22 s, results API ~13 s, scheduler ~7 s on the development
box). :class:`ParallelServicesHub` launches every service on the hub's first
``start_service`` call and waits for all of them together, so the start costs the
slowest one. Everything else is JupyterHub's own code path (each service's start, its
wait for the service's URL, the exit when a managed service fails).

Run it as ``python -m quantlib.platform.hubapp -f <config>`` (what ``platform up`` and
the development hub do).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jupyterhub.app import JupyterHub

__all__ = ["ParallelServicesHub", "main"]


class ParallelServicesHub(JupyterHub):
    """A JupyterHub whose managed services start concurrently (see the module docstring)."""

    _ql_started: dict[str, bool] | None = None

    async def init_groups(self) -> None:
        """Seed platform.yaml's groups at start although logins also set them.

        The platform's authenticator returns each user's groups at login
        (``manage_groups``), so ``quantlib platform users add`` takes effect without a
        restart; JupyterHub refuses ``load_groups`` in that mode, but the hub still needs
        the groups before anyone logs in (tokens, services, the admin page). Seeding them
        here gives both.
        """
        managed = self.authenticator.manage_groups
        self.authenticator.manage_groups = False
        try:
            await super().init_groups()
        finally:
            self.authenticator.manage_groups = managed

    async def start_service(self, service_name: str, service: Any,
                            ssl_context: Any = None) -> bool:
        """Start every service at once on the first call; answer each from that run."""
        if self._ql_started is None:
            names = list(self._service_map)
            started = time.perf_counter()
            results = await asyncio.gather(*(
                JupyterHub.start_service(self, name, self._service_map[name], ssl_context)
                for name in names))
            self._ql_started = dict(zip(names, results, strict=True))
            self.log.info("started %d services in parallel in %.1f s", len(names),
                          time.perf_counter() - started)
        return self._ql_started.get(service_name, False)


main = ParallelServicesHub.launch_instance

if __name__ == "__main__":
    main()
