"""Benchmark: a large catch-up (the store months or years behind the vendor), partitioned
vs one frame per market: wall seconds and peak RSS against the catch-up's length.

Run: ``uv run python bench/bench_refresh.py --catch-up 1,2 [--assets 300]
[--stored-years 1] [--partition-rows 50000]`` (or this file with the same options).

For each catch-up length L (years): one sandbox serves ``--stored-years`` of history
ending L years before 2025-12-31; a full build stores it; the vendor clock is then
advanced to 2025-12-31 (``Sandbox.advance``) and, each in a fresh process (its own peak
RSS, VmHWM), the refresh that catches the store up runs partitioned
(``partitioned=True``, ``--partition-rows`` bars a partition) and in one frame per
market (``partitioned=False``) on two copies of the store. The partitioned peak must
not grow with L (bounded by a partition and the dask threads), the one-frame peak does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile


def catch_up_bench(lengths: list[float], n_assets: int, stored_years: float,
                   partition_rows: int) -> int:
    """Partitioned vs one-frame catch-up of each length (see the module doc)."""
    import pandas as pd
    from bench_fullsize import run_refresh

    from quantlib.pipeline import refresh
    from quantlib.sandbox import start_sandbox

    end = pd.Timestamp("2025-12-31")
    print(f"catch-up, 3 markets x {n_assets} assets, {stored_years:g} y stored, "
          f"{partition_rows:,} bars a partition; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'behind y':>8}{'bars':>10}{'mode':>13}{'wall s':>8}{'CPU s':>8}{'RSS MB':>8}"
          f"{'parts':>7}{'appended':>9}{'date chunks':>12}")
    for length in lengths:
        e1 = end - pd.DateOffset(months=round(12 * length))
        start = e1 - pd.DateOffset(months=round(12 * stored_years))
        base = tempfile.mkdtemp(prefix=f"bench-catchup-{length:g}y-")
        with start_sandbox(n_assets=n_assets, years=stored_years, seed=42,
                           start=str(start.date()), end=str(e1.date()),
                           write_state=False, rate_limit=(1000.0, 1000.0)) as sb:
            refresh(f"{base}/store", connection=sb.connection(), partitioned=False)
            sb.advance(end)
            for partitioned in (True, False):
                store = f"{base}/{'parts' if partitioned else 'one'}"
                shutil.copytree(f"{base}/store", store)
                r = run_refresh(store, sb.connection(), partitioned=partitioned,
                                partition_rows=partition_rows)
                rows = r["rows"]
                print(f"{length:8g}{rows['standardize']:10}"
                      f"{'partitioned' if partitioned else 'one frame':>13}"
                      f"{r['wall']:8.1f}{r['cpu']:8.1f}{r['rss_mb']:8.0f}"
                      f"{rows.get('partitions', 0):7}{rows.get('appended_dates', 0):9}"
                      f"{_date_chunks(store):>12}")
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _date_chunks(store: str) -> str:
    """Chunks along ``date`` of each market's ``close`` (``KR/US/EU``)."""
    import zarr

    from quantlib.store import CuratedStore, dategrid

    st = CuratedStore(store)
    root = zarr.open_group(st.repo.readonly_session("main").store, mode="r")
    return "/".join(str(len(dategrid.date_edges(zarr.open_array(
        root.store, path=f"prices/{m}/close", mode="r")))) for m in st.markets())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catch-up", default="1,2", help="comma-separated years behind")
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--stored-years", type=float, default=1.0)
    parser.add_argument("--partition-rows", type=int, default=50_000)
    args = parser.parse_args(argv)
    os.environ.setdefault("QUANTLIB_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    return catch_up_bench([float(y) for y in args.catch_up.split(",")], args.assets,
                          args.stored_years, args.partition_rows)


if __name__ == "__main__":
    sys.exit(main())
