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
   Panel's or Bokeh's files failed; "Run All" stops waiting at the first failed cell and
   reports every cell's prompt and output, the hub log's tail and the run's processes;
4. a cell typed at the end calls a HoloViews plot's ``.show()``: its output links to
   ``/user/alice/proxy/absolute/<port>/``, where the app renders with a painted canvas;
5. the Dask sidebar lists the notebook's running cluster (the scheduler address its kernel
   registered), its dashboard is connected, and its task-stream and progress panes open
   with the dashboard's Bokeh plots in them.

Screenshots are kept in ``artifacts/screenshots/lab-*.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Error as PlaywrightError

from quantlib.platform.hubconfig import free_port
from quantlib.platform.process import platform_processes
from quantlib.platform.settings import HUB_CONFIG_DIR
from quantlib.testing.browser import painted_at_least

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


#: per code cell: its prompt, whether an output is an error or on stderr, its output text
CELLS_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')].map((c) => ({
  prompt: (c.querySelector('.jp-InputPrompt') || {}).textContent?.trim() ?? '',
  failed: !!c.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],'
                            + ' .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'),
  text: [...c.querySelectorAll('.jp-OutputArea-output')].map((o) => o.innerText).join('\\n')
}))"""


def diagnosis(page, home: Path, cells: list[dict]) -> str:
    """Every cell's prompt and output, a screenshot, the hub log's tail, the user's processes."""
    import psutil

    lines = [f"cell {i}: {c['prompt'] or '(no prompt)'}\n    "
             + (c["text"][-1500:].replace("\n", "\n    ") or "(no output)")
             for i, c in enumerate(cells)]
    lines.append(f"screenshot: {shot(page, 'failure')}")
    log = home / "platform" / "hub.log"
    text = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
    tail = [t for t in text if not re.search(r"ConfigProxy|/hub/api/user|/activity", t)][-80:]
    lines += ["--- hub.log tail (the single-user server and its kernels write there too):",
              *tail]
    state = json.loads((home / "platform" / "hub.json").read_text())
    lines.append("--- processes of this platform run:")
    for proc in platform_processes(state["run_id"]):
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            lines.append(f"{proc.pid} {proc.username()} {proc.status()} cpu {t.user + t.system:.1f}s "
                         f"{' '.join(proc.cmdline())[:160]}")
    return "\n".join(lines)


def open_notebook(page, name: str, attempts: int = 3) -> None:
    """Open ``name`` from the file browser; return once its kernel is idle.

    ``autoStartDefaultKernel`` (hub-config/lab/settings) starts the kernel without asking.
    On a loaded machine JupyterLab may still show its "Select Kernel" dialog (its session
    request came back late, or before the kernel specs) while the server has started a
    kernel. Choosing a kernel there replaces the one starting and can leave the notebook
    connected to the one shut down, idle, so that "Run All" runs nothing (CI's 900 s
    time-out). The dialog is cancelled instead and the page reloaded: JupyterLab then
    reopens the notebook on the session the server holds.
    """
    page.locator(".jp-LauncherCard").first.wait_for(timeout=120_000)  # kernel specs loaded
    page.locator(".jp-DirListing-content").get_by_text(name, exact=True).dblclick()
    idle = ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']"
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    deadline, idle_since, attempt = time.monotonic() + 300, None, 0
    while time.monotonic() < deadline:
        if dialog.count():
            attempt += 1
            if attempt > attempts:
                break
            print(f"JupyterLab asked for a kernel (attempt {attempt}): cancel, reload")
            shot(page, f"kernel-dialog-{attempt}")
            dialog.locator("button.jp-mod-reject").click()
            page.reload()
            try:
                page.wait_for_selector(".jp-NotebookPanel", timeout=60_000)
            except PlaywrightError:  # the layout was not restored: open it again
                page.locator(".jp-DirListing-content").get_by_text(name, exact=True).dblclick()
            idle_since = None
        elif page.locator(idle).count():
            # idle for 3 s in a row: the kernel's start-up messages are over, no dialog came
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= 3:
                return
        else:
            idle_since = None
        page.wait_for_timeout(500)
    if attempt <= attempts:
        other = page.locator(".jp-Dialog").all_inner_texts()
        pytest.fail(f"{name}: the kernel was not idle in 300 s; dialogs: {other}",
                    pytrace=False)
    pytest.fail(f"{name}: JupyterLab kept asking for a kernel", pytrace=False)


def start_run_all(page, attempts: int = 4, wait_s: float = 20) -> None:
    """Click Run > Run All Cells until a cell starts (``[*]:`` or ``[n]:``).

    On a loaded machine the menu entry is sometimes still disabled (the notebook's
    session not ready yet) and the click does nothing; it is then clicked again, and
    each retry is printed. After ``attempts`` the caller's wait reports "no cell started".
    """
    for attempt in range(attempts):
        page.keyboard.press("Escape")  # close a menu left open by an earlier try
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()  # the notebook is current
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if any(c["prompt"] != "[ ]:" for c in page.evaluate(CELLS_JS)):
                return
            page.wait_for_timeout(1000)
        print(f"Run All Cells started no cell in {wait_s:.0f} s (try {attempt + 1}); again")


def run_all(page, home: Path, timeout_s: float) -> None:
    """Run All Cells from the Run menu; wait until every code cell has run.

    Stops at the first error or stderr output, or when no cell started within a minute;
    on failure the message holds :func:`diagnosis`.
    """
    start_run_all(page)
    started = time.monotonic()
    deadline, problem = started + timeout_s, "time-out"
    while True:
        cells = page.evaluate(CELLS_JS)
        if any(c["failed"] for c in cells):
            problem = "a cell failed"
            break
        if cells and all(re.fullmatch(r"\[\d+\]:", c["prompt"]) for c in cells):
            return
        if time.monotonic() > deadline:
            break
        if time.monotonic() - started > 60 and all(c["prompt"] == "[ ]:" for c in cells):
            problem = "no cell started"
            break
        page.wait_for_timeout(1000)
    pytest.fail(f"Run All Cells: {problem} after {timeout_s - deadline + time.monotonic():.0f} s"
                f"\n{diagnosis(page, home, cells)}", pytrace=False)


#: a Dask dashboard pane's Bokeh views (elements, in shadow roots too) and canvases
PANE_JS = """() => {
  let views = 0, canvases = 0;
  const walk = (r) => r.querySelectorAll('*').forEach((el) => {
    if (typeof el.className === 'string' && el.className.includes('bk-')) views += 1;
    if (el.tagName === 'CANVAS') canvases += 1;
    if (el.shadowRoot) walk(el.shadowRoot);
  });
  walk(document);
  return {views, canvases};
}"""


def dashboard_pane(page, name: str, path: str, timeout_s: float = 60) -> dict:
    """Open the Dask sidebar's ``name`` pane; its Bokeh views once it has any."""
    page.locator(".dask-DashboardListing-item").get_by_text(name, exact=True).click()
    deadline, found = time.monotonic() + timeout_s, {"views": 0, "canvases": 0}
    while time.monotonic() < deadline:
        for frame in [f for f in page.frames if f.url.rstrip("/").endswith(path)]:
            with contextlib.suppress(PlaywrightError):  # the frame is still loading
                found = frame.evaluate(PANE_JS)
        if found["views"]:
            break
        page.wait_for_timeout(1000)
    return found


@pytest.mark.timeout(1800)
def test_researcher_lands_in_lab_runs_start_here_and_sees_plots_and_cluster(lab_platform,
                                                                            browser):
    url, home = lab_platform["url"], lab_platform["home"]
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
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

        open_notebook(page, "start_here.ipynb")
        run_all(page, home, timeout_s=600)
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

        # a researcher's own `.show()` (here of a HoloViews heatmap) gives a link under
        # the hub, not a localhost port, and the app behind it renders
        shown_s = time.perf_counter()
        page.locator(".jp-NotebookPanel .jp-Cell").last.click()
        page.keyboard.press("Escape")
        page.keyboard.press("b")  # a new code cell below, then edit it
        page.keyboard.press("Enter")
        page.keyboard.insert_text(
            'pn.panel(display.sweep_heatmap(table, "window", "skip", "sharpe")).show(title="sweep")')
        page.keyboard.press("Shift+Enter")
        link = page.locator(".jp-OutputArea-output a[href*='/proxy/']").last
        link.wait_for(timeout=120_000)
        href = link.get_attribute("href")
        assert re.fullmatch(r"/user/alice/proxy/absolute/\d+/", href or ""), href
        app = ctx.new_page()
        app.goto(url.rstrip("/") + href)
        app.wait_for_function(painted_at_least(1), timeout=120_000, polling=1000)
        assert "<title>sweep</title>" in app.content()
        shot(app, "4-show")
        app.close()
        print(f".show() -> app painted: {time.perf_counter() - shown_s:.1f} s")

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
        for name, path in (("Task Stream", "individual-task-stream"),
                           ("Progress", "individual-progress")):
            found = dashboard_pane(page, name, path)
            assert found["views"] >= 1, (name, found)  # the dashboard's plot is there
            if name == "Task Stream":  # the sweep's tasks are drawn
                assert found["canvases"] >= 1, (name, found)
        assert page.locator(".dask-DaskDashboard-inactive:visible").count() == 0
        shot(page, "5-dask-sidebar")
    except Exception:
        shot(page, "failure")
        raise
    finally:
        ctx.close()
