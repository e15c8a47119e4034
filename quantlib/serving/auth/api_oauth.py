"""Hub login for the results API in a browser: the OAuth flow and its cookie.

A logged-in hub user who opens the API (its docs, or ``/api/v1/...``) in a browser is
identified like on the dashboards, by JupyterHub OAuth, besides the
``Authorization: token`` header scripts send:

1. a browser page without the API's cookie goes to ``<prefix>oauth_login?next=<page>``,
   which stores a random state in a signed, HttpOnly cookie and redirects to the hub's
   ``/hub/api/oauth2/authorize`` (a logged-out user meets the hub's login page there);
2. the hub calls back ``<prefix>oauth_callback?code=&state=``; the state must match the
   cookie's, the code is traded for a hub token (``HubOAuth.token_for_code``), and the
   token is kept in a signed, HttpOnly, ``SameSite=Lax`` cookie scoped to the API's
   prefix (never in a URL);
3. every request with that cookie is checked like a header token (hub answer cached,
   the service's access scope required, else 403).

The cookie is signed with a key derived from the service's hub token
(``JUPYTERHUB_API_TOKEN``), so it survives a restart of the API and is never stored.
Every route is a GET that reads; nothing changes state on a cookie alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from typing import Any
from urllib.parse import urlparse

from tornado.web import create_signed_value, decode_signed_value

__all__ = ["TOKEN_COOKIE", "STATE_COOKIE", "cookie_secret", "sign", "unsign", "safe_next",
           "HubLogin", "token_from_cookie"]

TOKEN_COOKIE = "quantlib-results-api-token"
STATE_COOKIE = "quantlib-results-api-oauth-state"
STATE_MAX_AGE_DAYS = 0.01  # ~15 minutes to finish the login
TOKEN_MAX_AGE_DAYS = 1.0


def cookie_secret() -> bytes:
    """The key the API signs its cookies with (derived from the service's hub token).

    Examples
    --------
    >>> import os
    >>> os.environ["JUPYTERHUB_API_TOKEN"] = "t"
    >>> len(cookie_secret())
    32
    """
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    return hashlib.sha256(b"quantlib-results-api-cookie:" + token.encode()).digest()


def sign(name: str, value: str) -> str:
    """A signed cookie value (tornado's format, so expiry is checked on read).

    Examples
    --------
    >>> unsign("c", sign("c", "abc"), 1.0)
    'abc'
    >>> unsign("other", sign("c", "abc"), 1.0) is None
    True
    """
    return create_signed_value(cookie_secret(), name, value).decode()


def unsign(name: str, value: str | None, max_age_days: float) -> str | None:
    """The value of a signed cookie, or None when missing, forged or expired."""
    if not value:
        return None
    out = decode_signed_value(cookie_secret(), name, value, max_age_days=max_age_days)
    return out.decode() if out else None


def safe_next(next_url: str | None, prefix: str) -> str:
    """Only same-site paths under the API's prefix may be redirected to after login.

    Examples
    --------
    >>> safe_next("https://evil.example/", "/services/results-api/")
    '/services/results-api/'
    >>> safe_next("/services/results-api/token", "/services/results-api/")
    '/services/results-api/token'
    """
    if not next_url:
        return prefix
    parsed = urlparse(next_url)
    if parsed.scheme or parsed.netloc or not parsed.path.startswith(prefix.rstrip("/")):
        return prefix
    return next_url


class HubLogin:
    """The API's side of the hub OAuth flow (see the module docstring).

    Parameters
    ----------
    prefix : str
        The API's public prefix (``JUPYTERHUB_SERVICE_PREFIX``), the cookies' path.
    """

    def __init__(self, prefix: str) -> None:
        from jupyterhub.services.auth import HubOAuth

        self.oauth = HubOAuth(cache_max_age=30)
        self.prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"

    def start(self, next_url: str | None) -> tuple[str, dict[str, Any]]:
        """``(redirect URL at the hub, state cookie arguments)`` to begin a login."""
        state = secrets.token_urlsafe(24)
        payload = json.dumps({"state": state, "next": safe_next(next_url, self.prefix)})
        from tornado.httputil import url_concat

        cookie = {"key": STATE_COOKIE, "value": sign(STATE_COOKIE, payload),
                  "path": self.prefix, "httponly": True, "samesite": "lax",
                  "max_age": 900}
        return url_concat(self.oauth.login_url, {"state": state}), cookie

    async def finish(self, code: str, state: str, state_cookie: str | None
                     ) -> tuple[str, dict[str, Any]] | None:
        """``(page to go back to, token cookie arguments)``, or None for a bad state."""
        raw = unsign(STATE_COOKIE, state_cookie, STATE_MAX_AGE_DAYS)
        if raw is None:
            return None
        saved = json.loads(raw)
        if not secrets.compare_digest(str(saved.get("state")), state):
            return None
        token = await self.oauth.token_for_code(code, sync=False)
        cookie = {"key": TOKEN_COOKIE, "value": sign(TOKEN_COOKIE, token), "path": self.prefix,
                  "httponly": True, "samesite": "lax", "max_age": int(TOKEN_MAX_AGE_DAYS * 86400)}
        return safe_next(saved.get("next"), self.prefix), cookie


def token_from_cookie(value: str | None) -> str | None:
    """The hub token held in the API's signed cookie (None if missing or forged)."""
    return unsign(TOKEN_COOKIE, value, TOKEN_MAX_AGE_DAYS)
