"""Benchmark: full refresh of the default sandbox, then read one market's prices panel.

Run: ``uv run python bench/bench_refresh.py [--assets 300] [--years 10] [--store DIR]``.
Prints seconds and rows/s per stage (sandbox generate+serve, fetch, standardize,
validate, commit) and the MB/s of loading one market's full prices panel into memory.
Target: full default refresh (3 markets x 300 assets x 10 years) under 60 s.

``--incremental 5,10,20`` instead measures the daily incremental refresh with that many
years already stored: for each history length, a full build of the vendor's data up to
the session before 2025-12-31 served by one running sandbox, then its vendor clock
advanced one session (``Sandbox.advance``: new day files, the re-delivered month, the API
serving the new rows; unchanged files keep their bytes) and, in a fresh process (its own
peak RSS), one incremental refresh bringing in that session. Prints wall seconds, peak
RSS and the rows each stage processed.

``--catch-up 1,2`` measures a catch-up of that many years behind, partitioned vs one
frame per market (wall, peak RSS): see bench/bench_catchup.py.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--store", default=None, help="store folder (default: a temp dir)")
    parser.add_argument("--market", default="US", help="market whose panel is read back")
    parser.add_argument("--scheduler", default="threads", choices=("threads", "processes"),
                        help="dask local scheduler for the per-market fan-out")
    parser.add_argument("--incremental", default=None,
                        help="comma-separated stored years for the incremental bench")
    parser.add_argument("--full-width", default=None,
                        help="comma-separated stored years: daily refresh at full width")
    parser.add_argument("--width-scale", type=float, default=1.0,
                        help="fraction of the full width (smoke runs)")
    parser.add_argument("--profile", action="store_true",
                        help="with --full-width: cProfile the refresh (markets in series)")
    parser.add_argument("--day", default="2025-12-31",
                        help="with --full-width: the session the refresh brings (2025-12-31:"
                        " US only; a mid-month day re-delivers the EU month file)")
    parser.add_argument("--catch-up", default=None,
                        help="comma-separated years behind: partitioned vs one-frame "
                        "catch-up (bench/bench_catchup.py)")
    parser.add_argument("--stored-years", type=float, default=1.0,
                        help="with --catch-up: years stored before the catch-up")
    parser.add_argument("--partition-rows", type=int, default=50_000,
                        help="with --catch-up: bars per partition")
    args = parser.parse_args(argv)
    os.environ.setdefault("QUANTLIB_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    if args.catch_up:
        from bench_catchup import catch_up_bench

        return catch_up_bench([float(y) for y in args.catch_up.split(",")], args.assets,
                              args.stored_years, args.partition_rows)
    if args.full_width:
        from bench_refresh_width import full_width_bench

        return full_width_bench([float(y) for y in args.full_width.split(",")],
                                args.width_scale, profile=args.profile, day=args.day)
    if args.incremental:
        return incremental_bench([float(y) for y in args.incremental.split(",")],
                                 args.assets)
    store = args.store or tempfile.mkdtemp(prefix="bench-store-")

    t0 = time.perf_counter()
    from quantlib.pipeline import refresh
    from quantlib.store import CuratedStore
    t_import = time.perf_counter() - t0

    result = refresh(store, sandbox=True, n_assets=args.assets, years=args.years,
                     scheduler=args.scheduler)
    sec, rows = result.seconds, result.rows
    print(f"full refresh: {len(result.markets) - 1} markets x {args.assets} assets x "
          f"{args.years:g} years ({args.scheduler}) -> snapshot {result.snapshot_id}")
    print(f"{'stage':<22}{'seconds':>10}{'rows':>12}{'rows/s':>14}")
    table = [("import quantlib", t_import, None),
             ("sandbox generate+serve", sec.get("sandbox", 0.0), rows.get("fetch")),
             ("fetch (sum of tasks)", sec["fetch"], rows["fetch"]),
             ("standardize (sum)", sec["standardize"], rows["standardize"]),
             ("validate (sum)", sec["validate"], rows["validate"]),
             ("fan-out wall", sec["fan_out"], rows["standardize"]),
             ("commit", sec["commit"], rows["commit"]),
             ("report", sec["report"], None),
             ("refresh total", sec["total"], rows["commit"])]
    for name, s, n in table:
        rate = f"{n / s:14,.0f}" if n and s > 0 else f"{'':>14}"
        print(f"{name:<22}{s:10.2f}{(n if n is not None else ''):>12}{rate}")

    print(f"{'per market task':<22}{'fetch s':>10}{'std s':>10}{'valid s':>10}{'rows':>12}")
    for m, info in result.per_market.items():
        s = info["seconds"]
        print(f"{m:<22}{s['fetch']:10.2f}{s['standardize']:10.2f}{s['validate']:10.2f}"
              f"{info['rows']['standardize']:>12}")

    st = CuratedStore(store)
    t1 = time.perf_counter()
    ds = st.open_prices(args.market).load()
    t_read = time.perf_counter() - t1
    mb = ds.nbytes / 1e6
    print(f"read prices/{args.market} panel {dict(ds.sizes)}: {mb:.1f} MB in {t_read:.2f} s "
          f"= {mb / t_read:.0f} MB/s")
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self = own.ru_utime + own.ru_stime
    cpu_kids = kids.ru_utime + kids.ru_stime
    print(f"CPU seconds: refresh process {cpu_self:.1f}, sandbox child {cpu_kids:.1f}; "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ok = sec["total"] < 60
    print(f"target full refresh < 60 s: {'OK' if ok else 'MISSED'} ({sec['total']:.1f} s)")
    if args.store is None:
        shutil.rmtree(store, ignore_errors=True)
    return 0


_ONE_DAY = """
import json, resource, sys, time, types
from quantlib.pipeline import refresh
t0 = time.perf_counter()
r = refresh(sys.argv[1], connection=types.SimpleNamespace(**json.loads(sys.argv[2])))
wall = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork+exec, so a child would report
# its parent's peak (here the sandbox holding the whole universe: it grows with history)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
rss = int(hwm[0].split()[1]) / 1024 if hwm else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"mode": r.mode, "wall": wall, "rows": r.rows, "seconds": r.seconds,
                  "rss_mb": rss}))
"""


def incremental_bench(years_list: list[float], n_assets: int) -> int:
    """Daily incremental refresh with 5/10/20... years stored (see the module doc)."""
    import dataclasses
    import json
    import subprocess

    import pandas as pd

    from quantlib import calendars
    from quantlib.pipeline import refresh
    from quantlib.sandbox import start_sandbox

    last = pd.Timestamp("2025-12-31")
    before = calendars.global_sessions(("KR", "US", "EU"), last - pd.Timedelta(days=10),
                                       last - pd.Timedelta(days=1))[-1]
    print(f"incremental refresh, 3 markets x {n_assets} assets; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'stored y':>8}{'full s':>9}{'inc s':>8}{'RSS MB':>8}{'fetch':>8}{'std':>8}"
          f"{'valid':>8}{'unchgd':>8}{'cells':>10}{'appended':>9}")
    for years in years_list:
        store = tempfile.mkdtemp(prefix=f"bench-inc-{years:g}y-")
        with start_sandbox(n_assets=n_assets, years=years, seed=42,
                           end=str(before.date()), write_state=False) as sb:
            full = refresh(store, connection=sb.connection())
            sb.advance(last)    # the vendor's clock moves one session on
            conn = json.dumps(dataclasses.asdict(sb.connection()))
            out = subprocess.run([sys.executable, "-c", _ONE_DAY, store, conn],
                                 capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows = r["rows"]
        print(f"{years:8g}{full.seconds['total']:9.1f}{r['wall']:8.1f}"
              f"{r['rss_mb']:8.0f}{rows['fetch']:8}{rows['standardize']:8}"
              f"{rows['validate']:8}{rows.get('unchanged', 0):8}"
              f"{rows.get('region_cells', 0):10}{rows.get('appended_dates', 0):9}")
        print("   seconds:", {k: round(v, 2) for k, v in r["seconds"].items()})
        shutil.rmtree(store, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
