"""Benchmark the vendor sandbox: generate, write the FTP tree, build the API tables.

Usage: ``uv run python bench/bench_sandbox.py [--assets 300,5000] [--years 10]``.
Prints one table row per size: seconds and rows/s for each stage and peak RSS.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import tempfile
import time

from quantlib.calendars import sessions
from quantlib.sandbox import generate, write_ftp_tree
from quantlib.sandbox.api import ApiData


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def bench(n_assets: int, years: float) -> dict[str, float]:
    t0 = time.perf_counter()
    u = generate(n_assets=n_assets, years=years)
    t_gen = time.perf_counter() - t0
    rows = len(u.prices) + len(u.statements) + len(u.corporate_actions) + len(u.fx)
    root = tempfile.mkdtemp(prefix="bench-sandbox-")
    try:
        t0 = time.perf_counter()
        files = write_ftp_tree(u, root)
        t_write = time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)
    file_rows = sum(f.rows for f in files)
    t0 = time.perf_counter()
    api = ApiData(u)
    page = api.page("prices", {"market": "US", "page": "2"})
    t_api = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in range(1, 21):
        api.page("prices", {"market": "US", "page": str(p)})
    t_page = (time.perf_counter() - t0) / 20
    del api, u, page
    gc.collect()
    return {"assets": n_assets, "bars": rows, "gen_s": t_gen, "gen_rows_s": rows / t_gen,
            "files": len(files), "write_s": t_write, "write_rows_s": file_rows / t_write,
            "api_build_s": t_api, "page_ms": t_page * 1e3, "peak_gib": _peak_gib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--assets", default="300,5000", help="assets per market, comma separated")
    ap.add_argument("--years", type=float, default=10)
    args = ap.parse_args()
    for m in ("KR", "US", "EU"):       # warm the exchange calendars (not part of the timing)
        sessions(m, "2020-01-01", "2020-01-10")
    print(f"sandbox benchmark: 3 markets x {args.years:g} years")
    head = (f"{'assets/mkt':>10} {'rows':>11} {'gen s':>7} {'gen rows/s':>11} {'files':>6} "
            f"{'write s':>8} {'write rows/s':>12} {'api build s':>11} {'page ms':>8} "
            f"{'peak GiB':>8}")
    print(head)
    print("-" * len(head))
    for n in (int(x) for x in args.assets.split(",")):
        r = bench(n, args.years)
        print(f"{r['assets']:>10} {r['bars']:>11,} {r['gen_s']:>7.2f} {r['gen_rows_s']:>11,.0f} "
              f"{r['files']:>6} {r['write_s']:>8.2f} {r['write_rows_s']:>12,.0f} "
              f"{r['api_build_s']:>11.2f} {r['page_ms']:>8.1f} {r['peak_gib']:>8.2f}",
              flush=True)


if __name__ == "__main__":
    main()
