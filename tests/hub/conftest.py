"""Shared by the hub tests: start the platform where per-user accounts can run Python."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from quantlib.platform.accounts import runtime_blockers

OPEN_NS = Path(__file__).with_name("open_ns.py")


def reachable_prefix(home: Path, own_base: Path) -> list[str]:
    """Command prefix under which other accounts can reach Python and ``home``.

    Folders of this test session (``own_base`` and below) are made searchable (0711);
    folders above it and the interpreter's are opened in a mount namespace only. Empty
    when nothing blocks (a normal install) or when not root (then the platform runs
    every server as the hub's own account anyway).
    """
    if os.geteuid() != 0:
        return []
    for folder in runtime_blockers([home]):
        if Path(folder) == own_base or own_base in Path(folder).parents:
            os.chmod(folder, 0o711)
    blocked = runtime_blockers([Path(sys.executable), home])
    if not blocked:
        return []
    if shutil.which("unshare") is None:
        pytest.fail(f"{blocked} are 0700 and `unshare` is missing to open them for the test")
    return ["unshare", "--mount", "--propagation", "private", sys.executable, str(OPEN_NS),
            *blocked, "--"]


@pytest.fixture(scope="session")
def hub_prefix(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], list[str]]:
    """``hub_prefix(home) + [quantlib, "platform", "up", ...]`` starts a hub for accounts."""
    base = tmp_path_factory.getbasetemp()
    return lambda home: reachable_prefix(home, base)
