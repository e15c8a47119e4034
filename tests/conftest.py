"""Test-suite wide fixtures and settings.

quantlib's own warnings are errors here (see ``filterwarnings`` in pyproject.toml).
Each test gets its own ``QUANTLIB_HOME`` so nothing touches the user's store.
``moto_endpoint`` is a real S3-compatible server (moto in server mode) on loopback, one
per test module; ``browser`` is Debian's chromium driven by Playwright, one per module; free TCP ports come from :func:`quantlib.platform.hubconfig.free_port`.
"""

from __future__ import annotations

import os

import pytest


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
