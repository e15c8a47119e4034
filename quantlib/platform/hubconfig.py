"""Turn a validated ``platform.yaml`` into JupyterHub configuration.

``hub-config/jupyterhub_config.py`` calls :func:`configure` and nothing else. The hub is
started by ``quantlib platform up``, which passes in the environment:

``QUANTLIB_HOME``
    the state folder's parent (``$QUANTLIB_HOME/platform``);
``QUANTLIB_PLATFORM_CONFIG``
    the platform configuration (default ``hub-config/platform.yaml``);
``QUANTLIB_PLATFORM_PORT``
    the public port (default: the configuration's ``hub.port``);
``QUANTLIB_PLATFORM_RUN``
    a per-start id that every process of this platform carries in its environment,
    so ``quantlib platform down`` can find stragglers.

What it sets: proxy (configurable-http-proxy from ``hub-config/node_modules``, API on a
free loopback port), the hub's database and cookie secret in the state folder, the
hashed-password login, groups and their roles (JupyterHub's default ``user`` role is
replaced by ``base_user_scopes`` so that only groups grant servers), the managed services
(each wrapped by :mod:`quantlib.platform.supervise`), and the single-user servers
(:class:`~quantlib.platform.spawner.PlatformSpawner`, kernel culling, Dask settings, the
store and results URLs so the catalog works without configuration, and the JupyterLab
set-up of ``hub-config/lab/``: :func:`lab_environment`, :func:`lab_args`).
"""

from __future__ import annotations

import os
import random
import socket
import sys
from pathlib import Path
from typing import Any

from quantlib.config import load_config, quantlib_home
from quantlib.errors import ConfigError
from quantlib.platform.accounts import accounts_enabled, secure_results_root, secure_state
from quantlib.platform.settings import HUB_CONFIG_DIR, PlatformSpec, load_spec, platform_paths

__all__ = ["configure", "proxy_command", "free_port", "base_environment", "service_specs",
           "lab_environment", "lab_args"]

_VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, below the kernel's ephemeral range.

    Ports the OS hands out for outgoing connections and ``port=0`` listeners come from
    the ephemeral range (32768 and up on Linux); picking from below it keeps a port
    chosen now from being taken by some other process's ephemeral socket before the
    hub binds it.

    Examples
    --------
    >>> 20000 <= free_port() < 32768
    True
    """
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ConfigError("a free loopback port must exist in 20000-32767", found="none free",
                      fix="stop some servers and try again", field="port")


def proxy_command() -> Path:
    """The configurable-http-proxy installed by ``npm ci --prefix hub-config``.

    Raises
    ------
    ConfigError
        If it is not installed, saying how to install it.
    """
    chp = HUB_CONFIG_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if not chp.exists():
        raise ConfigError("configurable-http-proxy must be installed in hub-config/node_modules",
                          found="no such file", file=str(chp),
                          fix="run .ci/setup (or: npm ci --prefix hub-config)")
    return chp


def base_environment(run_id: str) -> dict[str, str]:
    """Environment shared by managed services and single-user servers.

    The hub passes nothing of its own environment to them (JupyterHub's ``env_keep``),
    so this carries what they need: the platform's ``PATH`` and venv, the store and
    results URLs, ``QUANTLIB_HOME`` and the run id.
    """
    cfg = load_config()
    env = {
        "PATH": f"{_VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(_VENV_BIN.parent),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONUNBUFFERED": "1",
        "QUANTLIB_HOME": str(quantlib_home()),
        "QUANTLIB_STORE": cfg.store_url,
        "QUANTLIB_RESULTS": cfg.results_url,
        "QUANTLIB_PLATFORM_RUN": run_id,
    }
    for key in ("QUANTLIB_CONFIG", "REDIS_URL", "TZ"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def _resolve(command: list[str]) -> list[str]:
    """``python``/``quantlib`` as a first word mean this platform's own environment."""
    head, *rest = command
    if head == "python":
        return [sys.executable, *rest]
    local = _VENV_BIN / head
    if "/" not in head and local.exists():
        return [str(local), *rest]
    return [head, *rest]


def service_specs(spec: PlatformSpec, env: dict[str, str],
                  home: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """JupyterHub ``services`` entries and the roles for their API tokens."""
    services, roles = [], []
    for name, svc in spec.services.items():
        http = svc.get("http", True)
        wrapped = [sys.executable, "-m", "quantlib.platform.supervise", "--name", name]
        if svc.get("umask"):
            wrapped += ["--umask", svc["umask"]]
        entry: dict[str, Any] = {
            "name": name,
            "command": [*wrapped, "--", *_resolve(svc["command"])],
            "environment": {**env, "HOME": str(home), **svc.get("environment", {})},
            "cwd": str(home),
            "display": svc.get("display", True),
            "timeout": svc.get("timeout_s", 120),
        }
        if http:
            entry["url"] = f"http://127.0.0.1:{svc.get('port') or free_port()}"
            entry["oauth_client_allowed_scopes"] = list(svc.get("oauth_scopes", []))
            entry["oauth_no_confirm"] = True
        services.append(entry)
        if svc.get("scopes"):
            roles.append({"name": f"service-{name}", "scopes": list(svc["scopes"]),
                          "services": [name]})
    return services, roles


def _roles(spec: PlatformSpec) -> list[dict[str, Any]]:
    roles = [{"name": "user", "description": "every platform user, on themselves",
              "scopes": list(spec.data.get("base_user_scopes", ["read:users!user"]))}]
    for group, g in spec.groups.items():
        roles.append({"name": group, "description": g.get("description", ""),
                      "scopes": list(g["scopes"]), "groups": [group]})
    return roles


def _landing(spawners: set[str], elsewhere: str) -> Any:
    """After login: users who may start servers go to theirs, the others to ``elsewhere``."""

    def landing_url(handler: Any) -> str:
        user = handler.current_user
        if user is not None and user.name in spawners:
            return str(user.url)
        return elsewhere

    return landing_url


def _spawners(spec: PlatformSpec) -> set[str]:
    """Users whose groups grant ``servers`` (on themselves or anyone)."""
    granting = {g for g, d in spec.groups.items()
                if any(s.split("!")[0] == "servers" for s in d["scopes"])}
    return {u for u, groups in spec.user_groups().items() if granting & set(groups)}


def _isolation(c: Any, spec: PlatformSpec, results: str,
               services: list[dict[str, Any]]) -> None:
    """Per-user accounts, the private results folders and the results service for notebooks.

    The server's hub token may reach the results service and publish there (a subset of the
    user's own scopes: a user without ``custom:results:publish`` still cannot).
    """
    mode = spec.hub.get("user_accounts", "auto")
    c.PlatformSpawner.user_accounts = mode
    c.PlatformSpawner.account_prefix = spec.hub.get("account_prefix", "ql-")
    local = "://" not in results or results.startswith("file://")
    if local and accounts_enabled(mode):
        root = Path(results.removeprefix("file://"))
        secure_results_root(root)
        c.PlatformSpawner.results_root = str(root)
    api_url = ""
    if any(s["name"] == "results-api" for s in services):
        api_url = f"http://127.0.0.1:{c.JupyterHub.port}/services/results-api/"
        c.PlatformSpawner.results_api_url = api_url
    c.Spawner.server_token_scopes = [
        "users:activity!user", "access:servers!server", "read:users:name!user",
        "read:users:groups!user", "access:services!service=results-api",
        "custom:results:publish",
    ]


def configure(c: Any) -> None:
    """Fill the JupyterHub config object ``c`` from the platform configuration."""
    spec = load_spec()
    paths = platform_paths()
    secure_state(paths.root)
    run_id = os.environ.get("QUANTLIB_PLATFORM_RUN", "foreground")
    env = base_environment(run_id)
    hub = spec.hub

    c.JupyterHub.ip = hub["ip"]
    c.JupyterHub.port = int(os.environ.get("QUANTLIB_PLATFORM_PORT") or hub["port"])
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = free_port()
    c.JupyterHub.db_url = f"sqlite:///{paths.db_file}"
    c.JupyterHub.cookie_secret_file = str(paths.cookie_secret)
    c.JupyterHub.pid_file = str(paths.pid_file)
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True
    c.JupyterHub.default_url = _landing(_spawners(spec), hub["landing_without_server"])
    # home.html hides "Start My Server" from users who may not start one; error.html links home
    c.JupyterHub.template_paths = [str(HUB_CONFIG_DIR / "templates")]
    c.ConfigurableHTTPProxy.command = [str(proxy_command())]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{free_port()}"
    c.ConfigurableHTTPProxy.pid_file = str(paths.proxy_pid_file)

    c.JupyterHub.authenticator_class = "quantlib.platform.auth.HashedPasswordAuthenticator"
    c.HashedPasswordAuthenticator.users_file = str(paths.users_file)
    c.Authenticator.manage_groups = True  # each login sets the groups platform.yaml gives
    c.Authenticator.allowed_users = set(spec.user_groups())
    c.Authenticator.admin_users = {spec.admin}
    c.JupyterHub.load_groups = {g: {"users": m} for g, m in spec.group_members().items()}
    c.JupyterHub.custom_scopes = dict(spec.data.get("custom_scopes", {}))
    services, service_roles = service_specs(spec, env, paths.root)
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = _roles(spec) + service_roles

    culling = spec.data.get("culling", {})
    kernels = culling.get("kernels", {})
    user_env = dict(env)
    user_env["DASK_DISTRIBUTED__DASHBOARD__LINK"] = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
    if culling.get("dask_idle_timeout"):
        user_env["DASK_DISTRIBUTED__SCHEDULER__IDLE_TIMEOUT"] = culling["dask_idle_timeout"]
    user_env.update(lab_environment(spec.data.get("lab", {})))
    c.JupyterHub.spawner_class = "quantlib.platform.spawner.PlatformSpawner"
    c.PlatformSpawner.user_root = str(paths.root / "users")
    _isolation(c, spec, env["QUANTLIB_RESULTS"], services)
    c.Spawner.cmd = [str(_VENV_BIN / "jupyterhub-singleuser")]
    c.Spawner.ip = "127.0.0.1"
    c.Spawner.default_url = hub["single_user_default_url"]
    c.Spawner.environment = user_env
    c.Spawner.start_timeout = hub["spawn_timeout_s"]
    c.Spawner.http_timeout = hub["spawn_timeout_s"]
    c.Spawner.args = [
        f"--MappingKernelManager.cull_idle_timeout={kernels.get('timeout_s', 0)}",
        f"--MappingKernelManager.cull_interval={kernels.get('every_s', 300)}",
        *lab_args(),
    ]
    c.JupyterHub.implicit_spawn_seconds = float(spec.data.get("lab", {}).get("auto_spawn_s", 0))


def lab_environment(lab: dict[str, Any]) -> dict[str, str]:
    """What a researcher's JupyterLab needs in its environment (see ``hub-config/lab/``).

    The server reads ``hub-config/lab/config`` (enables :mod:`quantlib.lab.server`, turns
    off the news and update prompts) and finds the platform's kernelspec in
    ``hub-config/lab/share`` (kernels load :mod:`quantlib.lab.startup`); ``distributed``
    logs at WARNING; the example notebooks come from the configured folder.

    Examples
    --------
    >>> env = lab_environment({"examples": "notebooks"})
    >>> env["DASK_LOGGING__DISTRIBUTED"], env["QUANTLIB_EXAMPLES"].endswith("/notebooks")
    ('warning', True)
    """
    lab_dir = HUB_CONFIG_DIR / "lab"
    env = {"JUPYTER_CONFIG_PATH": str(lab_dir / "config"),
           "JUPYTER_PATH": str(lab_dir / "share"),
           "DASK_LOGGING__DISTRIBUTED": "warning"}
    if lab.get("examples"):
        env["QUANTLIB_EXAMPLES"] = str((HUB_CONFIG_DIR.parent / lab["examples"]).resolve())
    return env


def lab_args() -> list[str]:
    """Single-user server arguments: JupyterLab's setting overrides (``hub-config/lab/settings``)."""
    return [f"--LabApp.app_settings_dir={HUB_CONFIG_DIR / 'lab' / 'settings'}"]
