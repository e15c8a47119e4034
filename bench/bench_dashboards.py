"""Dashboards: tear-sheet render time (Playwright + Debian chromium) and 20 concurrent viewers.

Starts ``quantlib dashboards serve --no-auth`` (loopback dev mode: the hub's OAuth adds one
redirect on the first visit only) on a store holding a 10-year daily result, with an empty
tear-sheet plot cache (``QUANTLIB_HOME`` in the temporary folder), then:

Each view records two times from navigation: **in view** (the headline, what the user
sees: the ``#ql-rendered`` marker attached and every plot inside the 1400x1000 viewport
painted, no section placeholder left in it; ``VIEW_PAINTED_JS``) and **all plots** (every
one of the page's plot canvases painted, without scrolling: the page draws the sections
below the fold after the first paint).

``--before REF`` also serves git ref ``REF``'s ``dashboards/`` package (extracted to a
temporary folder, first on ``PYTHONPATH``) from the same store, and interleaves its views
with the current code's, so a before/after pair is taken back to back on the same load.

0. the first view after the server started, reported apart (the server's background
   thread builds published results' plots at start; if the view gets there first, it
   waits for that one build);
1. one viewer: time from navigation to the tear sheet fully rendered (the last section
   attached and every plot canvas painted), ``--repeat`` times, each in a fresh browser
   context (cold HTTP cache: BokehJS fetched and compiled every time); then the same in
   one context (a manager's browser that has loaded BokehJS before);
2. ``--viewers`` (default 20) viewers opening the tear sheet at once: median and p95
   time to fully rendered, and the server's peak RSS.

Usage: ``uv run python bench/bench_dashboards.py [--viewers 20] [--repeat 5] [--before main]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

from quantlib.testing.browser import CHROMIUM, CHROMIUM_ARGS, VIEW_PAINTED_JS, painted_at_least

PLOTS = 12  # figures painted at first view of a tear sheet without factor sections


async def open_tearsheet(browser, url: str, ctx=None) -> tuple[float, float]:
    """Seconds from navigation to (in view painted, all plots painted); a fresh browser
    context (cold HTTP cache) unless ``ctx`` is given (then its cache, e.g. BokehJS from an
    earlier page, is used)."""
    own = ctx is None
    ctx = ctx or await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await ctx.new_page()
    t0 = time.perf_counter()
    await page.goto(url, wait_until="commit")
    await page.wait_for_function(VIEW_PAINTED_JS, timeout=300_000, polling=50)
    seen = time.perf_counter() - t0
    await page.wait_for_function(painted_at_least(PLOTS), timeout=300_000, polling=50)
    elapsed = time.perf_counter() - t0
    await (ctx.close() if own else page.close())
    return seen, elapsed


async def measure(urls: dict[str, str], repeat: int, viewers: int,
                  server: psutil.Process) -> dict:
    """Every case for each page in ``urls`` (label -> URL), their views interleaved;
    the concurrent viewers on the last one (the current code) only."""
    from playwright.async_api import async_playwright

    peak = {"rss": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = server.memory_info().rss + sum(c.memory_info().rss
                                                 for c in server.children(recursive=True))
            peak["rss"] = max(peak["rss"], rss)
            time.sleep(0.1)

    out: dict = {label: {"single": [], "warm": []} for label in urls}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for label, url in urls.items():
            out[label]["first"] = [await open_tearsheet(browser, url)]  # first view after start
        for _ in range(repeat):
            for label, url in urls.items():
                out[label]["single"].append(await open_tearsheet(browser, url))
        ctxs = {}
        for label, url in urls.items():
            ctxs[label] = await browser.new_context(viewport={"width": 1400, "height": 1000})
            await open_tearsheet(browser, url, ctxs[label])  # fills this context's HTTP cache
        for _ in range(repeat):
            for label, url in urls.items():
                out[label]["warm"].append(await open_tearsheet(browser, url, ctxs[label]))
        for ctx in ctxs.values():
            await ctx.close()
        out["base_rss"] = server.memory_info().rss
        if viewers:
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            url = list(urls.values())[-1]
            out["many"] = await asyncio.gather(*(open_tearsheet(browser, url)
                                                 for _ in range(viewers)))
            stop.set()
        await browser.close()
    out["peak_rss"] = peak["rss"]
    return out


def start_server(store: str, name: str, pythonpath: str | None = None) -> tuple:
    """``quantlib dashboards serve`` on ``store`` with its own empty plot cache."""
    from quantlib.platform.hubconfig import free_port

    port = free_port()
    exe = str(Path(sys.executable).with_name("quantlib"))
    log = open(Path(store) / f"serve-{name}.log", "wb")  # noqa: SIM115
    env = {**os.environ, "QUANTLIB_HOME": str(Path(store) / f"home-{name}")}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    proc = subprocess.Popen([exe, "dashboards", "serve", "--no-auth", "--port", str(port),
                             "--results", store, "--dev-user", "mo", "--dev-groups", "managers"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    for _ in range(480):
        try:
            if requests.get(f"http://127.0.0.1:{port}/liveness", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.5)
    return proc, port


def extract(ref: str, folder: str) -> str:
    """``ref``'s ``dashboards/`` package under ``folder`` (for ``PYTHONPATH``)."""
    root = Path(__file__).resolve().parents[1]
    tar = subprocess.run(["git", "-C", str(root), "archive", ref, "dashboards"], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=tar, check=True)
    return folder


def row(case: str, times: list[float], extra: str = "") -> str:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return (f"{case} | {len(times)} | {statistics.median(times):.2f} | {p95:.2f} | "
            f"{times[0]:.2f} | {times[-1]:.2f} | {extra}")


def report(out: dict, viewers: int) -> None:
    print("\ntear sheet, 10-year daily result: seconds from navigation to 'in view' painted "
          f"(headline) / all {PLOTS} plots painted")
    print("page | case | n | median_s | p95_s | min_s | max_s | server RSS MiB")
    for label in [k for k in out if isinstance(out[k], dict)]:
        for case, name in (("first", "first view after server start"), ("single", "1 viewer"),
                           ("warm", "1 viewer, one browser context")):
            views = out[label][case]
            rss = f"{out['base_rss'] / 2**20:.0f}" if case == "single" else ""
            print(f"{label} | " + row(f"{name}, in view", [v[0] for v in views], rss))
            print(f"{label} | " + row(f"{name}, all plots", [v[1] for v in views]))
        median = statistics.median(v[0] for v in out[label]["single"])
        print(f"{label}: 1 viewer median (in view) < 2 s:", median < 2.0)
    if out.get("many"):
        rss = f"{out['base_rss'] / 2**20:.0f} -> {out['peak_rss'] / 2**20:.0f}"
        print("after | " + row(f"{viewers} concurrent, in view", [v[0] for v in out["many"]], rss))
        print("after | " + row(f"{viewers} concurrent, all plots", [v[1] for v in out["many"]]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--viewers", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--before", default="", help="git ref whose dashboards/ to compare with")
    args = p.parse_args()
    from quantlib.testing.demo import populate_demo_store

    store = tempfile.mkdtemp(prefix="bench-dash-")
    rid = populate_demo_store(store, n_published=1, years=10, unpublished_author=None)[0]
    servers = {}
    try:
        if args.before:
            old = extract(args.before, tempfile.mkdtemp(prefix="bench-dash-before-"))
            servers["before"] = start_server(store, "before", old)
        servers["after"] = start_server(store, "after")
        urls = {k: f"http://127.0.0.1:{port}/tearsheet?id={rid}" for k, (_, port) in servers.items()}
        out = asyncio.run(measure(urls, args.repeat, args.viewers,
                                  psutil.Process(servers["after"][0].pid)))
    finally:
        for proc, _port in servers.values():
            proc.terminate()
            proc.wait(30)
    report(out, args.viewers)
    for name in servers:
        built = [ln for ln in (Path(store) / f"serve-{name}.log").read_text().splitlines()
                 if "built and cached" in ln]
        print(f"server ({name}):", *built, sep="\n  ")


if __name__ == "__main__":
    main()
