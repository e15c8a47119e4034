"""JupyterHub OAuth for the Panel dashboards (a Bokeh ``AuthProvider``).

Panel 1.10 ships no JupyterHub OAuth provider (``panel/auth.py`` has GitHub, GitLab,
Okta, Azure, generic OAuth...), so this module plugs JupyterHub's own
:class:`jupyterhub.services.auth.HubOAuth` into Bokeh's auth hooks:

1. a page request without a valid hub cookie is redirected to ``<prefix>/login``;
2. :class:`HubLoginHandler` stores an OAuth state cookie (with the page as ``next``) and
   redirects to the hub's ``/hub/api/oauth2/authorize``; a logged-out user lands on the
   hub's login page from there;
3. the hub calls back ``<prefix>/oauth_callback``; :class:`HubCallbackHandler` checks the
   state, trades the code for a token, stores it in an HttpOnly secure cookie (never in a
   URL) and sets Panel's signed ``user`` cookie so ``pn.state.user`` works in the apps;
4. every later request (pages, websocket) is checked with the hub (cached briefly): a
   user without the service's access scope gets **403**.

The user's groups are kept server-side in :data:`VIEWERS` (name -> Viewer); the apps
read them through :func:`quantlib.serving.server.session.current_viewer`. Only Panel's signed
``user`` cookie is passed into a Bokeh session; the hub token cookie never is.
"""

from __future__ import annotations

import logging
from typing import Any

from bokeh.server.auth_provider import AuthProvider
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado.httputil import url_concat
from tornado.web import Finish, HTTPError, RequestHandler
from tornado.websocket import WebSocketHandler

from quantlib.results.view import Viewer
from quantlib.serving.auth.api_oauth import safe_next
from quantlib.serving.auth.tokens import viewer_from_model

__all__ = ["HubAuthProvider", "HubLoginHandler", "HubCallbackHandler", "VIEWERS", "hub_oauth",
           "refused"]

log = logging.getLogger(__name__)

#: name -> Viewer of users who passed the hub check in this process.
VIEWERS: dict[str, Viewer] = {}

USER_COOKIE = "user"  # Panel's pn.state.user reads this signed cookie


def hub_oauth() -> HubOAuth:
    """The process-wide :class:`HubOAuth`, configured from the ``JUPYTERHUB_*`` environment."""
    return HubOAuth.instance(cache_max_age=60)


class HubLoginHandler(RequestHandler):
    """Start the hub's OAuth flow, remembering the page to come back to."""

    def get(self) -> None:
        auth = hub_oauth()
        next_url = safe_next(self.get_argument("next", None), auth.base_url)
        params: dict[str, str] = {}
        code_verifier = None
        if auth.pkce_enabled:
            code_verifier, challenge, method = auth.generate_pkce_code_challenge()
            params.update(code_challenge=challenge, code_challenge_method=method)
        params["state"] = auth.set_state_cookie(self, next_url=next_url,
                                                code_verifier=code_verifier)
        self.redirect(url_concat(auth.login_url, params))


class HubCallbackHandler(HubOAuthCallbackHandler):
    """Finish the OAuth flow (JupyterHub's handler); also set Panel's signed ``user`` cookie."""

    _token: str | None = None
    _next: str | None = None

    def set_secure_cookie(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        super().set_secure_cookie(name, value, *args, **kwargs)
        if name == self.hub_auth.cookie_name:
            self._token = value

    def redirect(self, url: str, *args: Any, **kwargs: Any) -> None:
        self._next = url  # held until the user cookie is set, see get()

    async def get(self) -> None:  # type: ignore[override]
        await super().get()
        if self._token is not None:
            model = await self.hub_auth.user_for_token(
                self._token, session_id=self.hub_auth.get_session_id(self), sync=False)
            if model:
                self.set_signed_cookie(USER_COOKIE, model["name"], httponly=True,
                                       path=self.hub_auth.base_url)
        super().redirect(safe_next(self._next, self.hub_auth.base_url))


def refused(handler: RequestHandler, message: str) -> None:
    """Answer 403 with a friendly page that links home (plain HTTP 403 on a websocket)."""
    if isinstance(handler, WebSocketHandler):
        raise HTTPError(403, message)
    from dashboards.layout import refusal_html

    handler.set_status(403)
    handler.set_header("Content-Type", "text/html; charset=utf-8")
    raise Finish(refusal_html("Access refused", message))


class HubAuthProvider(AuthProvider):
    """Bokeh auth hooks backed by JupyterHub OAuth (see the module docstring)."""

    def __init__(self) -> None:
        self.auth = hub_oauth()
        self.access_scopes = set(self.auth.access_scopes or ()) or {
            "access:services!service=dashboards"}
        super().__init__()

    @property
    def get_user_async(self):  # type: ignore[override]
        async def get_user(handler: RequestHandler) -> str | None:
            model = await self.auth.get_user(handler, sync=False)
            if not model:
                return None
            if not self.auth.check_scopes(self.access_scopes, model):
                log.warning("user %s lacks %s: 403", model.get("name"), sorted(self.access_scopes))
                refused(handler, f"{model.get('name')} may not open the dashboards: "
                                 "ask an admin for the role that grants them")
            viewer = viewer_from_model(model)
            VIEWERS[viewer.name] = viewer
            signed = handler.get_signed_cookie(USER_COOKIE)
            if signed is not None and signed.decode() != viewer.name:
                log.warning("user cookie %r does not match hub user %r", signed, viewer.name)
                return None
            return viewer.name
        return get_user

    @property
    def login_url(self) -> str:
        return "/login"

    @property
    def login_handler(self) -> type[RequestHandler]:
        return HubLoginHandler

    @property
    def logout_url(self) -> str | None:
        return None

    @property
    def logout_handler(self) -> None:
        return None
