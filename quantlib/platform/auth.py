"""The local hub's login: names from ``platform.yaml``, scrypt hashes from ``users.json``.

Only users listed in the platform configuration (and the admin) may log in, and only with
the password whose hash is stored in the users file. A user with no password set cannot
log in at all. The hash file is re-read at each login, so ``quantlib platform users
passwd`` takes effect without restarting the hub.
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

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        """The user's name if ``data`` holds their right password, else ``None``."""
        name = self.normalize_username(data.get("username", "") or "")
        password = data.get("password", "") or ""
        if not name or not password:
            return None
        if self.allowed_users and name not in self.allowed_users | self.admin_users:
            self.log.warning("login refused for %r: not a platform user", name)
            return None
        if not PasswordFile(self.users_file).check(name, password):
            self.log.warning("login refused for %r: wrong password or none set", name)
            return None
        return name
