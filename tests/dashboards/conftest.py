"""Real components for the browser tests: a JupyterHub with both services (Debian chromium
is ``tests/conftest.py``'s ``browser``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantlib.testing.browser import PAINTED_CANVASES_JS
from quantlib.testing.demo import populate_demo_store
from quantlib.testing.devhub import start_dev_hub

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """4 published 10-year demo results and ann's unpublished one (last id)."""
    url = str(tmp_path_factory.mktemp("results"))
    return url, populate_demo_store(url, years=10)


@pytest.fixture(scope="session")
def data_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data store with a manifest (KR's last run rejected), quarantine rows and a report."""
    import pandas as pd

    from quantlib.raw import RawZone
    from quantlib.store import write_table_file

    root = tmp_path_factory.mktemp("store")
    t = pd.Timestamp("2025-06-02 23:40", tz="UTC")
    RawZone(str(root)).record([
        {"fetch_id": fid, "source": src, "market": mkt, "file": f, "fmt": "x",
         "sha256": str(i) * 64, "bytes": 10, "rows": 100, "fetched_at": when, "status": st}
        for i, (fid, src, mkt, f, when, st) in enumerate([
            ("f1", "ftp-kr", "KR", "a", t, "published"),
            ("f2", "ftp-kr", "KR", "b", t + pd.Timedelta(days=1), "rejected"),
            ("f3", "http", "US", "c", t, "published")])])
    write_table_file(str(root), "quarantine", "refresh-20250603T234000Z-ab12", pd.DataFrame({
        "source": ["ftp-kr"] * 2, "market": ["KR"] * 2, "check": ["ohlc_order"] * 2,
        "reason": ["high < low"] * 2, "severity": ["error"] * 2, "row": [1, 2]}))
    (root / "reports").mkdir()
    (root / "reports" / "refresh-20250603T234000Z-ab12.md").write_text(
        "KR: 2 bad rows (ohlc_order)\n")
    return str(root)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory, store, data_store):
    """A real JupyterHub managing the dashboards and results API services."""
    url, _ids = store
    wd = tmp_path_factory.mktemp("hub")
    env = {"QUANTLIB_HOME": str(wd / "home"), "QUANTLIB_STORE": data_store,
           "QUANTLIB_WHATIF_RUNNER": "quantlib.testing.demo:rerun_demo"}
    h = start_dev_hub(wd, results_url=url, env=env,
                      wait_services=("results-api", "dashboards"), timeout=240)
    yield h
    h.stop()


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
    return take


@pytest.fixture
def painted_canvases():
    """Count a page's canvases and those painted (``{"total": n, "painted": k}``)."""
    def count(page) -> dict:
        return page.evaluate(PAINTED_CANVASES_JS)
    return count


@pytest.fixture
def read_to_the_end():
    """Scroll a tear sheet down a screen at a time, as a reader does, until every plot
    section is embedded (``#ql-rendered-all``; the sections below the fold are drawn after
    the first screen), then back to the top."""
    def go(page, timeout_ms: int = 120_000) -> None:
        page.wait_for_selector("#ql-rendered", state="attached", timeout=timeout_ms)
        for _ in range(int(page.evaluate("document.body.scrollHeight / 800")) + 1):
            page.mouse.wheel(0, 800)
            page.wait_for_timeout(150)
        page.wait_for_selector("#ql-rendered-all", state="attached", timeout=timeout_ms)
        assert page.locator("[data-ql-pending]").count() == 0
        page.evaluate("window.scrollTo(0, 0)")
    return go


@pytest.fixture
def login():
    """Open a dashboards page, get sent to the hub login, log in, come back via OAuth.

    Returns ``(context, page)``; the caller closes the context.
    """
    def go(browser, hub, user: str, path: str = "gallery"):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.goto(hub.service_url("dashboards") + path)
        assert "/hub/login" in page.url  # a logged-out user is sent to the hub's login
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", hub.password)
        page.click("#login_submit")
        page.wait_for_load_state()
        return ctx, page
    return go
