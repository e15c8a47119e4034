"""A small vendor sandbox shared by the pipeline tests (real FTP + HTTP on loopback)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sandbox():
    """3 markets x 30 assets x 2 years, served on loopback (no state file)."""
    from quantlib.sandbox import start_sandbox

    with start_sandbox(n_assets=30, years=2, seed=7, write_state=False) as sb:
        yield sb


@pytest.fixture
def clean_faults(sandbox):
    """Disarm the sandbox's faults after the test."""
    yield sandbox.faults
    sandbox.faults.clear()


