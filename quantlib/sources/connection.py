"""Where the vendors are: FTP host/credentials, API URL and key.

Any object with the attributes ``ftp_host, ftp_port, ftp_user, ftp_password, http_url,
api_key`` works (e.g. the sandbox's connection). :func:`load_connection` builds one from
the sandbox state file (``$QUANTLIB_HOME/run/sandbox.json``) or from the environment
(``QUANTLIB_FTP_URL=ftp://user:password@host:port``, ``QUANTLIB_API_URL``,
``QUANTLIB_API_KEY``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

from quantlib.config import quantlib_home
from quantlib.errors import ConfigError

__all__ = ["Connection", "ConnectionLike", "load_connection"]


class ConnectionLike(Protocol):
    """What the sources need to know to reach the vendors."""

    ftp_host: str
    ftp_port: int
    ftp_user: str
    ftp_password: str
    http_url: str
    api_key: str


@dataclass(frozen=True)
class Connection:
    """Plain connection info (secrets are not shown by ``repr``)."""

    ftp_host: str = ""
    ftp_port: int = 21
    ftp_user: str = ""
    ftp_password: str = ""
    http_url: str = ""
    api_key: str = ""

    def __repr__(self) -> str:
        return (f"Connection(ftp={self.ftp_user}@{self.ftp_host}:{self.ftp_port}, "
                f"http_url={self.http_url!r})")


def load_connection() -> Connection:
    """Connection info from the environment or the sandbox state file.

    Examples
    --------
    >>> import os
    >>> os.environ.update(QUANTLIB_FTP_URL="ftp://u:p%40ss@127.0.0.1:2121",
    ...                   QUANTLIB_API_URL="http://127.0.0.1:8000", QUANTLIB_API_KEY="k")
    >>> c = load_connection()
    >>> c.ftp_port, c.ftp_password, c.http_url
    (2121, 'p@ss', 'http://127.0.0.1:8000')
    >>> for k in ("QUANTLIB_FTP_URL", "QUANTLIB_API_URL", "QUANTLIB_API_KEY"):
    ...     del os.environ[k]
    """
    ftp_url = os.environ.get("QUANTLIB_FTP_URL")
    api_url = os.environ.get("QUANTLIB_API_URL")
    if ftp_url or api_url:
        parts = urlsplit(ftp_url or "")
        return Connection(ftp_host=parts.hostname or "", ftp_port=parts.port or 21,
                          ftp_user=unquote(parts.username or ""),
                          ftp_password=unquote(parts.password or ""),
                          http_url=(api_url or "").rstrip("/"),
                          api_key=os.environ.get("QUANTLIB_API_KEY", ""))
    state = quantlib_home() / "run" / "sandbox.json"
    if not state.exists():
        raise ConfigError("vendor connection info must be available",
                          found="no QUANTLIB_FTP_URL/QUANTLIB_API_URL and no sandbox state",
                          fix="start the sandbox (quantlib data sandbox) or set the variables",
                          file=str(state))
    info = json.loads(state.read_text())
    return Connection(ftp_host=info["ftp_host"], ftp_port=int(info["ftp_port"]),
                      ftp_user=info["ftp_user"], ftp_password=info["ftp_password"],
                      http_url=str(info["http_url"]).rstrip("/"), api_key=info["api_key"])
