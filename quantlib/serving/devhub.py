"""A small real JupyterHub with the dashboards and results API as managed services.

For tests, benchmarks and development when the platform's hub (``hub-config/``) is not
wanted. It writes a JSON traitlets config (data, not code), starts ``jupyterhub`` with
``configurable-http-proxy`` from ``hub-config/node_modules``, and registers:

- groups ``researchers``, ``managers`` and ``nobody`` with the platform's roles for the
  two services (researchers also hold ``custom:results:publish``) (``access:services!service=dashboards`` / ``results-api``); the default
  ``user`` role is trimmed so a user outside these groups reaches neither service;
- the managed services ``dashboards`` (``quantlib dashboards serve --hub``) and
  ``results-api`` (``quantlib dashboards api --hub``);
- an admin service whose token tests use to mint user tokens.

Login uses JupyterHub's ``SharedPasswordAuthenticator`` with one random password per start:
this is a loopback-only development hub, never a deployment.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from quantlib.errors import ConfigError

__all__ = ["DevHub", "start_dev_hub", "free_port", "chp_command", "wait_http"]

REPO = Path(__file__).resolve().parents[2]
USERS = {"researchers": ["ann", "bob"], "managers": ["mo"], "nobody": ["eve"]}


def free_port() -> int:
    """A free TCP port on 127.0.0.1.

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chp_command() -> str:
    """Path of ``configurable-http-proxy`` (project's ``hub-config/node_modules`` first)."""
    local = REPO / "hub-config" / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise ConfigError("configurable-http-proxy must be installed",
                          found="not in hub-config/node_modules nor on PATH",
                          fix="run `npm ci --prefix hub-config`")
    return found


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
        """Stop the hub and its managed services."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _config(workdir: Path, port: int, password: str, admin_token: str,
            service_ports: dict[str, int], env: dict[str, str],
            service_args: dict[str, list[str]], managed: tuple[str, ...]) -> dict[str, Any]:
    quantlib_bin = str(Path(sys.executable).with_name("quantlib"))
    services: list[dict[str, Any]] = [{"name": "test-admin", "api_token": admin_token}]
    for name, sub in (("dashboards", "serve"), ("results-api", "api")):
        if name not in managed:
            continue
        services.append({
            "name": name, "url": f"http://127.0.0.1:{service_ports[name]}",
            "command": [quantlib_bin, "dashboards", sub, "--hub", *service_args.get(name, [])],
            "environment": env, "oauth_no_confirm": True, "timeout": 180,
        })
    access = ["access:services!service=dashboards", "access:services!service=results-api"]
    return {
        "JupyterHub": {
            "ip": "127.0.0.1", "port": port, "hub_ip": "127.0.0.1", "hub_port": free_port(),
            "authenticator_class": "shared-password",
            "db_url": f"sqlite:///{workdir / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(workdir / "cookie_secret"),
            "pid_file": str(workdir / "jupyterhub.pid"),
            "cleanup_servers": True, "cleanup_proxy": True,
            "template_paths": [str(REPO / "hub-config" / "templates")],
            "load_groups": {g: {"users": u} for g, u in USERS.items()},
            "custom_scopes": {"custom:results:publish": {
                "description": "Publish a backtest result through the results API."}},
            "load_roles": [
                {"name": "user", "scopes": ["read:users:name!user", "read:users:groups!user"]},
                {"name": "researcher", "groups": ["researchers"],
                 "scopes": ["self", *access, "custom:results:publish"]},
                {"name": "manager", "groups": ["managers"], "scopes": access},
                {"name": "test-admin", "services": ["test-admin"],
                 "scopes": ["admin:users", "tokens", "read:users", "admin:groups"]},
            ],
            "services": services,
        },
        "Authenticator": {"allowed_users": sorted(u for us in USERS.values() for u in us)},
        "SharedPasswordAuthenticator": {"user_password": password},
        "ConfigurableHTTPProxy": {"command": [chp_command()], "api_url":
                                  f"http://127.0.0.1:{free_port()}"},
    }


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
            clash = "EADDRINUSE" in log_text or "Address already in use" in log_text
            if attempt + 1 == attempts or not clash:
                raise
    raise ConfigError("the dev hub must start", found=f"{attempts} failed attempts",
                      fix="read jupyterhub.log", file=str(workdir))


def _start_once(workdir: str | os.PathLike[str], *, results_url: str,
                  env: dict[str, str] | None = None,
                  service_args: dict[str, list[str]] | None = None,
                  services: tuple[str, ...] = ("dashboards", "results-api"),
                  wait_services: tuple[str, ...] = ("results-api",),
                  timeout: float = 90.0) -> DevHub:
    """Start a development hub in ``workdir``; return once it and ``wait_services`` answer.

    Parameters
    ----------
    workdir : path
        Folder for the config, database, cookie secret and log.
    results_url : str
        Results store the services read (``QUANTLIB_RESULTS``).
    env : dict, optional
        Extra environment for the managed services (e.g. ``REDIS_URL``).
    service_args : dict, optional
        Extra command-line arguments per service name.
    services : tuple of str
        Which of ``dashboards`` and ``results-api`` the hub manages.
    wait_services : tuple of str
        Services whose health to wait for through the proxy.
    """
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    port = free_port()
    password, admin_token = secrets.token_urlsafe(12), secrets.token_hex(24)
    service_ports = {"dashboards": free_port(), "results-api": free_port()}
    service_env = {"QUANTLIB_RESULTS": results_url,
                   "QUANTLIB_HOME": os.environ.get("QUANTLIB_HOME", str(wd / "home")),
                   **{k: v for k, v in os.environ.items() if k.startswith("QUANTLIB_")
                      and k not in ("QUANTLIB_RESULTS",)},
                   **(env or {})}
    cfg = _config(wd, port, password, admin_token, service_ports, service_env, service_args or {},
                  services)
    cfg_path = wd / "dev_hub_config.json"
    cfg_path.write_text(json.dumps(cfg, indent=1))
    cfg_path.chmod(0o600)
    log = open(wd / "jupyterhub.log", "wb")  # noqa: SIM115 - lives as long as the hub
    proc = subprocess.Popen([sys.executable, "-m", "quantlib.platform.hubapp", "-f",
                             str(cfg_path)],
                            cwd=wd, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    hub = DevHub(f"http://127.0.0.1:{port}", password, admin_token, wd, proc, service_ports)
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
