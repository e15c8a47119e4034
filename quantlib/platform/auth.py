"""The local hub's login: names from ``platform.yaml``, scrypt hashes from ``users.json``.

Only users listed in the platform configuration (and the admin, and users added with
``quantlib platform users add``) may log in, and only with the password whose hash is
stored in the users file. A user with no password set cannot log in at all. The hash file
and the user list are re-read at each login, and each login returns the user's groups
(``Authenticator.manage_groups``), so ``quantlib platform users add|passwd`` take effect
without restarting the hub.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from quantlib.platform.passwords import PasswordFile

__all__ = ["HashedPasswordAuthenticator"]


class HashedPasswordAuthenticator(Authenticator):
    """Check a login form's password against the platform's users file."""

    users_file = Unicode(help="Path of the users file holding scrypt hashes.").tag(config=True)

    def _platform_users(self) -> dict[str, list[str]]:
        from quantlib.platform.settings import load_spec

        return load_spec().user_groups()

    def check_allowed(self, username: str, authentication: Any = None) -> bool:
        """Configured users, the admin and users added since the hub started."""
        return username in self.admin_users or username in self._platform_users()

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        """The user's name and groups if ``data`` holds their right password, else ``None``."""
        name = self.normalize_username(data.get("username", "") or "")
        password = data.get("password", "") or ""
        if not name or not password:
            return None
        users = self._platform_users()
        if name not in users and name not in self.admin_users:
            self.log.warning("login refused for %r: not a platform user", name)
            return None
        if not PasswordFile(self.users_file).check(name, password):
            self.log.warning("login refused for %r: wrong password or none set", name)
            return None
        return {"name": name, "groups": users.get(name, [])}
