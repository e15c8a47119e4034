"""Single-user servers for the local hub, each under its hub user's own Unix account.

:class:`PlatformSpawner` runs the server in the user's folder
``$QUANTLIB_HOME/platform/users/<name>`` (also their ``HOME``), bound to loopback. Who it
runs as depends on ``hub.user_accounts`` (see :mod:`quantlib.platform.accounts`):

- with accounts (the hub runs as root; the default there), the server runs as the Unix
  account ``ql-<name>``, created on first spawn, with its own group; the home is owned by
  that account (0700) and the server's umask is 077. The user's unpublished results go to
  ``<results>/users/<name>`` (theirs, 0700); the shared results store is read-only to
  them, and ``quantlib.publish`` goes through the results service
  (``QUANTLIB_RESULTS_API``) with the server's hub token, which records the real author;
- without accounts (a hub that is not root, or ``shared``), every server runs as the
  hub's own account, as root with ``--allow-root``: users are then separated by the hub's
  roles only, and the hub logs that once per spawn. Their homes are still 0700, so other
  local accounts cannot read them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode

from quantlib.errors import ConfigError
from quantlib.platform.accounts import (
    Account,
    accounts_enabled,
    ensure_account,
    ensure_owned_dir,
    private_results_dir,
    runtime_blockers,
)

__all__ = ["PlatformSpawner"]


class PlatformSpawner(LocalProcessSpawner):
    """A local single-user server running as the hub user's own Unix account."""

    user_root = Unicode(
        help="Folder holding each user's notebook folder, <user_root>/<name>.",
    ).tag(config=True)
    user_accounts = Unicode(
        "auto", help="auto | required | shared (see quantlib.platform.accounts).",
    ).tag(config=True)
    account_prefix = Unicode("ql-", help="Prefix of the Unix account names.").tag(config=True)
    results_root = Unicode(
        "", help="Local results store folder (empty: not local, no private folder).",
    ).tag(config=True)
    results_api_url = Unicode(
        "", help="The results service's URL, given to notebooks as QUANTLIB_RESULTS_API.",
    ).tag(config=True)

    _account: Account | None = None

    @property
    def user_dir(self) -> Path:
        """This user's notebook folder (created on spawn)."""
        return Path(self.user_root) / self.user.name

    @property
    def isolated(self) -> bool:
        """Whether this server runs under the user's own Unix account."""
        return accounts_enabled(self.user_accounts)

    def _prepare_account(self) -> Account:
        """Create the account and its folders; refuse when it could not run the platform."""
        account = ensure_account(self.user.name, self.user_dir, prefix=self.account_prefix)
        for root, dirs, files in os.walk(account.home):  # e.g. notebooks copied in as root
            for entry in [root, *(os.path.join(root, n) for n in dirs + files)]:
                if os.lstat(entry).st_uid != account.uid:
                    os.lchown(entry, account.uid, account.gid)
        if self.results_root:
            ensure_owned_dir(private_results_dir(Path(self.results_root), self.user.name),
                             account)
        needed = [Path(sys.executable), Path(self.cmd[0]) if self.cmd else Path(sys.prefix)]
        store = self.environment.get("QUANTLIB_STORE", "")
        if store and "://" not in store:
            needed.append(Path(store))  # researchers read the shared data store
        blocked = runtime_blockers(needed)
        if blocked:
            raise ConfigError("the platform's Python must be reachable by the users' accounts",
                              found=f"{', '.join(blocked)} not searchable by other accounts",
                              fix="install Python and the environment where every account can "
                                  "read them (e.g. under /opt), `chmod o+x` those folders, or "
                                  "set hub.user_accounts: shared (no OS isolation)",
                              file=str(sys.executable), field="hub.user_accounts")
        return account

    def make_preexec_fn(self, name: str) -> Any:
        """Enter the user's account (when isolated) and folder, with umask 077."""
        home, account = self.user_dir, self._account

        def preexec() -> None:
            if account is not None:
                os.setgid(account.gid)
                os.setgroups(os.getgrouplist(account.name, account.gid))
                os.setuid(account.uid)
            os.umask(0o077)
            home.mkdir(parents=True, exist_ok=True)
            os.chdir(home)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """Name the hub user, give them their own HOME, private results, the results API."""
        env["USER"] = self._account.name if self._account else self.user.name
        env["HOME"] = str(self.user_dir)
        env.setdefault("SHELL", "/bin/bash")
        if self._account is not None and self.results_root:
            env["QUANTLIB_RESULTS"] = str(private_results_dir(Path(self.results_root),
                                                              self.user.name))
        if self.results_api_url:
            env["QUANTLIB_RESULTS_API"] = self.results_api_url
        return env

    def get_args(self) -> list[str]:
        """JupyterHub's arguments, plus ``--allow-root`` when the server runs as root."""
        args = list(super().get_args())
        if self._account is None and os.geteuid() == 0 and "--allow-root" not in args:
            args.append("--allow-root")
        return args

    async def start(self) -> Any:
        """Start the server in the user's folder (made if missing), under their account."""
        if self.isolated:
            self._account = self._prepare_account()
        else:
            self._account = None
            self.log.warning("server of %s runs as the hub's own OS account: users are "
                             "separated by hub roles only (hub.user_accounts=%s, euid %d)",
                             self.user.name, self.user_accounts, os.geteuid())
            self.user_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.user_dir, 0o700)  # the hub's account only, not other local ones
        self.notebook_dir = str(self.user_dir)
        return await super().start()

    def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Internal SSL is not used on loopback; keep the paths as they are."""
        return paths
