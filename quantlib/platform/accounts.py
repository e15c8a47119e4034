"""One Unix account per hub user, and the file modes that keep accounts apart.

The local platform runs each hub user's single-user server (and so every kernel, Dask
worker and shell they start) as their own Unix account, created here on first spawn:

=====================  ==========================================================
hub user ``alice``     Unix account ``<prefix>alice`` (default prefix ``ql-``), its own
                       group, plus the platform group ``quantlib-users``; no login shell
HOME                   ``$QUANTLIB_HOME/platform/users/alice``, owned by the account, 0700
private results        ``<results>/users/alice``, owned by the account, 0700
=====================  ==========================================================

The hub's state folder (``$QUANTLIB_HOME/platform``) is 0711 (a user can reach their home
below it, but cannot list it) and its files 0600; the results store is group
``quantlib-users``: published results 0750/0640, everything else the hub's account only.

Accounts need root. ``hub.user_accounts`` in ``platform.yaml`` chooses: ``auto`` (the
default) makes accounts when the hub runs as root and otherwise runs every server as the
hub's own account, saying so in the hub log; ``required`` refuses to start servers without
root; ``shared`` never makes accounts.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import re
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from quantlib.errors import AccessDeniedError, ConfigError, QuantlibError

__all__ = ["Account", "PLATFORM_GROUP", "ACCOUNT_MODES", "account_name", "accounts_enabled",
           "ensure_account", "ensure_owned_dir", "runtime_blockers", "secure_state",
           "share_result_dir", "share_index", "private_results_dir", "secure_results_root"]

PLATFORM_GROUP = "quantlib-users"
ACCOUNT_MODES = ("auto", "required", "shared")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,27}$")


@dataclass(frozen=True)
class Account:
    """A hub user's Unix account."""

    hub_name: str
    name: str
    uid: int
    gid: int
    home: Path


def account_name(hub_name: str, prefix: str = "ql-") -> str:
    """The Unix account name of a hub user.

    Raises
    ------
    ConfigError
        If the hub name cannot be a Unix account name (lowercase letter first, then
        lowercase letters, digits, ``_`` or ``-``, at most 28 characters).

    Examples
    --------
    >>> account_name("alice")
    'ql-alice'
    >>> account_name("Alice")
    Traceback (most recent call last):
    ...
    quantlib.errors.ConfigError: a hub user name must be usable as a Unix account name ...
    """
    if not _NAME.match(hub_name):
        raise ConfigError("a hub user name must be usable as a Unix account name "
                          "(lowercase letter, then lowercase letters, digits, '_' or '-')",
                          found=repr(hub_name), fix="rename the user in platform.yaml",
                          field="users")
    return f"{prefix}{hub_name}"


def accounts_enabled(mode: str, *, euid: int | None = None) -> bool:
    """Whether servers run under per-user accounts for ``hub.user_accounts = mode``.

    Raises
    ------
    ConfigError
        If ``mode`` is ``required`` and the hub does not run as root.

    Examples
    --------
    >>> accounts_enabled("auto", euid=0), accounts_enabled("auto", euid=1000)
    (True, False)
    >>> accounts_enabled("shared", euid=0)
    False
    """
    euid = os.geteuid() if euid is None else euid
    if mode not in ACCOUNT_MODES:
        raise ConfigError("hub.user_accounts must be one of " + ", ".join(ACCOUNT_MODES),
                          found=repr(mode), fix="correct platform.yaml", field="hub.user_accounts")
    if mode == "shared":
        return False
    if euid != 0 and mode == "required":
        raise ConfigError("hub.user_accounts: required needs a hub running as root",
                          found=f"effective uid {euid}",
                          fix="start the platform as root, or set hub.user_accounts: auto "
                              "(every server then runs as the hub's own account)",
                          field="hub.user_accounts")
    return euid == 0


def _group_gid(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        _run(["groupadd", "--system", name])
        return grp.getgrnam(name).gr_gid


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AccessDeniedError(f"`{' '.join(cmd)}` must succeed to create a user account",
                                found=f"exit {done.returncode}: {done.stderr.strip()}",
                                fix="run the platform as root, or set hub.user_accounts: shared")


@contextmanager
def _accounts_lock() -> Iterator[None]:
    """Serialise account creation across processes (useradd fails on a busy passwd lock).

    The lock file sits in ``QUANTLIB_ACCOUNTS_LOCK`` or the system temp folder; only
    processes allowed to create accounts (root) ever take it.
    """
    path = os.environ.get("QUANTLIB_ACCOUNTS_LOCK",
                          os.path.join(tempfile.gettempdir(), "quantlib-accounts.lock"))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_account(hub_name: str, home: Path, *, prefix: str = "ql-") -> Account:
    """The hub user's Unix account, created (with its own group) if missing.

    The account has no password and ``/usr/sbin/nologin`` as shell: it only ever runs
    what the spawner starts. ``home`` is created, owned by the account, mode 0700.
    """
    name = account_name(hub_name, prefix)
    with _accounts_lock():  # two platforms spawning the same user: one creates, one finds
        group = _group_gid(PLATFORM_GROUP)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            _run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell",
                  "/usr/sbin/nologin", "--user-group", "--groups", PLATFORM_GROUP,
                  "--comment", f"quantlib hub user {hub_name}", name])
            entry = pwd.getpwnam(name)
        if name not in grp.getgrgid(group).gr_mem:
            _run(["usermod", "--append", "--groups", PLATFORM_GROUP, name])
    account = Account(hub_name, name, entry.pw_uid, entry.pw_gid, home)
    ensure_owned_dir(home, account)
    return account


def ensure_owned_dir(path: Path, account: Account, mode: int = 0o700) -> Path:
    """Make ``path`` (and missing parents, 0711) a folder owned by ``account``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    path.mkdir(exist_ok=True, mode=mode)
    st = path.stat()
    if (st.st_uid, st.st_gid) != (account.uid, account.gid):
        os.chown(path, account.uid, account.gid)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
    return path


def private_results_dir(results_root: Path, hub_name: str) -> Path:
    """Where a hub user's unpublished results live on a local results store.

    Examples
    --------
    >>> str(private_results_dir(Path("/r"), "alice"))
    '/r/users/alice'
    """
    return results_root / "users" / hub_name


def runtime_blockers(paths: list[Path]) -> list[str]:
    """Folders on the way to ``paths`` that another account cannot enter (no ``o+x``).

    The users' servers run the platform's Python, read its packages and the data store;
    each folder above them must be searchable by other accounts.

    Examples
    --------
    >>> runtime_blockers([Path("/usr/bin")])
    []
    """
    blocked: list[str] = []
    for target in paths:
        for folder in [*reversed(Path(os.path.realpath(target)).parents), Path(target)]:
            try:
                mode = folder.stat().st_mode
            except FileNotFoundError:
                break
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH and str(folder) not in blocked:
                blocked.append(str(folder))
    return blocked


def secure_state(root: Path) -> None:
    """Hub state readable by the hub's account only: the folder 0711, its files 0600."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)
    db = root / "jupyterhub.sqlite"
    if not db.exists():  # SQLite keeps an existing file's mode (its journals copy it)
        os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in root.iterdir():
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, 0o600)
    users = root / "users"
    users.mkdir(exist_ok=True)
    os.chmod(users, 0o711)


def secure_results_root(root: Path) -> None:
    """A local results store the hub's account writes and the platform group reads.

    The root, ``objects/`` and ``index/`` are 0750 (group ``quantlib-users``), ``users/``
    0710 (a user reaches their own private folder, nobody lists them); stored results get
    :func:`share_result_dir`'s modes by whether they are published.
    """
    from quantlib.results.layout import INDEX_PATH, OBJECTS, parse_meta

    gid = _group_gid(PLATFORM_GROUP)
    index = root / INDEX_PATH
    for folder, mode in ((root, 0o750), (root / OBJECTS, 0o750), (index.parent, 0o750),
                         (root / "users", 0o710)):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, -1, gid)
        os.chmod(folder, mode)
    if index.exists():
        share_index(index)
    for meta in (root / OBJECTS).glob("*/meta.json"):
        try:
            published = bool(parse_meta(meta.read_bytes(), str(meta)).get("published"))
        except (OSError, QuantlibError):
            published = False  # unreadable: kept private
        share_result_dir(meta.parent, published)


def share_index(index: Path) -> None:
    """The published index: readable by the platform group (0640), if it exists."""
    try:
        gid = grp.getgrnam(PLATFORM_GROUP).gr_gid
    except KeyError:
        return
    os.chown(index, -1, gid)
    os.chmod(index, 0o640)


def share_result_dir(folder: Path, published: bool) -> None:
    """Modes of one stored result on a local results store.

    Published results are readable by the platform group (0750/0640); anything else
    (a what-if run saved by a service, say) by the hub's account only (0700/0600).
    Nobody but the hub's account may write.
    """
    try:
        gid = grp.getgrnam(PLATFORM_GROUP).gr_gid if published else -1
    except KeyError:
        gid = -1
    dir_mode, file_mode = (0o750, 0o640) if published and gid >= 0 else (0o700, 0o600)
    for path in [folder, *folder.iterdir()]:
        if gid >= 0:
            os.chown(path, -1, gid)
        os.chmod(path, dir_mode if path.is_dir() else file_mode)
