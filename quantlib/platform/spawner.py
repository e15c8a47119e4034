"""Single-user servers for the local hub: every hub user runs as the hub's OS user.

JupyterHub's ``LocalProcessSpawner`` switches to a Unix account named like the hub user;
on one machine with one account that account does not exist. :class:`PlatformSpawner`
instead runs every server as the OS user who started the hub, in the user's own folder
``$QUANTLIB_HOME/platform/users/<name>`` (also their ``HOME``), bound to loopback. Run as
root it adds ``--allow-root``. Users are kept apart by the hub's roles (who may start or
reach which server), not by Unix permissions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode

__all__ = ["PlatformSpawner"]


class PlatformSpawner(LocalProcessSpawner):
    """A local single-user server running as the hub's own OS user."""

    user_root = Unicode(
        help="Folder holding each user's notebook folder, <user_root>/<name>.",
    ).tag(config=True)

    @property
    def user_dir(self) -> Path:
        """This user's notebook folder (created on spawn)."""
        return Path(self.user_root) / self.user.name

    def make_preexec_fn(self, name: str) -> Any:
        """No uid switch: create and enter the user's folder."""
        home = self.user_dir

        def preexec() -> None:
            home.mkdir(parents=True, exist_ok=True)
            os.chdir(home)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """Name the hub user and give them their own HOME under the state folder."""
        env["USER"] = self.user.name
        env["HOME"] = str(self.user_dir)
        env.setdefault("SHELL", "/bin/bash")
        return env

    def get_args(self) -> list[str]:
        """JupyterHub's arguments, plus ``--allow-root`` when the hub runs as root."""
        args = list(super().get_args())
        if os.geteuid() == 0 and "--allow-root" not in args:
            args.append("--allow-root")
        return args

    async def start(self) -> Any:
        """Start the server in the user's folder (made if missing)."""
        self.user_dir.mkdir(parents=True, exist_ok=True)
        self.notebook_dir = str(self.user_dir)
        return await super().start()

    def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Internal SSL is not used on loopback; keep the paths as they are."""
        return paths
