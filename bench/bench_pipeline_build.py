"""Benchmark: the first full build of a store, one-frame vs partitioned, 1 process vs a
2-worker LocalCluster.

Run: ``uv run python bench/bench_pipeline_build.py [--assets 300] [--years 10]
[--modes one-frame,threads,cluster1,cluster2] [--partition-rows 500000]``.

One vendor sandbox (a child process, ``--assets`` per market x ``--years``) serves every
run; each mode builds a fresh store in its own process (so its peak RSS is its own):

- ``one-frame``: ``refresh(partitioned=False)``, each market in one task and one frame;
- ``threads``: the partitioned build on dask's threaded scheduler (one process);
- ``cluster1`` / ``cluster2``: the partitioned build on a ``distributed.LocalCluster``
  of 1 / 2 worker processes x 1 thread.

Prints wall seconds, bars/s (standardized rows / wall) and peak RSS (the build
process, plus each worker's for a cluster: their sum is the footprint). The floor
(issue #12): full size (25,000 assets x 20 years) <= 20 min, <= 6 GB, and cluster2 at
least 1.5x one process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import peak_mb  # noqa: E402

MODES = ("one-frame", "threads", "cluster1", "cluster2")


def _worker_peak() -> float:
    from memory import peak_mb as worker_peak_mb

    return worker_peak_mb()


def child(mode: str, store: str, conn: dict, partition_rows: int) -> dict:
    """One build in this process; returns its numbers."""
    from quantlib.pipeline import refresh
    from quantlib.sources.connection import Connection

    connection = Connection(**conn)
    workers_peak: list[float] = []
    t0 = time.perf_counter()
    if mode.startswith("cluster"):
        from distributed import Client, LocalCluster

        n = int(mode[len("cluster"):])
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(sys.path.insert, 0, str(Path(__file__).resolve().parent))
            t0 = time.perf_counter()
            result = refresh(store, connection=connection, client=client,
                             partition_rows=partition_rows)
            wall = time.perf_counter() - t0
            workers_peak = list(client.run(_worker_peak).values())
    else:
        result = refresh(store, connection=connection, partitioned=mode != "one-frame",
                         partition_rows=partition_rows)
        wall = time.perf_counter() - t0
    rows = int(result.rows.get("standardize", 0))
    return {"mode": mode, "wall_s": wall, "rows": rows, "rows_per_s": rows / wall,
            "peak_mb": peak_mb(), "workers_peak_mb": workers_peak,
            "partitions": result.rows.get("partitions"), "snapshot": result.snapshot_id}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--partition-rows", type=int, default=500_000)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--store", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--conn", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("QUANTLIB_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    if args.child:
        print(json.dumps(child(args.child, args.store, json.loads(args.conn),
                               args.partition_rows)))
        return 0
    from quantlib.pipeline.sandboxproc import sandbox_process

    t0 = time.perf_counter()
    with sandbox_process(n_assets=args.assets, years=args.years, seed=1,
                         end="2024-12-31", markets=("KR", "US", "EU")) as conn:
        print(f"sandbox: 3 markets x {args.assets} assets x {args.years:g} years, "
              f"served after {time.perf_counter() - t0:.1f} s")
        info = {k: getattr(conn, k) for k in ("ftp_host", "ftp_port", "ftp_user",
                                              "ftp_password", "http_url", "api_key")}
        print(f"{'mode':<11}{'wall s':>9}{'bars':>13}{'bars/s':>11}{'peak MB':>10}"
              f"{'workers MB':>18}")
        out = []
        for mode in args.modes.split(","):
            store = tempfile.mkdtemp(prefix=f"bench-build-{mode}-")
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--store", store,
                 "--conn", json.dumps(info), "--partition-rows", str(args.partition_rows)],
                capture_output=True, text=True, check=False)
            if proc.returncode:
                print(f"{mode}: failed\n{proc.stderr[-2000:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            out.append(r)
            workers = "+".join(f"{w:.0f}" for w in r["workers_peak_mb"]) or "-"
            print(f"{mode:<11}{r['wall_s']:>9.1f}{r['rows']:>13,}{r['rows_per_s']:>11,.0f}"
                  f"{r['peak_mb']:>10.0f}{workers:>18}")
        walls = {r["mode"]: r["wall_s"] for r in out}
        if "threads" in walls and "cluster2" in walls:
            print(f"cluster2 speed-up over one process (threads): "
                  f"{walls['threads'] / walls['cluster2']:.2f}x")
        if "cluster1" in walls and "cluster2" in walls:
            print(f"cluster2 speed-up over cluster1: {walls['cluster1'] / walls['cluster2']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
