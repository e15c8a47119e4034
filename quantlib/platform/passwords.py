"""Hashed passwords of the local hub's users.

Passwords live in ``$QUANTLIB_HOME/platform/users.json`` (mode 0600) as scrypt hashes
(``scrypt$n$r$p$salt$hash``, salt and hash in URL-safe base64). No plaintext is ever
written. Who may log in, and in which groups, comes from ``hub-config/platform.yaml``;
this file only answers "is this the right password for that name".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantlib.errors import ConfigError

__all__ = ["hash_password", "verify_password", "generate_password", "PasswordFile"]

# scrypt cost: 16 MiB of memory and ~50 ms per check; enough for a login form.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Hash ``password`` with scrypt and a random salt.

    Examples
    --------
    >>> h = hash_password("correct horse")
    >>> h.startswith("scrypt$16384$8$1$") and "correct" not in h
    True
    >>> verify_password("correct horse", h), verify_password("wrong", h)
    (True, False)
    """
    if not password:
        raise ConfigError("a password must not be empty", found="an empty string",
                          fix="choose a password of at least 8 characters", field="password")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a hash made by :func:`hash_password` (constant time).

    A malformed stored hash never matches.

    Examples
    --------
    >>> verify_password("x", "not-a-hash")
    False
    """
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                                dklen=len(expected), maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def generate_password(nbytes: int = 12) -> str:
    """A random URL-safe password (``nbytes`` of entropy).

    Examples
    --------
    >>> len(generate_password(12))
    16
    """
    return secrets.token_urlsafe(nbytes)


class PasswordFile:
    """The users file: ``{"version": 1, "users": {name: {"password": hash, "updated_at": iso}}}``.

    Parameters
    ----------
    path : path
        Where the file lives; created (0600) on first write.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> pf = PasswordFile(pathlib.Path(tempfile.mkdtemp()) / "users.json")
    >>> pf.set_password("alice", "s3cret-pass")
    >>> pf.check("alice", "s3cret-pass"), pf.check("alice", "nope"), pf.check("bob", "x")
    (True, False, False)
    >>> pf.names()
    ['alice']
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": 1, "users": {}}
        try:
            data = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError("the users file must be JSON", found=str(exc),
                              fix="restore it or delete it and set the passwords again",
                              file=str(self.path)) from exc
        if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
            raise ConfigError("the users file must hold a 'users' mapping",
                              found=type(data).__name__, fix="delete it and set passwords again",
                              file=str(self.path))
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-", suffix=".json")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def names(self) -> list[str]:
        """Names that have a password."""
        return sorted(self._read()["users"])

    def has(self, name: str) -> bool:
        """Whether ``name`` has a password."""
        return name in self._read()["users"]

    def set_password(self, name: str, password: str) -> None:
        """Store the hash of ``password`` for ``name`` (replacing any previous one)."""
        data = self._read()
        data["users"][name] = {"password": hash_password(password),
                               "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self._write(data)

    def remove(self, name: str) -> bool:
        """Forget ``name``'s password; returns whether there was one."""
        data = self._read()
        found = data["users"].pop(name, None) is not None
        if found:
            self._write(data)
        return found

    def check(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s password."""
        entry = self._read()["users"].get(name)
        return bool(entry) and verify_password(password, entry.get("password", ""))
