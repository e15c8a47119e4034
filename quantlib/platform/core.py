"""The local platform's life cycle: ``up``, ``down``, ``status``.

``up`` steps:

1. if the store has no data version yet, refresh it from the vendor sandbox
   (``quantlib.pipeline.refresh(sandbox=True)``; a warning if the pipeline is missing);
2. if a hub recorded in ``$QUANTLIB_HOME/platform/hub.json`` is alive and healthy, reuse it;
3. otherwise give the admin a random password if they have none (shown once), start the
   hub in the background and wait for its health check.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quantlib.config import load_config
from quantlib.errors import QuantlibWarning
from quantlib.platform.passwords import PasswordFile, generate_password
from quantlib.platform.process import (
    HubState,
    healthy,
    platform_processes,
    running_hub,
    start_hub,
    step,
    stop_hub,
)
from quantlib.platform.settings import PlatformPaths, load_spec, platform_paths
from quantlib.storage import resolve_location

__all__ = ["PlatformInfo", "up", "down", "status", "ensure_admin", "has_data", "refresh_data",
           "step"]


@dataclass
class PlatformInfo:
    """The outcome of :func:`up` / :func:`status`."""

    running: bool
    url: str | None = None
    pid: int | None = None
    reused: bool = False
    admin: str = "admin"
    admin_password: str | None = None  # only when just created
    start_s: float | None = None
    processes: int = 0
    users_without_password: list[str] = field(default_factory=list)
    state: HubState | None = None


def has_data() -> bool:
    """Whether the configured store already holds a curated data repository.

    Examples
    --------
    >>> import os, tempfile
    >>> old = os.environ.get("QUANTLIB_HOME")
    >>> os.environ["QUANTLIB_HOME"] = tempfile.mkdtemp()  # a fresh home: no data yet
    >>> has_data()
    False
    >>> _ = os.environ.pop("QUANTLIB_HOME") if old is None else os.environ.update(QUANTLIB_HOME=old)
    """
    fs, curated = resolve_location(load_config().store_url).open_fs("curated")
    return bool(fs.exists(curated))


def refresh_data(echo: Callable[[str], None] = print) -> bool:
    """Refresh the store from the vendor sandbox; ``False`` (and a warning) if impossible."""
    try:
        from quantlib.pipeline import refresh  # type: ignore[attr-defined]
    except ImportError as exc:
        warnings.warn(f"no data refreshed: quantlib.pipeline.refresh is not available ({exc}); "
                      "the hub starts without data. Fix: run `quantlib data refresh --sandbox` "
                      "once the pipeline is installed", QuantlibWarning, stacklevel=2)
        return False
    echo("refreshing data from the vendor sandbox (first start)...")
    result = refresh(sandbox=True)
    echo(f"data version {getattr(result, 'tag', None)} "
         f"(snapshot {getattr(result, 'snapshot_id', None)}) committed")
    return True


def ensure_admin(paths: PlatformPaths, admin: str) -> str | None:
    """Give ``admin`` a random password if they have none; returns it (else ``None``)."""
    users = PasswordFile(paths.users_file)
    if users.has(admin):
        return None
    password = generate_password()
    users.set_password(admin, password)
    return password


def up(*, port: int | None = None, config: str | Path | None = None, refresh: bool = True,
       wait_s: float = 420.0, echo: Callable[[str], None] = print) -> PlatformInfo:
    """Bring the platform up, or find it already up.

    Parameters
    ----------
    port : int, optional
        Public port (default: the configuration's ``hub.port``, 8000).
    config : path, optional
        Platform configuration (default ``hub-config/platform.yaml``).
    refresh : bool
        Refresh data from the sandbox when the store is empty.
    wait_s : float
        How long to wait for the hub's health check.
    """
    spec = load_spec(config)
    paths = platform_paths()
    known = PasswordFile(paths.users_file).names()
    missing = [u for u in spec.user_groups() if u not in known and u != spec.admin]
    with step(echo, "looking for a running hub"):
        current = running_hub(paths)
        alive = current is not None and healthy(current.url)
    if current is not None and alive:
        return PlatformInfo(True, current.url, current.pid, reused=True, admin=spec.admin,
                            users_without_password=missing, state=current)
    if current is not None:  # alive but not answering: start over
        with step(echo, f"stopping the unhealthy hub (pid {current.pid})"):
            stop_hub(paths)
    if refresh and not has_data():
        with step(echo, "refreshing data from the vendor sandbox"):
            refresh_data(echo)
    password = ensure_admin(paths, spec.admin)
    services = ", ".join(n for n, svc in spec.services.items() if svc.get("command"))
    with step(echo, f"starting the hub, its proxy and services in parallel ({services})"):
        state = start_hub(paths, port=port or spec.hub["port"], config=spec.path, wait_s=wait_s)
    return PlatformInfo(True, state.url, state.pid, admin=spec.admin, admin_password=password,
                        start_s=time.time() - state.started_at,
                        users_without_password=missing, state=state)


def down(echo: Callable[[str], None] | None = None) -> list[int]:
    """Stop the hub and everything it started; returns stragglers' pids that were ended.

    With ``echo``, each step is printed with its time.
    """
    return stop_hub(platform_paths(), echo=echo)


def status() -> PlatformInfo:
    """Whether the hub runs and answers, and how many platform processes are alive."""
    paths = platform_paths()
    current = running_hub(paths)
    if current is None:
        return PlatformInfo(False)
    return PlatformInfo(healthy(current.url), current.url, current.pid,
                        processes=len(platform_processes(current.run_id)) + 1, state=current)
