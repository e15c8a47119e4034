"""Dashboards: tear-sheet render time (Playwright + Debian chromium) and 20 concurrent viewers.

Starts ``quantlib dashboards serve --no-auth`` (loopback dev mode: the hub's OAuth adds one
redirect on the first visit only) on a store holding a 10-year daily result, with an empty
tear-sheet plot cache (``QUANTLIB_HOME`` in the temporary folder), then:

0. the first view after the server started, reported apart (the server's background
   thread builds published results' plots at start; if the view gets there first, it
   waits for that one build);
1. one viewer: time from navigation to the tear sheet fully rendered (the last section
   attached and every plot canvas painted), ``--repeat`` times, each in a fresh browser
   context (cold HTTP cache: BokehJS fetched and compiled every time); then the same in
   one context (a manager's browser that has loaded BokehJS before);
2. ``--viewers`` (default 20) viewers opening the tear sheet at once: median and p95
   time to fully rendered, and the server's peak RSS.

Usage: ``uv run python bench/bench_dashboards.py [--viewers 20] [--repeat 5]``
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

from quantlib.testing.browser import CHROMIUM, CHROMIUM_ARGS, painted_at_least

PLOTS = 12  # figures painted at first view of a tear sheet without factor sections


async def open_tearsheet(browser, url: str, ctx=None) -> float:
    """Seconds from navigation to fully rendered; a fresh browser context (cold HTTP cache)
    unless ``ctx`` is given (then its cache, e.g. BokehJS from an earlier page, is used)."""
    own = ctx is None
    ctx = ctx or await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await ctx.new_page()
    t0 = time.perf_counter()
    await page.goto(url, wait_until="commit")
    await page.wait_for_selector("#ql-rendered", state="attached", timeout=300_000)
    await page.wait_for_function(painted_at_least(PLOTS), timeout=300_000, polling=50)
    elapsed = time.perf_counter() - t0
    await (ctx.close() if own else page.close())
    return elapsed


async def measure(url: str, repeat: int, viewers: int, server: psutil.Process) -> dict:
    from playwright.async_api import async_playwright

    peak = {"rss": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = server.memory_info().rss + sum(c.memory_info().rss
                                                 for c in server.children(recursive=True))
            peak["rss"] = max(peak["rss"], rss)
            time.sleep(0.1)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        first = await open_tearsheet(browser, url)  # first view after server start
        single = [await open_tearsheet(browser, url) for _ in range(repeat)]
        ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
        await open_tearsheet(browser, url, ctx)  # fills this browser's HTTP cache
        warm = [await open_tearsheet(browser, url, ctx) for _ in range(repeat)]
        await ctx.close()
        base_rss = server.memory_info().rss
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        many = await asyncio.gather(*(open_tearsheet(browser, url) for _ in range(viewers)))
        stop.set()
        await browser.close()
    many = sorted(many)
    return {"first": first, "single": single, "warm": warm, "many": many, "base_rss": base_rss,
            "peak_rss": peak["rss"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--viewers", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    from quantlib.platform.hubconfig import free_port
    from quantlib.testing.demo import populate_demo_store

    store = tempfile.mkdtemp(prefix="bench-dash-")
    rid = populate_demo_store(store, n_published=1, years=10, unpublished_author=None)[0]
    port = free_port()
    exe = str(Path(sys.executable).with_name("quantlib"))
    log = open(Path(store) / "serve.log", "wb")  # noqa: SIM115
    env = {**os.environ, "QUANTLIB_HOME": str(Path(store) / "home")}  # empty plot cache
    proc = subprocess.Popen([exe, "dashboards", "serve", "--no-auth", "--port", str(port),
                             "--results", store, "--dev-user", "mo", "--dev-groups", "managers"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(240):
            try:
                if requests.get(f"http://127.0.0.1:{port}/liveness", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/tearsheet?id={rid}"
        out = asyncio.run(measure(url, args.repeat, args.viewers, psutil.Process(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(30)
    single, many = out["single"], out["many"]
    p95 = many[min(len(many) - 1, int(round(0.95 * (len(many) - 1))))]
    print(f"\ntear sheet, 10-year daily result ({PLOTS} plots), navigation -> fully rendered")
    print("case | n | median_s | p95_s | min_s | max_s | server RSS MiB (idle -> peak)")
    print(f"first view after server start | 1 | {out['first']:.2f} | | | |")
    print(f"1 viewer | {len(single)} | {statistics.median(single):.2f} | "
          f"{sorted(single)[-1]:.2f} | {min(single):.2f} | {max(single):.2f} | "
          f"{out['base_rss'] / 2**20:.0f}")
    warm = out["warm"]
    print(f"1 viewer, one browser context | {len(warm)} | {statistics.median(warm):.2f} | "
          f"{sorted(warm)[-1]:.2f} | {min(warm):.2f} | {max(warm):.2f} |")
    print(f"{args.viewers} concurrent | {len(many)} | {statistics.median(many):.2f} | "
          f"{p95:.2f} | {min(many):.2f} | {max(many):.2f} | "
          f"{out['base_rss'] / 2**20:.0f} -> {out['peak_rss'] / 2**20:.0f}")
    print("1 viewer median < 2 s:", statistics.median(single) < 2.0)
    built = [ln for ln in (Path(store) / "serve.log").read_text().splitlines()
             if "built and cached" in ln]
    print("server:", *built, sep="\n  ")


if __name__ == "__main__":
    main()
