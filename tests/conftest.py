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
# order instead of xdist's fewest-tests-last, which left the one-test hub files for the
# end): starting them first keeps the run's tail to short files. A folder here is one
# unit (see ``SHARED_SESSION_DIRS``). Update from the "slowest 20 files" section that
# ``--durations`` runs print (pytest_terminal_summary below) when a file grows past the
# last one here.
LONG_FIRST = (
    "tests/pipeline/test_catchup.py",        # partitioned catch-ups and their kills, ~290 s
    "tests/dashboards",                      # a hub, chromium, 10-year demo store, ~250 s
    "tests/notebooks/test_notebooks.py",     # 6 notebooks through papermill, ~230 s
    "tests/hub/test_e2e.py",                 # the whole platform, ~175 s
    "tests/hub/test_lab_browser.py",         # a hub and chromium, ~150 s
    "tests/test_foundation.py",              # mypy on a cold cache, ~125 s
    "tests/pipeline/test_partitioned.py",    # LocalCluster builds, ~100 s
    "tests/hub/test_isolation.py",           # ~80 s
    "tests/store/test_incremental.py",       # 61 daily delta commits, ~75 s
    "tests/schedule/test_runner.py",         # ~75 s
    "tests/store/test_compact.py",           # compaction + its CLI, ~65 s
    "tests/hub/test_nonroot.py",
    "tests/serving",                         # a hub with the results API, redis
    "tests/backtest/test_parallel.py",
    "tests/pipeline/test_incremental.py",
    "tests/hub/test_hub.py",
    "tests/pipeline/test_cli.py",            # the CLI refresh
    "tests/hub/test_cull.py",                # a hub, a server, the culler
    "tests/backtest/test_batched.py",
    "tests/store/test_concurrent.py",
    "tests/pipeline/test_kill.py",
    "tests/store/test_crash.py",
    "tests/schedule/test_service.py",
    "tests/backtest/test_cli.py",
    "tests/cluster/test_local.py",
)

# Folders whose files share an expensive session-scoped fixture (a JupyterHub with its
# services, a demo results store): xdist runs each folder on one worker, so the fixture
# is built once per run instead of once per worker that gets one of its files.
SHARED_SESSION_DIRS = ("tests/dashboards", "tests/serving")


def _unit(nodeid: str) -> str:
    """The scheduling unit of a test: its shared folder, else its file."""
    path = nodeid.split("::", 1)[0]
    return next((d for d in SHARED_SESSION_DIRS if path.startswith(d + "/")), path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the units of :data:`LONG_FIRST` first, in that order (stable otherwise)."""
    rank = {unit: i for i, unit in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(_unit(item.nodeid), len(rank)))


_UNIT_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add each phase's seconds to its unit (on the controller under xdist)."""
    _UNIT_SECONDS[_unit(report.nodeid)] = _UNIT_SECONDS.get(_unit(report.nodeid), 0.0) + (
        report.duration or 0.0)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The 20 slowest scheduling units (setup + call + teardown): data for LONG_FIRST."""
    if config.getoption("durations") is None or not _UNIT_SECONDS:
        return
    terminalreporter.write_sep("=", "slowest 20 files (xdist units), seconds")
    for unit, seconds in sorted(_UNIT_SECONDS.items(), key=lambda kv: -kv[1])[:20]:
        terminalreporter.write_line(f"{seconds:8.1f}s {unit}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` with :data:`SHARED_SESSION_DIRS` kept whole."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return SharedFixtureScheduling(config, log)


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
