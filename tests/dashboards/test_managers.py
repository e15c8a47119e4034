"""A manager's path through the real hub in real chromium: home, tear sheet, compare, API.

Every number on screen is compared with ``meta.json`` or with empyrical-reloaded on the
stored returns, and every request the pages make is logged: none may leave the platform.
"""

from __future__ import annotations

import json

import empyrical as ep
import numpy as np
import pandas as pd
import pytest

from quantlib.backtest.metrics import format_metric

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.slow]


def meta_of(store: str, rid: str) -> dict:
    with open(f"{store}/objects/{rid}/meta.json") as fh:
        return json.load(fh)


def visible_to(store: str, user: str) -> list[dict]:
    """Every stored result ``user`` may see: published ones and their own (other tests
    of this session, e.g. a what-if run by the same manager, may have added some)."""
    import glob

    metas = []
    for path in sorted(glob.glob(f"{store}/objects/*/meta.json")):
        with open(path) as fh:
            metas.append(json.load(fh))
    return [m for m in metas if m.get("published") or m.get("author") == user]


def outside(requests: list[str], hub_url: str) -> list[str]:
    """Requests that did not go to the platform (the hub's origin) or stay in the page."""
    return [u for u in requests if not (u.startswith(hub_url + "/") or u.startswith("blob:")
                                        or u.startswith("data:"))]


def test_manager_home_cards_and_no_external_requests(login, browser, hub, store, screenshot):
    url, ids = store
    ctx, page = login(browser, hub, "mo", path="")
    seen: list[str] = []
    ctx.on("request", lambda r: seen.append(r.url))
    try:
        assert page.url == hub.service_url("dashboards")
        page.wait_for_selector(".ql-rcard", timeout=60_000)
        cards = page.locator(".ql-rcard")
        visible = visible_to(url, "mo")
        assert set(ids[:4]) <= {m["result_id"] for m in visible}
        # published and mo's own only: ann's work in progress is not there
        assert cards.count() == len(visible)
        assert page.locator("text=Work in progress").count() == 0
        for rid in ids[:4]:
            truth = meta_of(url, rid)["metrics"]
            card = page.locator(f".ql-rcard[data-result='{rid}']")
            assert card.locator("svg.ql-spark polyline").count() == 1
            for key in ("cagr", "sharpe", "max_drawdown"):
                el = card.locator(f"[data-metric={key}]")
                assert float(el.get_attribute("data-value")) == truth[key]
                assert el.inner_text().strip() == format_metric(key, truth[key])
            assert "snapshot demo-snapshot" in card.locator(".ql-fresh").inner_text()
        # the demo data ends 2025-12-31: far more than a week old, so flagged
        for rid in ids[:4]:
            assert page.locator(f".ql-rcard[data-result='{rid}'] .ql-fresh.stale").count() == 1
        for label in ("Gallery", "Compare", "Data health", "Results API", "Hub", "Log out"):
            assert page.locator(f"header.ql-top a:text-is('{label}')").count() == 1
        page.fill("#ql-search", "reversal")
        assert page.locator(".ql-rcard:visible").count() == 1
        page.fill("#ql-search", "")
        page.click(".ql-tag[data-tag=demo]")
        assert page.locator(".ql-rcard:visible").count() == sum(
            "demo" in (m.get("tags") or []) for m in visible)
        for rid in ids[:4]:
            assert page.locator(f".ql-rcard[data-result='{rid}']").is_visible()
        screenshot(page, "home-manager")
        for rid in ids[:3]:
            page.check(f".ql-pick[value='{rid}']")
        page.click("#ql-compare")
        page.wait_for_selector("#ql-rendered", state="attached", timeout=90_000)
        assert set(page.url.split("compare?ids=")[1].split(",")) == set(ids[:3])
        for rid in ids[:3]:
            truth = meta_of(url, rid)["metrics"]
            for key in ("sharpe", "cagr", "max_drawdown"):
                cell = page.locator(f"td[data-result='{rid}'][data-metric='{key}']")
                assert float(cell.get_attribute("data-value")) == truth[key]
        lines = page.evaluate("() => Bokeh.documents.flatMap(d => [...d._all_models.values()])"
                              ".filter(m => m.type === 'GlyphRenderer').length")
        assert lines == 3
        screenshot(page, "compare-manager")
        for path in ("gallery", "health", f"tearsheet?id={ids[1]}"):
            page.goto(hub.service_url("dashboards") + path, timeout=180_000)
            page.wait_for_load_state("networkidle", timeout=180_000)
        page.goto(hub.service_url("results-api"))
        page.wait_for_selector("text=logged in as mo", timeout=60_000)
        assert outside(seen, hub.url) == [], outside(seen, hub.url)
    finally:
        ctx.close()


def test_tear_sheet_relative_stats_drawdowns_and_heatmap(login, browser, hub, store, screenshot,
                                                         read_to_the_end):
    url, ids = store
    rid = ids[0]
    ctx, page = login(browser, hub, "mo", path=f"tearsheet?id={rid}")
    try:
        page.wait_for_selector("#ql-rendered", state="attached", timeout=120_000)
        read_to_the_end(page)  # the heatmap and rolling sections are below the fold
        returns = pd.read_parquet(f"{url}/objects/{rid}/returns.parquet")
        if "date" in returns:
            returns = returns.set_index("date")
        net, bench = returns["net"], returns["benchmark"]
        alpha, beta = ep.alpha_beta(net, bench)
        truth = {"alpha": alpha, "beta": beta,
                 "information_ratio": ep.excess_sharpe(net, bench) * np.sqrt(252),
                 "tracking_error": ep.annual_volatility(net - bench),
                 "up_capture": ep.up_capture(net, bench),
                 "down_capture": ep.down_capture(net, bench)}
        for key, value in truth.items():
            shown = float(page.locator(f"[data-stat={key}]").get_attribute("data-value"))
            assert shown == pytest.approx(value, rel=1e-9), key
        assert page.locator("[data-stat=beta]").inner_text() == format_metric("beta", beta)
        assert page.locator("[data-stat=alpha]").inner_text() == format_metric("alpha", alpha)
        depth = page.locator("[data-stat=drawdown_depth]")
        assert depth.count() == 5
        assert float(depth.first.get_attribute("data-value")) == pytest.approx(
            meta_of(url, rid)["metrics"]["max_drawdown"], rel=1e-12)
        hover = page.locator("th:text-is('Tracking error')").get_attribute("title")
        assert hover.startswith("% per year")
        params = page.locator("table.ql-params")
        assert params.locator("tr:has(th:text-is('lookback')) td").inner_text() == "60"
        factors = page.evaluate(
            "() => Bokeh.documents.flatMap(d => [...d._all_models.values()])"
            ".filter(m => m.type === 'FactorRange').map(m => m.factors)"
            ".filter(f => f.includes('Jan'))")
        assert factors and factors[0][:3] == ["Jan", "Feb", "Mar"] and factors[0][-1] == "Year"
        titles = page.evaluate("() => Bokeh.documents.flatMap(d => [...d._all_models.values()])"
                               ".filter(m => m.type === 'Title').map(m => m.text)")
        for title in ("Distribution of daily returns", "Rolling beta to the benchmark (6 months)",
                      "Monthly returns"):
            assert title in titles
        screenshot(page, "tearsheet-relative")
    finally:
        ctx.close()


def test_api_in_the_browser_with_the_hub_cookie(login, browser, hub, store):
    _url, ids = store
    ctx, page = login(browser, hub, "mo", path="")
    try:
        page.goto(hub.service_url("results-api"))  # OAuth with the hub, then the docs
        page.wait_for_selector("text=logged in as mo", timeout=60_000)
        assert page.locator(".ql-op").count() >= 7
        answer = page.goto(hub.service_url("results-api") + "api/v1/results")
        assert answer.status == 200
        listed = {m["result_id"] for m in json.loads(page.inner_text("body"))}
        assert listed == {m["result_id"] for m in visible_to(_url, "mo")}
        assert set(ids[:4]) <= listed
        page.goto(hub.service_url("results-api") + "token")
        page.wait_for_selector("text=curl -H", timeout=30_000)
        assert page.locator(f"a[href='{hub.url}/hub/token']").count() == 1
        assert hub.service_url("results-api") + "api/v1/results" in page.content()
        cookies = {c["name"]: c for c in ctx.cookies()}
        assert cookies["quantlib-results-api-token"]["httpOnly"] is True
    finally:
        ctx.close()
    # a logged-out browser is sent to the hub's login, a script without token gets 401
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(hub.service_url("results-api"))
        assert "/hub/login" in page.url
        assert ctx.request.get(hub.service_url("results-api") + "api/v1/results").status == 401
    finally:
        ctx.close()


def test_manager_hub_home_has_no_start_button(login, browser, hub):
    ctx, page = login(browser, hub, "mo", path="")
    try:
        page.goto(hub.url + "/hub/home")
        page.wait_for_selector("#ql-no-server", timeout=30_000)
        assert page.locator("text=Start My Server").count() == 0
        assert page.locator("a:text('Open the results dashboards')").get_attribute(
            "href") == "/services/dashboards/"
        page.goto(hub.url + "/hub/spawn/mo")
        assert page.locator("#ql-refused a[href='/hub/home']").count() == 1
    finally:
        ctx.close()
