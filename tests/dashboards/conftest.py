"""Real components for the browser tests: a JupyterHub with both services, Debian chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantlib.serving.demo import populate_demo_store
from quantlib.serving.devhub import start_dev_hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """4 published 10-year demo results and ann's unpublished one (last id)."""
    url = str(tmp_path_factory.mktemp("results"))
    return url, populate_demo_store(url, years=10)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory, store):
    """A real JupyterHub managing the dashboards and results API services."""
    url, _ids = store
    wd = tmp_path_factory.mktemp("hub")
    env = {"QUANTLIB_HOME": str(wd / "home"), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    h = start_dev_hub(wd, results_url=url, env=env,
                      wait_services=("results-api", "dashboards"), timeout=120)
    yield h
    h.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (never `playwright install`)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
    return take
