"""The tear-sheet page served by ``quantlib dashboards serve`` (dev mode) with cached plots.

One server process on a demo store: the page's stored numbers, the plot cache (prebuilt
for published results by the server's background thread, or on a first view; reused
after), access (a manager gets 403 for another user's unpublished
result), both downloads, and a real chromium drawing every plot from the cache.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from dashboards.plot_cache import CODE_VERSION
from quantlib.backtest.metrics import format_metric
from quantlib.platform.hubconfig import free_port
from quantlib.results import publish
from quantlib.testing.browser import VIEW_PAINTED_JS
from quantlib.testing.demo import demo_result, populate_demo_store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A dev-mode dashboards server as manager ``mo``; yields (url, ids, store, home, log).

    ``ids``: three published results (the third with an unreadable returns file) and
    ann's unpublished one.
    """
    store = tmp_path_factory.mktemp("results")
    home = tmp_path_factory.mktemp("home")
    ids = populate_demo_store(str(store), n_published=3, years=4)
    (store / "objects" / ids[2] / "returns.parquet").write_bytes(b"not parquet")
    port = free_port()
    log_path = home / "serve.log"
    exe = str(Path(sys.executable).with_name("quantlib"))
    env = {**os.environ, "QUANTLIB_HOME": str(home)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, "dashboards", "serve", "--no-auth", "--port", str(port),
                                 "--results", str(store), "--dev-user", "mo",
                                 "--dev-groups", "managers"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                if requests.get(url + "liveness", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        yield url, ids, store, home, log_path
    finally:
        proc.terminate()
        proc.wait(30)


def cache_files(home: Path, rid: str) -> list[str]:
    return sorted(p.name for p in (home / "cache" / "tearsheet").glob(f"{rid}-*.json"))


def wait_for_cache(home: Path, rid: str, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while not cache_files(home, rid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return cache_files(home, rid)


def test_published_results_are_prebuilt_without_a_view(server):
    _url, ids, store, home, log_path = server
    assert wait_for_cache(home, ids[0]) == [f"{ids[0]}-{CODE_VERSION}.json"]
    assert wait_for_cache(home, ids[1]) == [f"{ids[1]}-{CODE_VERSION}.json"]
    assert cache_files(home, ids[-1]) == []  # unpublished: only on its author's view
    deadline = time.monotonic() + 30
    while "could not prebuild the tear-sheet plots of " + ids[2] not in log_path.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert cache_files(home, ids[2]) == []  # unreadable returns: logged, nothing cached
    new = publish(demo_result(seed=7, years=2), title="published later", url=str(store),
                  allow_synthetic=True)
    assert wait_for_cache(home, new) == [f"{new}-{CODE_VERSION}.json"]  # no view needed


def test_page_shows_stored_metrics_and_plots_built_once(server):
    url, ids, store, home, log_path = server
    first = requests.get(f"{url}tearsheet?id={ids[0]}", timeout=60)
    assert first.status_code == 200
    assert cache_files(home, ids[0]) == [f"{ids[0]}-{CODE_VERSION}.json"]
    second = requests.get(f"{url}tearsheet?id={ids[0]}", timeout=60)
    plots = re.search(r"id='ql-plots-json'>(.*?)</script>", second.text, re.S)
    assert plots is not None
    assert plots.group(1) == (home / "cache" / "tearsheet" / cache_files(home, ids[0])[0]
                              ).read_text().replace("<", "\\u003c")
    assert log_path.read_text().count(f"plots of {ids[0]} built and cached") == 1
    meta = json.loads((store / "objects" / ids[0] / "meta.json").read_text())
    cagr = meta["metrics"]["cagr"]
    assert f"data-metric='cagr' data-value='{cagr!r}'>{format_metric('cagr', cagr)}<" in second.text
    assert "static/js/bokeh.min.js?v=" in second.text


def test_summary_stays_readable_when_plots_cannot_be_built(server):
    url, ids, store, home, _log = server
    page = requests.get(f"{url}tearsheet?id={ids[2]}", timeout=60)
    assert page.status_code == 200
    meta = json.loads((store / "objects" / ids[2] / "meta.json").read_text())
    sharpe = meta["metrics"]["sharpe"]
    assert f"data-metric='sharpe' data-value='{sharpe!r}'" in page.text
    assert "The plots could not be built" in page.text and "parquet" in page.text
    assert page.text.endswith("</body></html>") and cache_files(home, ids[2]) == []


def test_manager_gets_403_for_unpublished_and_nothing_is_built(server):
    url, ids, _store, home, _log = server
    denied = requests.get(f"{url}tearsheet?id={ids[-1]}", timeout=60)
    assert denied.status_code == 403
    assert "result must be published or yours" in denied.text
    assert "data-metric" not in denied.text and "Work in progress" not in denied.text
    assert cache_files(home, ids[-1]) == []
    assert requests.get(f"{url}tearsheet?id={ids[-1]}&download=csv",
                        timeout=60).status_code == 403


def test_downloads(server):
    url, ids, store, _home, _log = server
    csv = requests.get(f"{url}tearsheet?id={ids[1]}&download=csv", timeout=60)
    assert csv.headers["Content-Disposition"] == f'attachment; filename="{ids[1]}-returns.csv"'
    frame = pd.read_csv(io.BytesIO(csv.content))
    truth = pd.read_parquet(store / "objects" / ids[1] / "returns.parquet")
    assert len(frame) == len(truth)
    assert abs(frame["net"] - truth["net"].to_numpy()).max() < 1e-11
    report = requests.get(f"{url}tearsheet?id={ids[1]}&download=html", timeout=60).text
    assert "static/js/bokeh.min.js" not in report and "Download returns" not in report
    assert "Bokeh.embed.embed_item" in report and len(report) > 1_000_000  # BokehJS inlined


def test_browser_draws_every_plot_from_the_cache_and_toggles_log_scale(server, browser,
                                                                      painted_canvases):
    url, ids, _store, _home, log_path = server
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    try:
        for _ in range(2):  # the second view is served from the cache
            page.goto(f"{url}tearsheet?id={ids[1]}")
            page.wait_for_selector(f"#ql-rendered[data-result='{ids[1]}']", state="attached",
                                   timeout=60_000)
            page.wait_for_function(VIEW_PAINTED_JS, timeout=30_000)  # the first screen drawn
            sections = page.locator(".ql-section")
            assert sections.count() == 7  # equity, underwater, yearly+distribution, heatmap,
            # rolling, exposure+turnover, holdings+costs
            sections.last.scroll_into_view_if_needed()  # below the fold: drawn when reached
            page.wait_for_selector(f"#ql-rendered-all[data-result='{ids[1]}']",
                                   state="attached", timeout=60_000)
            assert page.locator("[data-ql-pending]").count() == 0
            plots = sum(int(sections.nth(i).get_attribute("data-plots"))
                        for i in range(sections.count()))
            assert plots == 12
            deadline = time.monotonic() + 30
            while painted_canvases(page)["painted"] < plots and time.monotonic() < deadline:
                page.wait_for_timeout(100)
            assert painted_canvases(page)["painted"] >= plots
            titles = page.evaluate("() => Bokeh.documents.flatMap(d => [...d._all_models"
                                   ".values()]).filter(m => m.type === 'Title').map(m => m.text)")
            assert "Costs (cumulative, fraction of capital)" in titles  # the last section's
        page.evaluate("window.scrollTo(0, 0)")
        assert log_path.read_text().count(f"plots of {ids[1]} built and cached") == 1
        lin_log = ("() => ['equity', 'equity_log'].map(n => Bokeh.documents"
                   ".map(d => d.get_model_by_name(n)).find(m => m).visible)")
        assert page.evaluate(lin_log) == [True, False]
        page.click("#ql-log")
        assert page.evaluate(lin_log) == [False, True]
        assert page.locator("#ql-log").inner_text() == "Linear scale"
        page.wait_for_timeout(300)
        assert painted_canvases(page)["painted"] >= 12  # the log figure drew in its place
    finally:
        ctx.close()
