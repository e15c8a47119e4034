"""Start, find and stop the local hub process.

``start_hub`` runs ``jupyterhub -f hub-config/jupyterhub_config.py`` in its own session,
output to ``hub.log``, and records ``hub.json`` (pid, port, URL, run id, start time).
Every process the platform starts (proxy, services, single-user servers, their kernels
and Dask workers) carries ``QUANTLIB_PLATFORM_RUN=<run id>`` in its environment, so
``stop_hub`` can first let the hub shut down what it started and then end whatever is
left, by that id and nothing broader.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import requests

from quantlib.errors import ConfigError, QuantlibError
from quantlib.platform.accounts import secure_state
from quantlib.platform.hubconfig import proxy_command
from quantlib.platform.settings import HUB_CONFIG_DIR, PlatformPaths, load_spec

__all__ = ["HubState", "running_hub", "healthy", "start_hub", "stop_hub", "platform_processes",
           "hub_command", "hub_environment"]

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


def _alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def running_hub(paths: PlatformPaths) -> HubState | None:
    """The recorded hub if its process is alive and is a JupyterHub, else ``None``."""
    state = HubState.load(paths)
    if state is None or not _alive(state.pid):
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
            paths.state_file.unlink(missing_ok=True)
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


def stop_hub(paths: PlatformPaths, timeout: float = 30.0) -> list[int]:
    """Stop the hub (which stops its proxy, services and servers), then any straggler.

    Returns the pids that had to be terminated after the hub was gone.
    """
    state = HubState.load(paths)
    if state is None:
        return []
    if _alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(state.pid) and time.monotonic() < deadline:
            _reap(state.pid)
            time.sleep(0.2)
        if _alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
        _reap(state.pid)
    leftovers = platform_processes(state.run_id)
    for proc in leftovers:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _gone, alive = psutil.wait_procs(leftovers, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    for path in (paths.state_file, paths.pid_file, paths.proxy_pid_file):
        path.unlink(missing_ok=True)
    return [p.pid for p in leftovers]
