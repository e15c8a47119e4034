"""Test-suite wide fixtures and settings.

quantlib's own warnings are errors here (see ``filterwarnings`` in pyproject.toml).
Each test gets its own ``QUANTLIB_HOME`` so nothing touches the user's store.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("quantlib-home")
    monkeypatch.setenv("QUANTLIB_HOME", str(home))
    for var in ("QUANTLIB_STORE", "QUANTLIB_RESULTS", "QUANTLIB_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    yield home
