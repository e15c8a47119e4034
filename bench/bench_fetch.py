"""Benchmark: the fetch stage of a first build alone (FTP/HTTP transfer, sha256, raw-zone
writes, manifest and index rows, sidecar checks), CPU microseconds per bar.

Run: ``uv run python bench/bench_fetch.py [--assets 150] [--years 4] [--repeat 2]
[--profile out.prof]``.

One vendor sandbox (a child process, 3 markets x ``--assets`` x ``--years``) serves every
round; each round fetches every market and FX into a fresh store in this process, as the
build's fetch tasks do (``fetch_market(..., workers=8)``, markets one after the other).
CPU is this process's (user + system, every thread); the sandbox's own CPU is not
counted. Bars are the rows of the price deliveries (what the build standardizes, less
the reference tables), so the figure is comparable with
``bench/bench_pipeline_build.py``'s CPU-us/bar.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MARKETS = ("KR", "US", "EU", "FX")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def fetch_all(store: str, connection: object) -> tuple[int, int, int]:
    """Fetch every market into ``store``; return (deliveries, bytes, price bars)."""
    from quantlib.raw import RawZone
    from quantlib.sources import fetch_fx, fetch_market

    raw = RawZone(store)
    out = []
    for market in MARKETS:
        if market == "FX":
            out += fetch_fx(raw=raw, connection=connection, fetch_id="bench")
        else:
            out += fetch_market(market, raw=raw, connection=connection, fetch_id="bench",
                                workers=8)
    bars = sum(d.rows or 0 for d in out if "price" in d.file)
    return len(out), sum(d.bytes for d in out), bars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=150)
    parser.add_argument("--years", type=float, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--profile", default=None, help="write a cProfile of the last round")
    args = parser.parse_args(argv)
    os.environ.setdefault("QUANTLIB_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    import pandas  # noqa: F401  (imports before the clock)
    import pyarrow.parquet  # noqa: F401
    import requests  # noqa: F401

    import quantlib.sources  # noqa: F401
    from quantlib.pipeline.sandboxproc import sandbox_process

    with sandbox_process(n_assets=args.assets, years=args.years, seed=1,
                         end="2024-12-31", markets=("KR", "US", "EU")) as conn:
        print(f"sandbox: 3 markets x {args.assets} assets x {args.years:g} years")
        print(f"{'round':<7}{'wall s':>8}{'CPU s':>8}{'files':>8}{'MB':>8}{'bars':>11}"
              f"{'CPU us/bar':>12}")
        for k in range(args.repeat):
            store = tempfile.mkdtemp(prefix="bench-fetch-")
            prof = cProfile.Profile() if args.profile and k == args.repeat - 1 else None
            try:
                c0, t0 = _cpu(), time.perf_counter()
                if prof is not None:
                    prof.enable()
                n, nbytes, bars = fetch_all(store, conn)
                if prof is not None:
                    prof.disable()
                wall, cpu = time.perf_counter() - t0, _cpu() - c0
            finally:
                shutil.rmtree(store, ignore_errors=True)
            print(f"{k + 1:<7}{wall:>8.2f}{cpu:>8.2f}{n:>8}{nbytes / 1e6:>8.1f}{bars:>11,}"
                  f"{cpu / max(bars, 1) * 1e6:>12.2f}", flush=True)
            if prof is not None:
                prof.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
