"""A real JupyterHub rendered from ``hub-config/platform.yaml``, for tests and benchmarks.

The hub is configured by the platform's own code: :func:`render` runs
:func:`quantlib.platform.hubconfig.configure` (what ``hub-config/jupyterhub_config.py``
and ``quantlib platform up`` run) in a subprocess with the dev hub's environment, so the
groups, roles, scopes, services and authenticator tested are the shipped ones. The
rendered configuration is written as JSON (data) and started with
``python -m quantlib.platform.hubapp -f <config>``. What differs from ``platform up``:

- the state folder is ``<QUANTLIB_HOME>/platform`` of a temporary home;
- the test users of :data:`USERS` are added the way ``quantlib platform users add``
  adds users (``added_users.json``), each with one random password per start;
- only the services asked for run (``dashboards``, ``results-api``; not the scheduler
  nor the idle culler), with extra environment (e.g. ``REDIS_URL``);
- a ``test-admin`` service whose token mints user tokens;
- after login every user lands on the hub's ``landing_without_server`` (the dev hub
  starts no notebook servers).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from quantlib.errors import ConfigError
from quantlib.platform.hubconfig import free_port

__all__ = ["DevHub", "start_dev_hub", "render", "wait_http", "USERS"]

#: test users -> their platform.yaml groups (eve is allowed to log in but in no group)
USERS = {"ann": ["researchers"], "bob": ["researchers"], "mo": ["managers"], "eve": []}
ADMIN_SERVICE = "test-admin"


def wait_http(url: str, *, timeout: float = 60.0, ok: tuple[int, ...] = (200,),
              proc: subprocess.Popen[bytes] | None = None, headers: dict[str, str] | None = None
              ) -> requests.Response:
    """Poll ``url`` until it answers one of ``ok`` (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigError("server process must stay up", found=f"exit {proc.returncode}",
                              fix="read its log", file=url)
        try:
            r = requests.get(url, timeout=5, allow_redirects=False, headers=headers)
            if r.status_code in ok:
                return r
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise ConfigError("server must answer in time", found=last, fix="read its log", file=url)


@dataclass
class DevHub:
    """A running development hub (see :func:`start_dev_hub`)."""

    url: str
    password: str
    admin_token: str
    workdir: Path
    proc: subprocess.Popen[bytes]
    service_ports: dict[str, int] = field(default_factory=dict)
    run_id: str = ""

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        """Call the hub REST API (``/hub/api/<path>``) as the admin service."""
        return requests.request(method, f"{self.url}/hub/api/{path.lstrip('/')}",
                                headers={"Authorization": f"token {self.admin_token}"},
                                timeout=30, **kw)

    def user_token(self, name: str) -> str:
        """A fresh API token for user ``name`` (creating the user if needed)."""
        self.api("POST", f"users/{name}")
        r = self.api("POST", f"users/{name}/tokens", json={"note": "test", "expires_in": 3600})
        r.raise_for_status()
        return str(r.json()["token"])

    def service_url(self, name: str) -> str:
        """The service's public URL through the proxy."""
        return f"{self.url}/services/{name}/"

    def log(self) -> str:
        """The hub's log so far."""
        return (self.workdir / "jupyterhub.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop the hub and its managed services, then any process of this run left over.

        The hub stops its proxy and services itself, except when it is stopped while
        still starting them; every one of them carries this start's
        ``QUANTLIB_PLATFORM_RUN``, which finds the stragglers (as ``platform down`` does).
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.run_id:
            import psutil

            from quantlib.platform.process import platform_processes

            left = platform_processes(self.run_id)
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
            for proc in psutil.wait_procs(left, timeout=10)[1]:
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def render(services: tuple[str, ...], admin_token: str, password: str,
           extra_env: dict[str, str]) -> dict[str, Any]:
    """The hub configuration ``configure`` makes of platform.yaml, cut down for tests.

    Runs in the hub's environment (``QUANTLIB_HOME``, ``QUANTLIB_RESULTS``,
    ``QUANTLIB_PLATFORM_PORT``, ...): adds the :data:`USERS` with ``password``, keeps
    ``services`` only (their environment extended by ``extra_env``) and adds the
    ``test-admin`` service.
    """
    from traitlets.config import Config

    from quantlib.platform.hubconfig import configure
    from quantlib.platform.passwords import PasswordFile
    from quantlib.platform.settings import added_users_file, load_spec, platform_paths

    added = added_users_file()
    added.parent.mkdir(parents=True, exist_ok=True)
    added.write_text(json.dumps([{"name": u, "groups": g} for u, g in USERS.items()]))
    passwords = PasswordFile(platform_paths().users_file)
    for name in USERS:
        passwords.set_password(name, password)
    c = Config()
    configure(c)
    hub = c.JupyterHub
    kept = [s for s in hub.services if s["name"] in services]
    for svc in kept:
        svc["environment"].update(extra_env)
    hub.services = [*kept, {"name": ADMIN_SERVICE, "api_token": admin_token}]
    hub.load_roles = [r for r in hub.load_roles
                      if not set(r.get("services", [])) - set(services)] + [
        {"name": ADMIN_SERVICE, "services": [ADMIN_SERVICE],
         "scopes": ["admin:users", "tokens", "read:users", "admin:groups"]}]
    hub.default_url = load_spec().hub["landing_without_server"]
    plain: dict[str, Any] = json.loads(json.dumps(
        c, default=lambda v: sorted(v) if isinstance(v, set) else str(v)))
    return plain


def _hub_env(wd: Path, results_url: str, env: dict[str, str] | None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTERHUB_", "QUANTLIB_PLATFORM_"))}
    out.update({"QUANTLIB_HOME": os.environ.get("QUANTLIB_HOME", str(wd / "home")),
                **(env or {}), "QUANTLIB_RESULTS": results_url,
                "QUANTLIB_PLATFORM_PORT": str(free_port()),
                "QUANTLIB_PLATFORM_RUN": f"devhub-{secrets.token_hex(4)}"})
    return out


def start_dev_hub(workdir: str | os.PathLike[str], *, attempts: int = 3, **kw: Any) -> DevHub:
    """Start a development hub; see :func:`_start_once` for the parameters.

    Free ports are picked before the hub binds them, so another process on a busy
    machine can take one first: a start that dies that way is retried with new ports.
    """
    for attempt in range(attempts):
        try:
            return _start_once(workdir, **kw)
        except ConfigError:
            log_text = (Path(workdir) / "jupyterhub.log").read_text(errors="replace")
            # a port taken by another process first, or the proxy slower to bind than
            # the hub's fixed 10 s wait (a loaded machine): retried with new ports
            clash = any(m in log_text for m in ("EADDRINUSE", "Address already in use",
                                                "Failed to start proxy"))
            if attempt + 1 == attempts or not clash:
                raise
    raise ConfigError("the dev hub must start", found=f"{attempts} failed attempts",
                      fix="read jupyterhub.log", file=str(workdir))


def _start_once(workdir: str | os.PathLike[str], *, results_url: str,
                env: dict[str, str] | None = None,
                services: tuple[str, ...] = ("dashboards", "results-api"),
                wait_services: tuple[str, ...] = ("results-api",),
                timeout: float = 180.0) -> DevHub:
    """Start a development hub in ``workdir``; return once it and ``wait_services`` answer.

    Parameters
    ----------
    workdir : path
        Folder for the rendered config and the log (the hub's state goes to
        ``<QUANTLIB_HOME>/platform``, ``QUANTLIB_HOME`` defaulting to ``workdir/home``).
    results_url : str
        Results store the services read (``QUANTLIB_RESULTS``).
    env : dict, optional
        Environment of the hub and extra environment of the managed services (e.g.
        ``REDIS_URL``, ``QUANTLIB_STORE``, ``QUANTLIB_WHATIF_RUNNER``).
    services : tuple of str
        Which of platform.yaml's services the hub manages.
    wait_services : tuple of str
        Services whose health to wait for.
    """
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    password, admin_token = secrets.token_urlsafe(12), secrets.token_hex(24)
    hub_env = _hub_env(wd, results_url, env)
    extra = {k: v for k, v in hub_env.items() if k.startswith("QUANTLIB_")
             and not k.startswith("QUANTLIB_PLATFORM_")}
    extra.update(env or {})
    request = wd / "dev_hub_request.json"
    request.write_text(json.dumps({"services": list(services), "admin_token": admin_token,
                                   "password": password, "extra_env": extra}))
    request.chmod(0o600)
    cfg_path = wd / "dev_hub_config.json"
    subprocess.run([sys.executable, "-m", "quantlib.testing.devhub", str(request),
                    str(cfg_path)], env=hub_env, check=True, timeout=120)
    cfg = json.loads(cfg_path.read_text())
    port = int(cfg["JupyterHub"]["port"])
    service_ports = {s["name"]: int(s["url"].rsplit(":", 1)[1])
                     for s in cfg["JupyterHub"]["services"] if s.get("url")}
    log = open(wd / "jupyterhub.log", "wb")  # noqa: SIM115 - lives as long as the hub
    proc = subprocess.Popen([sys.executable, "-m", "quantlib.platform.hubapp", "-f",
                             str(cfg_path)],
                            cwd=wd, stdout=log, stderr=subprocess.STDOUT, env=hub_env,
                            start_new_session=True)
    hub = DevHub(f"http://127.0.0.1:{port}", password, admin_token, wd, proc, service_ports,
                 hub_env["QUANTLIB_PLATFORM_RUN"])
    try:
        wait_http(f"{hub.url}/hub/api/", timeout=timeout, proc=proc)
        for name in wait_services:
            path = "health" if name == "results-api" else "liveness"
            wait_http(f"http://127.0.0.1:{service_ports[name]}/services/{name}/{path}",
                      timeout=timeout, proc=proc)
    except Exception:
        hub.stop()
        raise
    return hub


def _main(request: str, out: str) -> None:
    """``python -m quantlib.testing.devhub REQUEST OUT``: :func:`render` into ``OUT``."""
    req = json.loads(Path(request).read_text())
    cfg = render(tuple(req["services"]), req["admin_token"], req["password"],
                 req["extra_env"])
    Path(out).write_text(json.dumps(cfg, indent=1))
    Path(out).chmod(0o600)


if __name__ == "__main__":
    _main(*sys.argv[1:3])
