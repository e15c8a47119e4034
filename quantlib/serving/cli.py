"""``quantlib dashboards serve|api``: the Panel dashboards and the results API.

With ``--hub`` both run as JupyterHub-managed services: port and URL prefix come from
``JUPYTERHUB_SERVICE_URL`` / ``JUPYTERHUB_SERVICE_PREFIX`` and users are authenticated by
the hub. ``--no-auth`` is a development mode: it binds to loopback only and says so loudly.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

import click

from quantlib.errors import ConfigError

__all__ = ["dashboards", "hub_bind"]

log = logging.getLogger("quantlib.serving")


def hub_bind(default_port: int) -> tuple[str, int, str]:
    """Host, port and prefix from the hub's service environment.

    Examples
    --------
    >>> import os
    >>> os.environ["JUPYTERHUB_SERVICE_URL"] = "http://127.0.0.1:9100"
    >>> os.environ["JUPYTERHUB_SERVICE_PREFIX"] = "/services/results-api/"
    >>> hub_bind(8000)
    ('127.0.0.1', 9100, '/services/results-api/')
    >>> del os.environ["JUPYTERHUB_SERVICE_URL"], os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    """
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return url.hostname or "127.0.0.1", url.port or default_port, prefix


def _check_no_auth(host: str) -> None:
    from quantlib.serving.auth.tokens import LOOPBACK

    if host not in LOOPBACK:
        raise ConfigError("--no-auth must bind to loopback only", found=f"--host {host}",
                          fix="use --host 127.0.0.1, or run behind the hub with --hub")
    banner = "!" * 72
    log.warning("%s\nAUTHENTICATION IS OFF (--no-auth): development mode on %s only\n%s",
                banner, host, banner)
    click.echo("WARNING: authentication is OFF (--no-auth), loopback only", err=True)


def _resolve(hub: bool, no_auth: bool, host: str, port: int, prefix: str,
             default_port: int) -> tuple[str, int, str]:
    if hub and no_auth:
        raise ConfigError("--hub and --no-auth exclude each other", found="both given",
                          fix="drop one of them")
    if hub:
        return hub_bind(default_port)
    if no_auth:
        _check_no_auth(host)
    return host, port, prefix


@click.group()
def dashboards() -> None:
    """Serve the Panel dashboards and the results API."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


@dashboards.command()
@click.option("--hub", is_flag=True, help="Run as a JupyterHub-managed service (hub auth).")
@click.option("--no-auth", is_flag=True, help="Development mode: no auth, loopback only.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8766, show_default=True, type=int)
@click.option("--prefix", default="/", show_default=True, help="URL prefix (ignored with --hub).")
@click.option("--results", "results_url", default=None, help="Results store URL (default: config).")
@click.option("--redis-url", default=None, help="Cache in Redis (default: $REDIS_URL, else in-process).")
@click.option("--dev-user", default="dev", show_default=True, help="The user in --no-auth mode.")
@click.option("--dev-groups", default="researchers", show_default=True,
              help="Comma-separated hub groups of the --no-auth user.")
def api(hub: bool, no_auth: bool, host: str, port: int, prefix: str, results_url: str | None,
        redis_url: str | None, dev_user: str, dev_groups: str) -> None:
    """Run the results API (FastAPI, OpenAPI docs at its root)."""
    import uvicorn

    from quantlib.config import load_config
    from quantlib.results.view import ResultsView
    from quantlib.serving.api.app import create_app
    from quantlib.serving.api.cache import make_cache
    from quantlib.serving.auth.tokens import DevAuth, HubTokenAuth, hub_env_present

    host, port, prefix = _resolve(hub, no_auth, host, port, prefix, 8766)
    if no_auth:
        auth: DevAuth | HubTokenAuth = DevAuth(dev_user, tuple(dev_groups.split(",")))
    elif hub or hub_env_present():
        auth = HubTokenAuth(os.environ.get("JUPYTERHUB_SERVICE_NAME", "results-api"))
    else:
        raise ConfigError("the results API needs the hub or --no-auth",
                          found="no JUPYTERHUB_* service environment",
                          fix="run it as a hub service (--hub) or add --no-auth for development")
    url = results_url or load_config().results_url
    cache = make_cache(redis_url)
    log.info("results API on http://%s:%s%s, store %s, cache %s, auth: %s",
             host, port, prefix, url, cache.name, auth.describe())
    app = create_app(ResultsView(url), auth, cache=cache, prefix=prefix)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@dashboards.command()
@click.option("--hub", is_flag=True, help="Run as a JupyterHub-managed service (hub OAuth).")
@click.option("--no-auth", is_flag=True, help="Development mode: no auth, loopback only.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--prefix", default="/", show_default=True, help="URL prefix (ignored with --hub).")
@click.option("--results", "results_url", default=None, help="Results store URL (default: config).")
@click.option("--dev-user", default="dev", show_default=True, help="The user in --no-auth mode.")
@click.option("--dev-groups", default="researchers", show_default=True,
              help="Comma-separated hub groups of the --no-auth user.")
@click.option("--allow-websocket-origin", "origins", multiple=True,
              help="Extra host[:port] allowed to open the app's websocket.")
@click.option("--num-threads", default=4, show_default=True, type=int,
              help="Threads rendering sessions concurrently.")
def serve(hub: bool, no_auth: bool, host: str, port: int, prefix: str, results_url: str | None,
          dev_user: str, dev_groups: str, origins: tuple[str, ...], num_threads: int) -> None:
    """Serve the Panel dashboards (gallery, tear sheet, what-if, data health)."""
    from quantlib.config import load_config
    from quantlib.serving.server.launch import serve_dashboards

    host, port, prefix = _resolve(hub, no_auth, host, port, prefix, 8765)
    if not hub and not no_auth:
        raise ConfigError("the dashboards need the hub or --no-auth",
                          found="neither --hub nor --no-auth",
                          fix="run as a hub service (--hub) or add --no-auth for development")
    serve_dashboards(results_url=results_url or load_config().results_url, host=host, port=port,
                     prefix=prefix, hub=hub, dev_user=dev_user,
                     dev_groups=tuple(dev_groups.split(",")), origins=origins,
                     num_threads=num_threads)
