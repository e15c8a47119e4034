"""Test-suite wide fixtures and settings.

quantlib's own warnings are errors here (see ``filterwarnings`` in pyproject.toml).
Each test gets its own ``QUANTLIB_HOME`` so nothing touches the user's store.
``moto_endpoint`` is a real S3-compatible server (moto in server mode) on loopback, one
per test module; ``browser`` is Debian's chromium driven by Playwright, one per module; free TCP ports come from :func:`quantlib.platform.hubconfig.free_port`.
"""

from __future__ import annotations

import os

import pytest

# The longest test files in CI (seconds of one file on one xdist worker, from CI's
# ``--durations``; rough, longest first). ``--dist loadfile`` hands whole files to the
# workers in collection order (``--no-loadscope-reorder`` in pyproject.toml keeps that
# order instead of xdist's fewest-tests-last, which left these one-test files for the
# end): starting them first keeps the run's tail to short files. Update from CI's
# slowest durations when a file grows past the last one here.
LONG_FILES_FIRST = (
    "tests/notebooks/test_notebooks.py",     # ~6 notebooks through papermill, ~250 s
    "tests/hub/test_cull.py",                # a hub, a server, the culler, ~240 s
    "tests/hub/test_e2e.py",                 # the whole platform, ~220 s
    "tests/pipeline/test_cli.py",            # the CLI refresh, ~190 s
    "tests/hub/test_lab_browser.py",         # a hub and chromium, ~160 s
    "tests/dashboards/test_browser.py",      # chromium over the dashboards, ~150 s
    "tests/store/test_incremental.py",       # 61 daily delta commits, ~140 s
    "tests/hub/test_hub.py",
    "tests/hub/test_isolation.py",
    "tests/hub/test_nonroot.py",
    "tests/pipeline/test_kill.py",
    "tests/store/test_crash.py",
    "tests/cluster/test_local.py",
    "tests/schedule/test_service.py",
    "tests/backtest/test_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the files of :data:`LONG_FILES_FIRST` to the front, in that order (stable)."""
    rank = {path: i for i, path in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="module")
def moto_endpoint():
    """A real moto S3 server (server mode) on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("quantlib-home")
    monkeypatch.setenv("QUANTLIB_HOME", str(home))
    for var in ("QUANTLIB_STORE", "QUANTLIB_RESULTS", "QUANTLIB_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    yield home


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (never `playwright install`).

    Module-scoped: Playwright's sync API keeps an event loop running in the main thread
    while it is open, which would break ``asyncio.run`` (and a second sync Playwright) in
    any later test file that lands on the same xdist worker.
    """
    from quantlib.testing.browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
