"""Where the local platform keeps its state, and its validated configuration.

The configuration is ``hub-config/platform.yaml`` (or ``QUANTLIB_PLATFORM_CONFIG``),
checked against ``hub-config/platform.schema.json`` and then for consistency (a user's
group exists, a scope names a service or custom scope that is defined). The state folder
is ``$QUANTLIB_HOME/platform``::

    users.json            hashed passwords (0600)
    hub.pid, hub.json     the running hub: pid, port, URL, run id
    hub.log               hub, proxy and managed services' output
    jupyterhub.sqlite     the hub's database
    cookie_secret         the hub's cookie secret (0600)
    users/<name>/         each user's notebook folder (and HOME)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from quantlib.config import quantlib_home
from quantlib.errors import ConfigError
from quantlib.yamlfile import load_schema, load_yaml

__all__ = ["HUB_CONFIG_DIR", "PlatformPaths", "PlatformSpec", "load_spec", "platform_paths",
           "add_user", "added_users", "added_users_file"]

HUB_CONFIG_DIR = Path(__file__).resolve().parents[2] / "hub-config"
_SCHEMA_FILE = HUB_CONFIG_DIR / "platform.schema.json"
_DEFAULT_FILE = HUB_CONFIG_DIR / "platform.yaml"


@dataclass(frozen=True)
class PlatformPaths:
    """Files of one platform state folder (see the module docstring)."""

    root: Path

    @property
    def users_file(self) -> Path:
        return self.root / "users.json"

    @property
    def pid_file(self) -> Path:
        return self.root / "hub.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "hub.json"

    @property
    def log_file(self) -> Path:
        return self.root / "hub.log"

    @property
    def db_file(self) -> Path:
        return self.root / "jupyterhub.sqlite"

    @property
    def cookie_secret(self) -> Path:
        return self.root / "cookie_secret"

    @property
    def proxy_pid_file(self) -> Path:
        return self.root / "proxy.pid"

    def user_dir(self, name: str) -> Path:
        """A user's notebook folder (also their HOME in the single-user server)."""
        return self.root / "users" / name


def platform_paths(home: str | os.PathLike[str] | None = None) -> PlatformPaths:
    """The state folder ``<home>/platform`` (``home`` defaults to ``QUANTLIB_HOME``).

    Examples
    --------
    >>> str(platform_paths("/tmp/qh").pid_file)
    '/tmp/qh/platform/hub.pid'
    """
    base = Path(home) if home is not None else quantlib_home()
    return PlatformPaths(base / "platform")


@dataclass(frozen=True)
class PlatformSpec:
    """A validated ``platform.yaml``."""

    data: dict[str, Any]
    path: Path

    @property
    def admin(self) -> str:
        return str(self.data["admin"])

    @property
    def groups(self) -> dict[str, dict[str, Any]]:
        return dict(self.data["groups"])

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        """Enabled services only."""
        return {k: v for k, v in self.data["services"].items() if v.get("enabled", True)}

    @property
    def hub(self) -> dict[str, Any]:
        return {"ip": "127.0.0.1", "port": 8000, "spawn_timeout_s": 90,
                "single_user_default_url": "/lab", "landing_without_server": "/hub/home",
                **self.data.get("hub", {})}

    def user_groups(self) -> dict[str, list[str]]:
        """Every user allowed to log in -> their groups (the admin included)."""
        out = {u["name"]: list(u["groups"]) for u in self.data["users"]}
        out.setdefault(self.admin, [])
        return out

    def group_members(self) -> dict[str, list[str]]:
        """Group -> its members, for every configured group."""
        members: dict[str, list[str]] = {g: [] for g in self.data["groups"]}
        for user in self.data["users"]:
            for group in user["groups"]:
                members[group].append(user["name"])
        return members


@cache
def _schema() -> dict[str, Any]:
    return load_schema(_SCHEMA_FILE)


def load_spec(path: str | os.PathLike[str] | None = None) -> PlatformSpec:
    """Read and validate the platform configuration.

    Parameters
    ----------
    path : path, optional
        Defaults to ``QUANTLIB_PLATFORM_CONFIG`` or ``hub-config/platform.yaml``.

    Raises
    ------
    ConfigError
        The file is missing, not YAML, breaks the schema, or is inconsistent; the
        message names the file and the key.

    Examples
    --------
    >>> spec = load_spec()
    >>> spec.admin, sorted(spec.groups)
    ('admin', ['data-team', 'managers', 'researchers'])
    >>> "idle-culler" in spec.services
    True
    """
    chosen = Path(path or os.environ.get("QUANTLIB_PLATFORM_CONFIG") or _DEFAULT_FILE)
    raw = load_yaml(chosen, _schema(), what="the platform configuration",
                    fix=f"see {_SCHEMA_FILE}",
                    fix_missing="pass --config or unset QUANTLIB_PLATFORM_CONFIG")
    raw["users"] = raw["users"] + added_users(raw)
    _check_consistency(raw, str(chosen))
    return PlatformSpec(raw, chosen)


def added_users_file() -> Path:
    """Where ``quantlib platform users add`` keeps the users it added (``$QUANTLIB_HOME``)."""
    return platform_paths().root / "added_users.json"


def added_users(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Users added with ``quantlib platform users add`` that the configuration lacks.

    A name the configuration file lists wins over an added entry of the same name.
    """
    path = added_users_file()
    if not path.exists():
        return []
    listed = {u["name"] for u in raw["users"]}
    entries = json.loads(path.read_text())
    return [{"name": str(e["name"]), "groups": [str(g) for g in e["groups"]]}
            for e in entries if e["name"] not in listed]


def add_user(name: str, groups: list[str], config: str | os.PathLike[str] | None = None) -> None:
    """Record ``name`` in ``groups`` as a platform user (validated like the file's users).

    Raises
    ------
    ConfigError
        If a group is not configured or the name is not a valid user name.
    """
    spec = load_spec(config)
    unknown = [g for g in groups if g not in spec.groups]
    if unknown or not groups:
        raise ConfigError("a new user's groups must be configured groups",
                          found=", ".join(unknown) or "no group",
                          fix="use --group with one of " + ", ".join(sorted(spec.groups)),
                          file=str(spec.path), field="groups")
    if not re.fullmatch(r"[a-z][a-z0-9._-]{0,31}", name):
        raise ConfigError("a user name must be lower-case letters, digits, '.', '_' or '-'",
                          found=repr(name), fix="choose another name", field="name")
    path = added_users_file()
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if e["name"] != name] + [{"name": name, "groups": groups}]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    tmp.chmod(0o600)
    tmp.replace(path)


_SERVICE_FILTER = re.compile(r"!service=([A-Za-z0-9._-]+)$")


def _check_consistency(raw: dict[str, Any], source: str) -> None:
    groups, services = set(raw["groups"]), set(raw["services"])
    custom = set(raw.get("custom_scopes", {}))
    names = [u["name"] for u in raw["users"]]
    if len(names) != len(set(names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError("each user must be listed once", found=f"duplicates {dup}",
                          fix="merge their groups into one entry", file=source, field="users")
    for i, user in enumerate(raw["users"]):
        for group in user["groups"]:
            if group not in groups:
                raise ConfigError("a user's group must be defined under 'groups'",
                                  found=repr(group), fix=f"use one of {sorted(groups)}",
                                  file=source, field=f"users.{i}.groups")
    scoped = [(f"groups.{g}", s) for g, spec in raw["groups"].items() for s in spec["scopes"]]
    scoped += [(f"services.{n}", s) for n, spec in raw["services"].items()
               for key in ("scopes", "oauth_scopes") for s in spec.get(key, [])]
    scoped += [("base_user_scopes", s) for s in raw.get("base_user_scopes", [])]
    for where, scope in scoped:
        match = _SERVICE_FILTER.search(scope)
        if match and match.group(1) not in services:
            raise ConfigError("a scope must name a configured service", found=repr(scope),
                              fix=f"use one of {sorted(services)}", file=source, field=where)
        base = scope.split("!")[0]
        if base.startswith("custom:") and base not in custom:
            raise ConfigError("a custom scope must be defined under 'custom_scopes'",
                              found=repr(scope), fix="add it with a description",
                              file=source, field=where)
