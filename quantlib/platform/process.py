"""Start, find and stop the local hub process.

``start_hub`` runs ``jupyterhub -f hub-config/jupyterhub_config.py`` in its own session,
output to ``hub.log``, and records ``hub.json`` (pid, port, URL, run id, start time).
Every process the platform starts (proxy, services, single-user servers, their kernels
and Dask workers) carries ``QUANTLIB_PLATFORM_RUN=<run id>`` in its environment, so
``stop_hub`` finds them by that id and nothing broader. It ends the services, servers,
kernels and workers all at once (SIGTERM, a 3 s grace, SIGKILL) while the hub is paused
(JupyterHub restarts a managed service it sees exit, and stops its services one after
another, each with up to 20 s of signal time-outs), then stops the hub, which stops its
proxy, then ends any straggler; each step is printed with its time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import requests

from quantlib.errors import ConfigError, QuantlibError
from quantlib.platform.accounts import secure_state
from quantlib.platform.hubconfig import proxy_command
from quantlib.platform.settings import HUB_CONFIG_DIR, PlatformPaths, load_spec

__all__ = ["HubState", "running_hub", "healthy", "start_hub", "stop_hub", "platform_processes",
           "hub_command", "hub_environment", "pid_alive", "step"]

RUN_VAR = "QUANTLIB_PLATFORM_RUN"


@dataclass(frozen=True)
class HubState:
    """What ``hub.json`` records about a started hub."""

    pid: int
    port: int
    url: str
    run_id: str
    started_at: float
    config: str
    log: str

    def save(self, paths: PlatformPaths) -> None:
        paths.root.mkdir(parents=True, exist_ok=True)
        tmp = paths.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, paths.state_file)

    @classmethod
    def load(cls, paths: PlatformPaths) -> HubState | None:
        try:
            return cls(**json.loads(paths.state_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs (a zombie waiting to be reaped counts as dead).

    A process of another account counts as alive (``kill(pid, 0)`` is refused, not
    answered "no such process").

    Examples
    --------
    >>> pid_alive(os.getpid()), pid_alive(None), pid_alive(0)
    (True, False, False)
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def running_hub(paths: PlatformPaths) -> HubState | None:
    """The recorded hub if its process is alive and is a JupyterHub, else ``None``."""
    state = HubState.load(paths)
    if state is None or not pid_alive(state.pid):
        return None
    try:
        cmdline = " ".join(psutil.Process(state.pid).cmdline())
    except psutil.Error:
        return None
    return state if "jupyterhub" in cmdline else None


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether the hub answers ``<url>hub/health`` with 200 through the proxy."""
    try:
        return requests.get(f"{url}hub/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def _port_taken(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((ip if ip not in ("0.0.0.0", "") else "127.0.0.1", port)) == 0


def hub_command() -> list[str]:
    """The command line that starts the hub with the platform's configuration."""
    return [sys.executable, "-m", "quantlib.platform.hubapp", "-f",
            str(HUB_CONFIG_DIR / "jupyterhub_config.py")]


def hub_environment(port: int, config: Path, run_id: str, home: Path) -> dict[str, str]:
    """The hub's environment: ours plus what ``hub-config/jupyterhub_config.py`` reads."""
    env = dict(os.environ)
    env.update({"QUANTLIB_HOME": str(home), "QUANTLIB_PLATFORM_CONFIG": str(config),
                "QUANTLIB_PLATFORM_PORT": str(port), RUN_VAR: run_id,
                "PYTHONUNBUFFERED": "1"})
    return env


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def start_hub(paths: PlatformPaths, *, port: int, config: Path | None = None,
              wait_s: float = 420.0) -> HubState:
    """Start the hub in the background and wait until it answers its health check.

    Raises
    ------
    ConfigError
        If the configuration is invalid, configurable-http-proxy is missing, or the port
        is taken by something else.
    QuantlibError
        If the hub exits or stays unhealthy for ``wait_s`` (the message ends with the
        log's last lines).
    """
    spec = load_spec(config)
    proxy_command()
    ip = spec.hub["ip"]
    if _port_taken(ip, port):
        raise ConfigError("the hub's port must be free", found=f"something listens on {port}",
                          fix="stop it or pass --port", field="port")
    home = paths.root.parent.resolve()
    paths.root.mkdir(parents=True, exist_ok=True)
    run_id = secrets.token_hex(8)
    host = "127.0.0.1" if ip in ("0.0.0.0", "::", "localhost") else ip
    url = f"http://{host}:{port}/" if ":" not in host else f"http://[{host}]:{port}/"
    secure_state(paths.root)  # hub state: the hub's account only (docs/security.md)
    log = os.fdopen(os.open(paths.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    try:
        proc = subprocess.Popen(hub_command(), cwd=paths.root, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=hub_environment(port, spec.path.resolve(), run_id, home),
                                start_new_session=True)
    finally:
        log.close()
    state = HubState(pid=proc.pid, port=port, url=url, run_id=run_id, started_at=time.time(),
                     config=str(spec.path.resolve()), log=str(paths.log_file))
    state.save(paths)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_hub(paths)  # its proxy or services may have started before it died
            raise QuantlibError("the hub must start", found=f"it exited with {proc.returncode}",
                                fix=f"read {paths.log_file}:\n{_log_tail(paths.log_file)}")
        if healthy(url, timeout=1.0):
            return state
        time.sleep(0.5)
    stop_hub(paths)
    raise QuantlibError("the hub must answer its health check",
                        found=f"no answer at {url}hub/health after {wait_s:.0f} s",
                        fix=f"read {paths.log_file}:\n{_log_tail(paths.log_file)}")


def platform_processes(run_id: str) -> list[psutil.Process]:
    """Live processes carrying ``QUANTLIB_PLATFORM_RUN=<run_id>`` (this user's only)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(RUN_VAR) == run_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@contextlib.contextmanager
def step(echo: Callable[[str], None], what: str) -> Iterator[None]:
    """Print ``what`` as it starts and ``... done in N s`` (or ``failed``) as it ends.

    Examples
    --------
    >>> with step(print, "checking"):
    ...     pass  # doctest: +ELLIPSIS
    checking ...
      checking: done in 0.0 s
    """
    echo(f"{what} ...")
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        echo(f"  {what}: FAILED after {time.perf_counter() - started:.1f} s")
        raise
    echo(f"  {what}: done in {time.perf_counter() - started:.1f} s")


def _quiet(_text: str) -> None:
    return None


def _end(procs: list[psutil.Process], grace_s: float) -> list[psutil.Process]:
    """SIGTERM all of ``procs`` at once, SIGKILL those alive after ``grace_s``; the killed."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=2.0)
    return alive


def _label(proc: psutil.Process, hub_pid: int) -> str:
    """``service NAME`` / ``server of USER`` for the hub's direct children, else ``""``."""
    try:
        if proc.ppid() != hub_pid:
            return ""
        env = proc.environ()
    except psutil.Error:
        return ""
    if env.get("JUPYTERHUB_SERVICE_NAME"):
        return f"service {env['JUPYTERHUB_SERVICE_NAME']}"
    if env.get("JUPYTERHUB_USER"):
        return f"server of {env['JUPYTERHUB_USER']}"
    return ""


def _stop_children(state: HubState, echo: Callable[[str], None], grace_s: float) -> None:
    """End the services, servers, kernels and workers in parallel while the hub is frozen.

    The hub restarts a managed service it sees exit, so it is paused (SIGSTOP) while its
    children go and resumed afterwards; the proxy stays for the hub to stop.
    """
    frozen = _is_hub(state)
    if frozen:
        os.kill(state.pid, signal.SIGSTOP)
    try:
        procs = [p for p in platform_processes(state.run_id) if p.pid != state.pid
                 and "configurable-http-proxy" not in " ".join(_cmdline(p))]
        if not procs:
            return
        labels = {p.pid: _label(p, state.pid) for p in procs}
        named = sorted(filter(None, labels.values()))
        what = ", ".join(named) if named else "no service or server"
        shown = {p.pid: labels[p.pid] or " ".join(_cmdline(p))[-60:] for p in procs}
        with step(echo, f"stopping {len(procs)} processes in parallel ({what})"):
            killed = _end(procs, grace_s)
            if killed:
                echo(f"  killed after {grace_s:g} s: " + "; ".join(shown[p.pid] for p in killed))
    finally:
        if frozen:
            os.kill(state.pid, signal.SIGCONT)


def _is_hub(state: HubState) -> bool:
    """Whether ``state.pid`` is still that hub (not a reused pid): alive, with its run id."""
    try:
        proc = psutil.Process(state.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        try:
            return proc.environ().get(RUN_VAR) == state.run_id
        except psutil.AccessDenied:  # started in another user namespace: its command says
            return "quantlib.platform.hubapp" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def stop_hub(paths: PlatformPaths, timeout: float = 10.0, *, grace_s: float = 3.0,
             echo: Callable[[str], None] | None = None) -> list[int]:
    """Stop services and servers in parallel, then the hub and its proxy, then stragglers.

    Each step is SIGTERM, a short wait (``grace_s``; ``timeout`` for the hub), SIGKILL.
    With ``echo``, each step is printed with its time. Returns the pids that were still
    there after the hub had gone.
    """
    echo = echo or _quiet
    state = HubState.load(paths)
    if state is None:
        return []
    _stop_children(state, echo, grace_s)
    if _is_hub(state):
        with step(echo, f"stopping the hub (pid {state.pid}) and its proxy"):
            os.kill(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(state.pid) and time.monotonic() < deadline:
                _reap(state.pid)
                time.sleep(0.05)
            if pid_alive(state.pid):
                os.kill(state.pid, signal.SIGKILL)
            _reap(state.pid)
    leftovers: list[psutil.Process] = []
    for _round in range(3):  # a service the hub restarted as it went can leave children
        late = platform_processes(state.run_id)
        if not late:
            break
        leftovers += late
        with step(echo, f"ending {len(late)} leftover processes"):
            _end(late, grace_s)
    for path in (paths.state_file, paths.pid_file, paths.proxy_pid_file):
        path.unlink(missing_ok=True)
    return [p.pid for p in leftovers]
