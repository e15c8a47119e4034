"""Who is calling: JupyterHub tokens for the results API, plus an explicit dev mode.

A request carries ``Authorization: token <t>`` (or ``Bearer <t>``). The token is checked
against the hub (``GET <JUPYTERHUB_API_URL>/user`` with that token) through
:class:`jupyterhub.services.auth.HubAuth`, which caches the answer for ``cache_max_age``
seconds (default 5): a token revoked at the hub stops working here within 5 s. The user
must hold the service's access scope (``access:services!service=<name>``, from
``JUPYTERHUB_OAUTH_ACCESS_SCOPES``), exactly as for the dashboards; otherwise 403.

Dev mode (``--no-auth``) identifies every caller as one configured user. It only binds to
loopback and logs a warning on every start.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from quantlib.errors import AccessDeniedError, ConfigError
from quantlib.results.view import Viewer

__all__ = ["HubTokenAuth", "DevAuth", "Authenticator", "viewer_from_model",
           "hub_env_present", "LOOPBACK"]

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class NotAuthenticated(Exception):
    """No valid credentials (answered with 401 and a pointer to the hub login)."""


def viewer_from_model(model: dict[str, Any]) -> Viewer:
    """Turn a hub user model into a :class:`Viewer`.

    Examples
    --------
    >>> viewer_from_model({"name": "mo", "groups": ["managers"], "scopes": ["x"]})
    Viewer(name='mo', groups=('managers',), scopes=('x',))
    """
    return Viewer(name=str(model["name"]), groups=tuple(model.get("groups") or ()),
                  scopes=tuple(model.get("scopes") or ()))


def hub_env_present() -> bool:
    """True when the JupyterHub service environment variables are set.

    Examples
    --------
    >>> import os
    >>> saved = os.environ.pop("JUPYTERHUB_API_TOKEN", None)
    >>> hub_env_present()
    False
    >>> if saved: os.environ["JUPYTERHUB_API_TOKEN"] = saved
    """
    return bool(os.environ.get("JUPYTERHUB_API_TOKEN") and os.environ.get("JUPYTERHUB_API_URL"))


@dataclass
class DevAuth:
    """Everybody is ``user`` (dev mode, loopback only)."""

    user: str = "dev"
    groups: tuple[str, ...] = ("researchers",)

    async def authenticate(self, authorization: str | None) -> Viewer:
        return Viewer(self.user, self.groups)

    def describe(self) -> str:
        return f"NO AUTH (dev mode): every caller is {self.user!r} in {list(self.groups)}"


class HubTokenAuth:
    """Check JupyterHub tokens against the hub API, with the service's access scope.

    Parameters
    ----------
    service_name : str
        This service's name in the hub (for the default access scope).
    cache_max_age : float
        Seconds a token's answer from the hub is reused: the window in which a revoked
        token still works (docs/security.md).
    """

    def __init__(self, service_name: str = "results-api", *, cache_max_age: float = 5.0) -> None:
        from jupyterhub.services.auth import HubAuth

        if not hub_env_present():
            raise ConfigError("hub mode needs the JupyterHub service environment",
                              found="JUPYTERHUB_API_TOKEN or JUPYTERHUB_API_URL unset",
                              fix="run it as a hub-managed service, or use --no-auth on loopback")
        self.service_name = service_name
        self.hub_auth = HubAuth(cache_max_age=int(cache_max_age))
        scopes = set(self.hub_auth.access_scopes or ())
        self.access_scopes = scopes or {f"access:services!service={service_name}"}

    async def authenticate(self, authorization: str | None) -> Viewer:
        """The caller's :class:`Viewer`; raises NotAuthenticated or AccessDeniedError."""
        token = _token_from_header(authorization)
        if not token:
            raise NotAuthenticated("missing token")
        model = await self.hub_auth.user_for_token(token, sync=False)
        if not model:
            raise NotAuthenticated("token not accepted by the hub")
        if not self.hub_auth.check_scopes(self.access_scopes, model):
            raise AccessDeniedError(f"access to the {self.service_name} service must be granted",
                                    found=f"user {model.get('name')} lacks it",
                                    fix="ask an admin for a role with "
                                        + " or ".join(sorted(self.access_scopes)))
        return viewer_from_model(model)

    def describe(self) -> str:
        return f"hub tokens via {self.hub_auth.api_url}, scopes {sorted(self.access_scopes)}"


Authenticator = HubTokenAuth | DevAuth


def _token_from_header(value: str | None) -> str | None:
    """Token from ``token <t>`` / ``Bearer <t>``.

    Examples
    --------
    >>> _token_from_header("Bearer abc"), _token_from_header("token x"), _token_from_header("x")
    ('abc', 'x', None)
    """
    if not value:
        return None
    kind, _, token = value.strip().partition(" ")
    if kind.lower() in ("token", "bearer") and token.strip():
        return token.strip()
    return None
