"""Shared sandbox fixtures: one full-size universe and one small running sandbox."""

from __future__ import annotations

import pytest

from quantlib.sandbox import generate, start_sandbox


@pytest.fixture(scope="session")
def full_universe():
    """The default universe: 300 assets x 3 markets x 10 years."""
    return generate()


@pytest.fixture(scope="session")
def small_universe():
    return generate(n_assets=30, years=2, seed=7)


@pytest.fixture(scope="session")
def sandbox(small_universe, tmp_path_factory):
    """A running sandbox (real FTP + HTTP servers); no state file (tests own their homes)."""
    root = tmp_path_factory.mktemp("sandbox-tree")
    with start_sandbox(small_universe, root=root, rate_limit=(1000.0, 1000.0),
                       write_state=False) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _clear_faults(request):
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").faults.clear()
