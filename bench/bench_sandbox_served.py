"""Benchmark the streamed (out-of-core) vendor sandbox at real size: generate + write, pages,
one advance.

Usage: ``uv run python bench/bench_sandbox_served.py [--sizes KR=5000,US=14000,EU=6000]
[--years 20] [--end 2025-12-31] [--keep DIR]``. Builds a
:class:`quantlib.sandbox.served.ServedVendor` (FTP tree + API partitions on disk, in a
temporary folder unless ``--keep``), printing per market the seconds to generate and
write its months and statements, the bars and chunks it handled and the largest chunk;
then the reference files, disk bytes, the process's peak RSS (``VmHWM``), the time of
US ``/v1/prices`` pages (through :class:`~quantlib.sandbox.apistore.StoredApi`, records
built, JSON not encoded) and of advancing the clock by one session.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from quantlib.calendars import sessions
from quantlib.sandbox.served import ServedVendor


def vm_hwm_gib() -> float:
    """Peak resident set of this process (``VmHWM``), GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _timed_pages(api, queries: list[dict[str, str]]) -> list[tuple[str, float, int]]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        page = api.page("prices", q)
        out.append(("&".join(f"{k}={v}" for k, v in q.items()),
                    (time.perf_counter() - t0) * 1e3, page["total_rows"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="KR=5000,US=14000,EU=6000")
    ap.add_argument("--years", type=float, default=20)
    ap.add_argument("--end", default="2025-12-31")
    ap.add_argument("--keep", default=None, help="write here and keep it")
    args = ap.parse_args()
    sizes = {k: int(v) for k, v in (x.split("=") for x in args.sizes.split(","))}
    end = pd.Timestamp(args.end)
    start = end - pd.Timedelta(days=round(365.25 * args.years)) + pd.Timedelta(days=1)
    for m in sizes:            # warm the exchange calendars (not part of the timing)
        sessions(m, "2020-01-01", "2020-01-10")
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench-served-"))
    v = ServedVendor(base / "ftp", base / "api", sizes, args.years, 42, start, tuple(sizes))
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    mark = [time.perf_counter()]

    def on_chunk(market: str, kind: str, rows: int) -> None:
        s = stats[market]
        s[kind] += rows
        s[f"{kind}_chunks"] += 1
        s[f"{kind}_max"] = max(s[f"{kind}_max"], rows)
        s["done"] = time.perf_counter()
        if kind == "prices" and s["prices_chunks"] % 60 == 0:     # progress, for long runs
            print(f"    {market}: {s['prices_chunks']:.0f} months, {s['prices']:,.0f} bars, "
                  f"{s['done'] - mark[0]:.0f} s, VmHWM {vm_hwm_gib():.2f} GiB", flush=True)

    try:
        t0 = time.perf_counter()
        files = v.build(end, on_chunk=on_chunk)
        wall = time.perf_counter() - t0
        print(f"served sandbox: {args.sizes} x {args.years:g} y to {end.date()}, "
              f"{len(files):,} FTP files, {wall:.1f} s, peak RSS {vm_hwm_gib():.2f} GiB")
        prev = mark[0]
        for m, s in stats.items():
            # a market's time runs from the previous market's last chunk to its own
            # (its first months' generation happens before its first chunk arrives)
            print(f"  {m}: {s['prices']:,.0f} bars in {s['prices_chunks']:.0f} month "
                  f"chunks (largest {s['prices_max']:,.0f}), {s['statements']:,.0f} "
                  f"statement rows in {s['statements_chunks']:.0f} chunks (largest "
                  f"{s['statements_max']:,.0f}): {s['done'] - prev:.1f} s")
            prev = s["done"]
        print(f"  reference files + FX: {t0 + wall - prev:.1f} s")
        ftp, api_b = disk_bytes(v.ftp_root), disk_bytes(v.store.root)
        print(f"disk: FTP tree {ftp / 1e9:.2f} GB, API partitions {api_b / 1e9:.2f} GB")
        api = v.api()
        last = str(end.date())
        month = str((end - pd.Timedelta(days=30)).date())
        for q, ms, total in _timed_pages(api, [
                {"market": "US", "start": month, "end": last},
                {"market": "US", "start": month, "end": last, "page": "3"},
                {"market": "US", "page": "5000"},
                {"market": "US", "updated_since": month, "page_size": "50000"}]):
            print(f"  page {q}: {ms:.1f} ms ({total:,} rows selected)", flush=True)
        nxt = sessions("US", end + pd.Timedelta(days=1), end + pd.Timedelta(days=10))[0]
        t0 = time.perf_counter()
        moved = v.build(nxt)
        print(f"advance one session to {nxt.date()}: {time.perf_counter() - t0:.1f} s, "
              f"{len(moved)} FTP files written: {', '.join(f.path for f in moved[:6])}",
              flush=True)
        print(f"peak RSS of the whole run (VmHWM): {vm_hwm_gib():.2f} GiB")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
