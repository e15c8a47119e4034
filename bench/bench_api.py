"""Results API latency and throughput: cached metrics requests with real hub tokens.

Starts a real JupyterHub (``quantlib.serving.devhub``) managing the results API, once with
the in-process cache and once with Redis (a real ``redis-server``), and drives the API's
own port on loopback from a load generator in a SEPARATE process (asyncio + httpx):

1. open loop: ``--rate`` requests/s (default 200) for ``--seconds``; latency percentiles;
2. saturation: ``--concurrency`` closed-loop clients for ``--seconds``; requests/s.

Usage: ``uv run python bench/bench_api.py [--rate 200] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def open_loop(url: str, token: str, rate: float, seconds: float) -> dict:
    import httpx

    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"},
                                 limits=httpx.Limits(max_connections=50), timeout=60) as client:
        async def one() -> None:
            nonlocal errors
            t = time.perf_counter()
            r = await client.get(url)
            lat.append((time.perf_counter() - t) * 1000)
            errors += r.status_code != 200
        for _ in range(20):  # warm the caches and connections
            await one()
        lat.clear()
        start = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"n": len(lat), "achieved_rps": len(lat) / elapsed, "errors": errors,
            "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "p99_ms": percentile(lat, 99), "max_ms": max(lat)}


async def closed_loop(url: str, token: str, concurrency: int, seconds: float) -> dict:
    import httpx

    done = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"},
                                 limits=httpx.Limits(max_connections=concurrency), timeout=60) as client:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                r = await client.get(url)
                done += r.status_code == 200
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"saturation_rps": done / elapsed, "concurrency": concurrency}


def load_main(args: argparse.Namespace) -> None:
    out = asyncio.run(open_loop(args.url, args.token, args.rate, args.seconds))
    out.update(asyncio.run(closed_loop(args.url, args.token, args.concurrency, args.seconds)))
    print(json.dumps(out))


def run_case(name: str, store: str, ids: list[str], args: argparse.Namespace,
             env: dict[str, str]) -> dict:
    from quantlib.serving.devhub import start_dev_hub

    wd = tempfile.mkdtemp(prefix=f"bench-api-{name}-")
    hub = start_dev_hub(wd, results_url=store, env=env, services=("results-api",))
    try:
        token = hub.user_token("mo")
        port = hub.service_ports["results-api"]
        url = f"http://127.0.0.1:{port}/services/results-api/api/v1/results/{ids[0]}/metrics"
        proc = subprocess.run([sys.executable, __file__, "--load", url, "--token", token,
                               "--rate", str(args.rate), "--seconds", str(args.seconds),
                               "--concurrency", str(args.concurrency)],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError(proc.stderr)
        return {"cache": name, **json.loads(proc.stdout.strip().splitlines()[-1])}
    finally:
        hub.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--load", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load:
        args.url = args.load
        load_main(args)
        return
    from quantlib.serving.demo import populate_demo_store
    from quantlib.serving.devhub import free_port

    store = tempfile.mkdtemp(prefix="bench-api-results-")
    ids = populate_demo_store(store, years=10)
    rows = [run_case("memory", store, ids, args, {})]
    exe = shutil.which("redis-server")
    if exe:
        port = free_port()
        redis = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no"], stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            rows.append(run_case("redis", store, ids, args,
                                 {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}))
        finally:
            redis.terminate()
    print(f"\nresults API, cached GET .../metrics, hub token auth, {args.rate:.0f} req/s "
          f"for {args.seconds:.0f} s (open loop), then {args.concurrency} clients (closed loop)")
    head = ["cache", "n", "achieved_rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors",
            "saturation_rps"]
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(f"{r[h]:.1f}" if isinstance(r[h], float) else str(r[h]) for h in head))
    print("p99 < 20 ms:", all(r["p99_ms"] < 20 for r in rows),
          "| median p50:", statistics.median(r["p50_ms"] for r in rows))


if __name__ == "__main__":
    main()
