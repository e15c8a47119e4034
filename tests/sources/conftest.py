"""A real sandbox (FTP + HTTP servers on loopback) shared by the source tests.

One small universe (20 assets per market of the registry, JP included, one year) is
generated and served once per session; each test gets it with its faults cleared before and after.
"""

from __future__ import annotations

import pytest

from quantlib.sources import RetryPolicy

FAST = RetryPolicy(initial=0.01, maximum=0.05, jitter=0.01, max_attempts=6, max_total=30,
                   max_retry_after=5)


@pytest.fixture(scope="session")
def _session_sandbox(tmp_path_factory: pytest.TempPathFactory):
    from quantlib.markets import MARKETS
    from quantlib.sandbox import start_sandbox

    sb = start_sandbox(n_assets=20, years=1, seed=7, end="2025-12-31", markets=tuple(MARKETS),
                       root=tmp_path_factory.mktemp("vendor-tree"), write_state=False,
                       rate_limit=(500.0, 1000.0))
    yield sb
    sb.stop()


@pytest.fixture
def sandbox(_session_sandbox):
    _session_sandbox.faults.clear()
    yield _session_sandbox
    _session_sandbox.faults.clear()


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return FAST
