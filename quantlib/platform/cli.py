"""``quantlib platform up|down|status|users``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from quantlib.errors import ConfigError
from quantlib.platform import core
from quantlib.platform.passwords import PasswordFile, generate_password
from quantlib.platform.process import HubState, hub_command, hub_environment
from quantlib.platform.settings import load_spec, platform_paths

__all__ = ["platform"]

_CONFIG = click.option("--config", type=click.Path(dir_okay=False), default=None,
                       help="Platform configuration (default hub-config/platform.yaml).")


@click.group()
def platform() -> None:
    """The local research platform: JupyterHub, dashboards, scheduler."""


def _print_login(info: core.PlatformInfo) -> None:
    if info.reused:
        click.echo(f"the platform is already running at {info.url} (hub pid {info.pid})")
    else:
        click.echo(f"the platform is running at {info.url} (hub pid {info.pid}, "
                   f"started in {info.start_s:.1f} s)")
    for name, svc in load_spec(info.state.config if info.state else None).services.items():
        if svc.get("http", True):
            click.echo(f"  {name}: {info.url}services/{name}/")
    if info.admin_password:
        click.echo(f"log in as {info.admin!r} with password {info.admin_password}")
        click.echo("  (shown once; change it with `quantlib platform users passwd "
                   f"{info.admin}`)")
    else:
        click.echo(f"log in at {info.url}hub/login as {info.admin!r} or a configured user")
    if info.users_without_password:
        names = ", ".join(info.users_without_password)
        click.echo(f"users without a password yet (cannot log in): {names}; set one with "
                   "`quantlib platform users passwd <name>`")


@platform.command()
@click.option("--port", type=int, default=None, help="Public port (default 8000).")
@_CONFIG
@click.option("--refresh/--no-refresh", default=True,
              help="Refresh data from the sandbox when the store is empty (default on).")
@click.option("--foreground", is_flag=True, help="Run the hub in this terminal until Ctrl-C.")
def up(port: int | None, config: str | None, refresh: bool, foreground: bool) -> None:
    """Start the platform (or find it running) and print the URL and login."""
    if foreground:
        _foreground(port, config, refresh)
        return
    info = core.up(port=port, config=config, refresh=refresh, echo=click.echo)
    _print_login(info)


def _foreground(port: int | None, config: str | None, refresh: bool) -> None:
    spec = load_spec(config)
    paths = platform_paths()
    if core.status().running:
        raise ConfigError("only one hub may run per QUANTLIB_HOME", found="one is running",
                          fix="run `quantlib platform down` first", file=str(paths.state_file))
    if refresh and not core.has_data():
        core.refresh_data(click.echo)
    password = core.ensure_admin(paths, spec.admin)
    if password:
        click.echo(f"log in as {spec.admin!r} with password {password} (shown once)")
    chosen = port or spec.hub["port"]
    run_id = f"fg-{os.getpid()}"
    env = hub_environment(chosen, spec.path.resolve(), run_id, paths.root.parent.resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(hub_command(), cwd=paths.root, env=env)
    HubState(pid=proc.pid, port=chosen, url=f"http://127.0.0.1:{chosen}/", run_id=run_id,
             started_at=0.0, config=str(spec.path), log="-").save(paths)
    click.echo(f"the hub runs in the foreground at http://127.0.0.1:{chosen}/ (Ctrl-C stops it)")

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)  # the hub stops its proxy, services and servers
        code = proc.wait()
    finally:
        core.down()  # and anything left behind
    sys.exit(code)


@platform.command()
def down() -> None:
    """Stop the hub, its services and every single-user server."""
    info = core.status()
    if info.state is None:
        click.echo("the platform is not running")
        core.down()  # clears stale state files, ends stragglers of a crashed hub
        return
    started = time.perf_counter()
    leftovers = core.down(click.echo)
    extra = f", ended {len(leftovers)} leftover processes" if leftovers else ""
    click.echo(f"the platform at {info.url} is stopped ({time.perf_counter() - started:.1f} s"
               f"{extra})")


@platform.command()
def status() -> None:
    """Say whether the platform runs; exit status 1 if it does not."""
    info = core.status()
    if info.state is None:
        click.echo("the platform is not running")
        sys.exit(1)
    health = "healthy" if info.running else "NOT answering its health check"
    click.echo(f"the platform is running at {info.url}: hub pid {info.pid}, {health}, "
               f"{info.processes} processes")
    if not info.running:
        sys.exit(1)


@platform.group(invoke_without_command=True)
@_CONFIG
@click.pass_context
def users(ctx: click.Context, config: str | None) -> None:
    """List the platform's users (name, groups, whether a password is set)."""
    ctx.obj = config
    if ctx.invoked_subcommand is not None:
        return
    spec = load_spec(config)
    known = set(PasswordFile(platform_paths().users_file).names())
    for name, groups in sorted(spec.user_groups().items()):
        role = "admin" if name == spec.admin else ",".join(groups) or "-"
        click.echo(f"{name:<16} {role:<24} {'password set' if name in known else 'no password'}")


@users.command()
@click.argument("name")
@click.option("--group", "groups", multiple=True, required=True,
              help="A configured group (repeat for several).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.pass_obj
def add(config: str | None, name: str, groups: tuple[str, ...], password_stdin: bool) -> None:
    """Add user NAME in the given groups with a password; they can log in at once."""
    from quantlib.platform.settings import add_user

    add_user(name, list(groups), config)
    password = _read_password() if password_stdin else generate_password()
    PasswordFile(platform_paths().users_file).set_password(name, password)
    shown = "" if password_stdin else f" with password {password}"
    click.echo(f"user {name!r} added to {', '.join(groups)}{shown}")


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ConfigError("a password must have at least 8 characters",
                          found=f"{len(password)} characters", fix="choose a longer one",
                          field="password")
    return password


@users.command()
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.pass_obj
def passwd(config: str | None, name: str, password_stdin: bool) -> None:
    """Set NAME's password (random and printed, unless --password-stdin)."""
    spec = load_spec(config)
    if name not in spec.user_groups():
        raise ConfigError("the user must be listed in the platform configuration",
                          found=repr(name), fix=f"add them under 'users' in {spec.path}",
                          file=str(spec.path), field="users")
    password = _read_password() if password_stdin else generate_password()
    PasswordFile(platform_paths().users_file).set_password(name, password)
    if password_stdin:
        click.echo(f"password of {name!r} set")
    else:
        click.echo(f"password of {name!r} set to {password}")


@platform.command("k8s-identity")
@click.argument("names", nargs=-1, required=True)
@click.option("--settings", type=click.Path(dir_okay=False), default=None,
              help="Identity settings [default: hub-config/k8s/identity/identity.yaml].")
@click.option("--iam", is_flag=True, help="Print each user's IAM role (JSON) instead.")
def k8s_identity(names: tuple[str, ...], settings: str | None, iam: bool) -> None:
    """Print the Kubernetes ServiceAccount, Role and RoleBinding of hub users NAMES.

    The hub applies them itself before a spawn; this shows them for review, and with
    --iam the IAM role (trust, tag, permissions) an administrator creates per user.
    """
    import json

    import yaml

    from quantlib.platform.kubeusers import iam_role, identity_manifests, load_identity_settings

    config = load_identity_settings(settings)
    if iam:
        click.echo(json.dumps([iam_role(n, config) for n in names], indent=2))
        return
    docs = [doc for n in names for doc in identity_manifests(n, config)]
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
