"""Benchmark the sandbox's month-by-month bar generator at full size (nothing materialized).

Usage: ``uv run python bench/bench_sandbox_stream.py [--sizes KR=5000,US=14000,EU=6000]
[--years 20]``. For each market: builds the asset pool, then runs
:func:`quantlib.sandbox.bars.iter_months` over the period (every month since 2000 is
simulated to carry the price level; bars, dividends and corrections are produced for the
period), counting bars without keeping them. Prints seconds, bars/s and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from quantlib.sandbox.bars import iter_months
from quantlib.sandbox.pool import all_sessions, make_pool
from quantlib.sandbox.universe import _window


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="KR=5000,US=14000,EU=6000")
    ap.add_argument("--years", type=float, default=20)
    ap.add_argument("--end", default="2025-12-31")
    args = ap.parse_args()
    end = pd.Timestamp(args.end)
    start = end - pd.Timedelta(days=round(365.25 * args.years)) + pd.Timedelta(days=1)
    total_bars, t_all = 0, time.perf_counter()
    for item in args.sizes.split(","):
        code, n = item.split("=")
        all_sessions(code)
        t0 = time.perf_counter()
        pool = make_pool(code, int(n), args.years, 42)
        t_pool = time.perf_counter() - t0
        g0, g1 = _window(code, start, end)
        in_window = int(((pool.first <= g1) & (pool.last >= g0)).sum())
        bars = fixes = 0
        t0 = time.perf_counter()
        for month in iter_months(pool, 42, g0, g1):
            bars += len(month.g)
            fixes += 0 if month.corrections is None else len(month.corrections["g"])
            checksum = float(np.nansum(month.close))  # touch the values
        t_bars = time.perf_counter() - t0
        total_bars += bars
        print(f"{code}: pool {len(pool):,} ({in_window:,} in the period), pool {t_pool:.1f} s; "
              f"{bars:,} bars, {fixes:,} corrections in {t_bars:.1f} s "
              f"({bars / t_bars:,.0f} bars/s); peak RSS {_peak_gib():.2f} GiB "
              f"(last month checksum {checksum:.0f})", flush=True)
    wall = time.perf_counter() - t_all
    print(f"total: {total_bars:,} bars in {wall:.1f} s; peak RSS {_peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
