"""Benchmark: the first full build of a store, one-frame vs partitioned, 1 process vs a
2-worker LocalCluster.

Run: ``uv run python bench/bench_pipeline_build.py [--assets 300] [--years 10]
[--modes one-frame,threads,cluster1,cluster2] [--partition-rows 500000] [--repeat 1]
[--no-profiler]``.

One vendor sandbox (a child process, ``--assets`` per market x ``--years``) serves every
run; each mode builds a fresh store in its own process (so its peak RSS is its own):

- ``one-frame``: ``refresh(partitioned=False)``, each market in one task and one frame;
- ``threads``: the partitioned build on dask's threaded scheduler (one process);
- ``cluster1`` / ``cluster2``: the partitioned build on a ``distributed.LocalCluster``
  of 1 / 2 worker processes x 1 thread.

The modes run interleaved (``--repeat`` rounds of every mode in turn), so a load that
changes during the run touches every mode alike. Prints wall seconds, bars/s
(standardized rows / wall), CPU seconds (the build process plus its cluster's worker
processes, after every process imported what a build runs; the vendor sandbox's own
CPU is not counted; split into the driver's, which holds the scheduler of a
LocalCluster, and the workers') and CPU microseconds per bar
(steadier than wall on a loaded machine), and peak RSS (the build process, plus each
worker's for a cluster: their sum is the footprint). ``--no-profiler`` starts the
clusters with distributed's statistical profiler off (``distributed.worker.profile.
enabled``; on by default, as in any LocalCluster). The floor
(issue #12): full size (25,000 assets x 20 years) <= 20 min, <= 6 GB, and cluster2 at
least 1.5x one process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far, all threads."""
    t = os.times()
    return t.user + t.system


def _warm() -> None:
    """Import what a build runs, so a process's one-time import cost (seconds on a
    loaded box, where bytecode is not cached) is not counted as build time."""
    import importlib

    for name in ("quantlib.pipeline.build", "quantlib.pipeline.tasks", "quantlib.sources",
                 "quantlib.standardize", "quantlib.validate", "quantlib.store.panels",
                 "dask.array", "icechunk.xarray", "xarray.backends.zarr", "pyarrow.parquet"):
        importlib.import_module(name)


def child(mode: str, store: str, conn: dict, partition_rows: int,
          profiler: bool = True) -> dict:
    """One build in this process; returns its numbers. ``profiler=False`` starts the
    cluster without distributed's statistical profiler (a thread per scheduler, worker
    and nanny walking stacks every 10 ms, plus the worker's task-thread sampling)."""
    from quantlib.pipeline import refresh
    from quantlib.sources.connection import Connection

    _warm()

    connection = Connection(**conn)
    workers_peak: list[float] = []
    workers_cpu = 0.0
    if mode.startswith("cluster"):
        from distributed import Client, LocalCluster

        n = int(mode[len("cluster"):])
        import dask

        # read when each server starts; the nanny passes it to its worker process
        dask.config.set({"distributed.worker.profile.enabled": profiler})
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(sys.path.insert, 0, str(Path(__file__).resolve().parent))
            client.run(_warm)
            before = client.run(_cpu)
            c0, t0 = _cpu(), time.perf_counter()
            result = refresh(store, connection=connection, client=client, partitioned=True,
                             partition_rows=partition_rows)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            after = client.run(_cpu)
            workers_cpu = sum(after[w] - before.get(w, 0.0) for w in after)
            workers_peak = list(client.run(_worker_peak).values())
    else:
        c0, t0 = _cpu(), time.perf_counter()
        result = refresh(store, connection=connection, partitioned=mode != "one-frame",
                         partition_rows=partition_rows)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    rows = int(result.rows.get("standardize", 0))
    return {"mode": mode, "wall_s": wall, "rows": rows, "rows_per_s": rows / wall,
            "cpu_s": cpu + workers_cpu, "driver_cpu_s": cpu, "workers_cpu_s": workers_cpu, "cpu_us_per_bar": (cpu + workers_cpu) / rows * 1e6,
            "peak_mb": peak_mb(), "workers_peak_mb": workers_peak,
            "partitions": result.rows.get("partitions"), "snapshot": result.snapshot_id,
            "load": os.getloadavg()[0],
            "seconds": {k: round(v, 2) for k, v in result.seconds.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--years", type=float, default=10)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--partition-rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-profiler", action="store_true",
                        help="cluster modes: distributed's statistical profiler off")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--store", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--conn", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("QUANTLIB_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    if args.child:
        print(json.dumps(child(args.child, args.store, json.loads(args.conn),
                               args.partition_rows, profiler=not args.no_profiler)))
        return 0
    from quantlib.pipeline.sandboxproc import sandbox_process

    t0 = time.perf_counter()
    with sandbox_process(n_assets=args.assets, years=args.years, seed=1,
                         end="2024-12-31", markets=("KR", "US", "EU")) as conn:
        print(f"sandbox: 3 markets x {args.assets} assets x {args.years:g} years, "
              f"served after {time.perf_counter() - t0:.1f} s")
        info = {k: getattr(conn, k) for k in ("ftp_host", "ftp_port", "ftp_user",
                                              "ftp_password", "http_url", "api_key")}
        print(f"{'mode':<11}{'wall s':>9}{'bars':>13}{'bars/s':>11}{'CPU s':>8}"
              f"{'CPU us/bar':>11}{'peak MB':>10}{'workers MB':>14}")
        out = []
        for _ in range(args.repeat):
            for mode in args.modes.split(","):
                r = _run(mode, info, args.partition_rows, args.no_profiler)
                if r is not None:
                    out.append(r)
        _summary(out)
    return 0


def _run(mode: str, info: dict, partition_rows: int, no_profiler: bool) -> dict | None:
    """One mode's build in a fresh process on a fresh store; prints its line."""
    store = tempfile.mkdtemp(prefix=f"bench-build-{mode}-")
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--store", store,
             "--conn", json.dumps(info), "--partition-rows", str(partition_rows),
             *(["--no-profiler"] if no_profiler else [])],
            capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    if proc.returncode:
        print(f"{mode}: failed\n{proc.stderr[-2000:]}")
        return None
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    workers = "+".join(f"{w:.0f}" for w in r["workers_peak_mb"]) or "-"
    print(f"{mode:<11}{r['wall_s']:>9.1f}{r['rows']:>13,}{r['rows_per_s']:>11,.0f}"
          f"{r['cpu_s']:>8.1f}{r['cpu_us_per_bar']:>11.1f}{r['peak_mb']:>10.0f}"
          f"{workers:>14}  driver {r['driver_cpu_s']:.1f} + workers "
          f"{r['workers_cpu_s']:.1f} CPU s, load {r.get('load', 0.0):.1f}  {r['seconds']}",
          flush=True)
    return r


def _summary(out: list[dict]) -> None:
    """Median wall and CPU per mode, and the speed-ups the floor is about."""
    import statistics

    walls: dict[str, float] = {}
    for mode in dict.fromkeys(r["mode"] for r in out):
        rs = [r for r in out if r["mode"] == mode]
        walls[mode] = statistics.median(r["wall_s"] for r in rs)
        print(f"{mode}: median of {len(rs)}: wall {walls[mode]:.1f} s, "
              f"{statistics.median(r['cpu_us_per_bar'] for r in rs):.1f} CPU us/bar")
    for base in ("threads", "cluster1"):
        if base in walls and "cluster2" in walls:
            print(f"cluster2 speed-up over {base} (median wall): "
                  f"{walls[base] / walls['cluster2']:.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
