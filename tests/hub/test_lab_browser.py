"""The researcher's JupyterLab in a real browser, through the real hub and proxy (issue #10).

``quantlib platform up`` (first start: a small sandbox data refresh; the managed services
other than the hub are turned off to spare the machine) on a free port; Debian chromium
driven by Playwright then does what a new researcher does:

1. opens the hub, logs in with the form, and lands in JupyterLab by itself: the hub's
   "not running" page starts the server (``lab.auto_spawn_s``) and its progress page
   shows while it starts;
2. finds ``start_here.ipynb`` and ``examples/`` in the home's file browser, opens
   ``start_here.ipynb`` there and runs all cells from the Run menu;
3. every output holding a plot has a painted canvas (``quantlib/testing/browser.py``'s check:
   Panel's resources loaded behind ``/user/alice/``), no output is an error or on stderr
   (no "could not load resources", no ``distributed`` log lines), and no request for
   Panel's or Bokeh's files failed;
4. the Dask sidebar lists the notebook's running cluster (the scheduler address its kernel
   registered) and its dashboard is connected (the pane buttons are offered).

Screenshots are kept in ``artifacts/screenshots/lab-*.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from quantlib.platform.hubconfig import free_port
from quantlib.platform.settings import HUB_CONFIG_DIR
from quantlib.testing.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.slow]

QUANTLIB = str(Path(sys.executable).parent / "quantlib")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
PASSWORD = "alice-pass-1234"
#: plot outputs of notebooks/start_here.ipynb: result view, sweep heatmap, factor view
PLOT_OUTPUTS = 3

#: per output area: does it hold a Bokeh plot, and how many of its canvases are painted
PLOT_OUTPUTS_JS = """() => {
  const painted = (c) => {
    if (!c.width || !c.height) return false;
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length && colours.size < 3; i += 4 * 97)
      colours.add((data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]);
    return colours.size > 2;
  };
  const canvases = (root) => {
    const found = [];
    const walk = (r) => r.querySelectorAll('*').forEach((el) => {
      if (el.tagName === 'CANVAS') found.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    });
    walk(root);
    return found;
  };
  return [...document.querySelectorAll('.jp-CodeCell')].map((cell, i) => {
    const found = canvases(cell.querySelector('.jp-Cell-outputWrapper') || cell);
    return {cell: i, canvases: found.length, painted: found.filter(painted).length};
  });
}"""


@pytest.fixture(scope="module")
def lab_platform(tmp_path_factory, hub_prefix):
    home = tmp_path_factory.mktemp("lab-home")
    (home / "config.yaml").write_text("sandbox:\n  n_assets: 8\n  years: 2\n")
    raw = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    for name in ("dashboards", "results-api", "scheduler", "idle-culler"):
        raw["services"][name]["enabled"] = False
    raw["hub"]["spawn_timeout_s"] = 300  # the test machine is shared and loaded
    (home / "platform.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "QUANTLIB_HOME": str(home), "QUANTLIB_CONFIG": str(home / "config.yaml"),
           "QUANTLIB_PLATFORM_CONFIG": str(home / "platform.yaml")}
    for var in ("QUANTLIB_STORE", "QUANTLIB_RESULTS"):
        env.pop(var, None)

    def cli(*args, stdin=None, prefix=()):
        return subprocess.run([*prefix, QUANTLIB, "platform", *args], env=env, input=stdin,
                              text=True, capture_output=True, timeout=900)

    assert cli("users", "passwd", "alice", "--password-stdin",
               stdin=PASSWORD + "\n").returncode == 0
    port = free_port()
    done = cli("up", "--port", str(port), prefix=hub_prefix(home))  # + first refresh
    assert done.returncode == 0, done.stdout + done.stderr
    yield {"home": home, "url": f"http://127.0.0.1:{port}/"}
    cli("down")


@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"lab-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login_and_land(page, url: str) -> tuple[float, list[str]]:
    """Log in; follow the hub to JupyterLab. Returns (seconds, URLs the tab went through)."""
    seen: list[str] = []
    page.on("framenavigated", lambda f: seen.append(f.url) if f == page.main_frame else None)
    page.goto(url + "hub/login")
    page.wait_for_selector("input[name=username]", timeout=60_000)
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    started = time.perf_counter()
    page.click("#login_submit")
    page.wait_for_url("**/hub/spawn-pending/alice**", timeout=60_000)
    page.wait_for_selector("#progress-bar, .progress-bar", state="attached", timeout=30_000)
    shot(page, "1-spawn-progress")
    page.wait_for_selector(".jp-LabShell", timeout=300_000)
    return time.perf_counter() - started, seen


def run_all(page, timeout_s: float) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    done = """() => {
      const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
        .map((e) => e.textContent.trim());
      return p.length > 0 && p.every((t) => /^\\[\\d+\\]:$/.test(t));
    }"""
    page.wait_for_function(done, timeout=timeout_s * 1000, polling=1000)


@pytest.mark.timeout(1800)
def test_researcher_lands_in_lab_runs_start_here_and_sees_plots_and_cluster(lab_platform,
                                                                            chromium):
    url, home = lab_platform["url"], lab_platform["home"]
    ctx = chromium.new_context(viewport={"width": 1500, "height": 1000})
    page = ctx.new_page()
    bad_responses: list[str] = []
    page.on("response", lambda r: bad_responses.append(f"{r.status} {r.url}")
            if r.status >= 400 and ("panel" in r.url or "static" in r.url) else None)
    try:
        landed_s, seen = login_and_land(page, url)
        print(f"\nlogin -> JupyterLab usable: {landed_s:.1f} s")
        assert page.url.startswith(url + "user/alice/lab"), page.url
        assert any("/hub/spawn-pending/alice" in u for u in seen), seen
        # the examples are in the home, as the user's own files
        user_home = home / "platform" / "users" / "alice"
        assert (user_home / "start_here.ipynb").is_file()
        assert (user_home / "examples" / "backtest_and_sweep.ipynb").is_file()
        listing = page.locator(".jp-DirListing-content")
        listing.get_by_text("start_here.ipynb", exact=True).wait_for(timeout=60_000)
        assert listing.get_by_text("examples", exact=True).count() == 1
        assert page.locator("text=Would you like to get notified about official Jupyter news?"
                            ).count() == 0
        shot(page, "2-landed")

        listing.get_by_text("start_here.ipynb", exact=True).dblclick()
        page.wait_for_selector(".jp-NotebookPanel", timeout=120_000)
        page.wait_for_timeout(3000)
        # autoStartDefaultKernel (hub-config/lab/settings) starts the notebook's kernel
        # without asking; should JupyterLab still ask, take its preferred kernel
        select = page.locator(".jp-Dialog button", has_text="Select")
        if select.count():
            select.first.click()
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator"
                               "[data-status='idle']", timeout=180_000)
        run_all(page, timeout_s=900)
        page.wait_for_timeout(3000)  # the last plots' first paint
        page.wait_for_function(
            f"() => ({PLOT_OUTPUTS_JS})().filter((c) => c.painted > 0).length >= {PLOT_OUTPUTS}",
            timeout=120_000, polling=1000)
        shot(page, "3-notebook-run")

        outputs = page.evaluate(PLOT_OUTPUTS_JS)
        with_plots = [o for o in outputs if o["canvases"]]
        assert len(with_plots) == PLOT_OUTPUTS, outputs
        assert all(o["painted"] >= 1 for o in with_plots), outputs
        errors = page.locator(".jp-OutputArea-output[data-mime-type="
                              "'application/vnd.jupyter.stderr']").all_inner_texts()
        assert errors == [], errors
        text = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
        for bad in ("Traceback", "Error", "could not load resources", "INFO"):
            assert bad not in text, text[:3000]
        assert bad_responses == [], bad_responses

        # the Dask sidebar: the kernel's cluster is listed and the dashboard is connected
        registered = list((user_home / ".local" / "share" / "jupyter" / "runtime"
                           / "quantlib-dask").glob("*.json"))
        assert len(registered) == 1, registered
        address = json.loads(registered[0].read_text())["scheduler_address"]
        page.locator(".jp-SideBar [data-id='dask-dashboard-launcher']").click()
        item = page.locator(".dask-ClusterListingItem")
        item.first.wait_for(timeout=60_000)
        assert address in item.first.inner_text()
        page.wait_for_selector(".dask-DashboardListing-item", timeout=60_000)
        assert page.locator(".dask-DashboardListing-inactive").count() == 0
        shot(page, "4-dask-sidebar")
    except Exception:
        shot(page, "failure")
        raise
    finally:
        ctx.close()
