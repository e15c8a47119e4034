"""Per-user accounts and file modes, without a hub (tests/hub/test_isolation.py has one)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from quantlib.errors import ConfigError
from quantlib.platform.accounts import (
    account_name,
    accounts_enabled,
    runtime_blockers,
    secure_state,
    share_result_dir,
)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_account_names_are_prefixed_and_checked():
    assert account_name("dana") == "ql-dana"
    assert account_name("dana", prefix="q") == "qdana"
    for bad in ("Dana", "1dana", "da na", "../x", "a" * 29, ""):
        with pytest.raises(ConfigError, match="usable as a Unix account name"):
            account_name(bad)


def test_account_mode_choices():
    assert accounts_enabled("auto", euid=0) and not accounts_enabled("auto", euid=1000)
    assert accounts_enabled("required", euid=0)
    assert not accounts_enabled("shared", euid=0)
    with pytest.raises(ConfigError, match="required needs a hub running as root") as err:
        accounts_enabled("required", euid=1000)
    assert "hub.user_accounts: auto" in str(err.value)
    with pytest.raises(ConfigError, match="must be one of auto, required, shared"):
        accounts_enabled("sometimes", euid=0)


def test_runtime_blockers_name_each_closed_folder(tmp_path):
    closed = tmp_path / "closed"
    inner = closed / "open" / "python"
    inner.mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(closed, 0o700)
    blocked = runtime_blockers([inner])
    assert str(closed) in blocked and str(closed / "open") not in blocked
    os.chmod(closed, 0o711)
    assert str(closed) not in runtime_blockers([inner])


def test_secure_state_makes_hub_files_private(tmp_path):
    root = tmp_path / "platform"
    root.mkdir()
    for name in ("hub.log", "users.json", "cookie_secret"):
        (root / name).write_text("x")
        os.chmod(root / name, 0o644)
    secure_state(root)
    assert mode(root) == 0o711 and mode(root / "users") == 0o711
    for name in ("hub.log", "users.json", "cookie_secret", "jupyterhub.sqlite"):
        assert mode(root / name) == 0o600, name


def test_unpublished_result_folder_is_the_writers_only(tmp_path):
    folder = tmp_path / "objects" / "abc"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    share_result_dir(folder, published=False)
    assert mode(folder) == 0o700 and mode(folder / "meta.json") == 0o600



_ENSURE = """
import sys
from pathlib import Path
from quantlib.platform.accounts import ensure_account
name, home = sys.argv[1:3]
print("calling", flush=True)
acct = ensure_account(name, Path(home))
print(acct.uid, acct.name, flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="creating Unix accounts needs root")
def test_account_creation_waits_for_another_platform_creating_accounts(tmp_path):
    """Two platforms spawning one new user at once: creation is serialised by a lock.

    Without it both see no account, both run useradd, and the loser fails ("already
    exists", or passwd locked). The test holds the lock as the other platform would.
    """
    import pwd
    import subprocess
    import sys

    from quantlib.platform.accounts import _accounts_lock

    hub_name = f"race{os.getpid() % 100000}"
    try:
        with _accounts_lock():
            proc = subprocess.Popen([sys.executable, "-c", _ENSURE, hub_name,
                                     str(tmp_path / "home")], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "calling"
            time.sleep(1.5)
            assert proc.poll() is None  # waiting for the lock, nothing created yet
            with pytest.raises(KeyError):
                pwd.getpwnam(account_name(hub_name))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        assert pwd.getpwnam(account_name(hub_name)).pw_uid == int(out.split()[0])
    finally:
        subprocess.run(["userdel", account_name(hub_name)], capture_output=True)
