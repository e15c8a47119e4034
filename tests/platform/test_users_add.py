"""``quantlib platform users add``: a user who can log in at once, in the given groups.

The login is the platform authenticator's own (the code the hub calls), on the users file
and the added-users list the CLI wrote; no hub restart in between.
"""

from __future__ import annotations

import asyncio

import pytest

from quantlib.cli import main
from quantlib.platform import load_spec, platform_paths
from quantlib.platform.auth import HashedPasswordAuthenticator


def run_async(coro):
    """``asyncio.run`` on a fresh thread: the main thread may hold a running loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("QUANTLIB_HOME", str(tmp_path))
    monkeypatch.delenv("QUANTLIB_PLATFORM_CONFIG", raising=False)
    return tmp_path


def login(name: str, password: str):
    auth = HashedPasswordAuthenticator(users_file=str(platform_paths().users_file),
                                       admin_users={"admin"})
    return run_async(auth.authenticate(None, {"username": name, "password": password})), auth


def test_users_add_creates_a_user_who_can_log_in(home, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("correct-horse-1\n"))
    assert main(["platform", "users", "add", "nina", "--group", "managers",
                 "--password-stdin"]) == 0
    assert "user 'nina' added to managers" in capsys.readouterr().out
    assert load_spec().user_groups()["nina"] == ["managers"]
    model, auth = login("nina", "correct-horse-1")
    assert model == {"name": "nina", "groups": ["managers"]}
    assert auth.check_allowed("nina") is True
    assert login("nina", "wrong-password")[0] is None
    assert login("zed", "correct-horse-1")[0] is None  # never added: refused
    main(["platform", "users"])
    assert "nina" in capsys.readouterr().out


def test_users_add_refuses_an_unknown_group(home, capsys):
    assert main(["platform", "users", "add", "nina", "--group", "traders"]) != 0
    out = capsys.readouterr()
    assert "a new user's groups must be configured groups" in out.out + out.err
    assert "nina" not in load_spec().user_groups()
