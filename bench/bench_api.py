"""Results API latency and throughput: cached metrics requests with real hub tokens.

Starts a real JupyterHub (``quantlib.testing.devhub``) managing the results API, once with
the in-process cache and once with Redis (a real ``redis-server``), and drives the API's
own port on loopback from a load generator in a SEPARATE process (asyncio + httpx):

1. open loop: ``--rate`` requests/s (default 200) for ``--seconds``; latency percentiles;
2. saturation: ``wrk`` (Debian package) with ``--concurrency`` connections for
   ``--seconds`` (the asyncio client if ``wrk`` is missing); requests/s.

The generator speaks HTTP/1.1 over keep-alive asyncio streams (a pooled client costs far
less CPU than httpx, whose own overhead capped the first measurements at ~100 req/s).

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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Conn:
    """One keep-alive HTTP/1.1 connection (asyncio streams): a light load generator."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return status


def _request(url: str, token: str) -> tuple[str, int, bytes]:
    from urllib.parse import urlparse

    u = urlparse(url)
    req = (f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
           f"Authorization: token {token}\r\n\r\n").encode()
    return str(u.hostname), int(u.port or 80), req


async def open_loop(url: str, token: str, rate: float, seconds: float) -> dict:
    host, port, req = _request(url, token)
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(Conn(host, port, req))
    lat: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        t = time.perf_counter()
        conn = await pool.get()
        try:
            errors += await conn.get() != 200
        finally:
            pool.put_nowait(conn)
        lat.append((time.perf_counter() - t) * 1000)

    await asyncio.gather(*(one() for _ in range(64)))  # open connections, warm caches
    lat.clear()
    errors = 0
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
    host, port, req = _request(url, token)
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        conn = Conn(host, port, req)
        while time.perf_counter() < stop:
            done += await conn.get() == 200
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"saturation_rps": done / (time.perf_counter() - t0), "concurrency": concurrency}


def load_main(args: argparse.Namespace) -> None:
    out = asyncio.run(open_loop(args.url, args.token, args.rate, args.seconds))
    out.update(saturation(args.url, args.token, args.concurrency, args.seconds))
    print(json.dumps(out))


def saturation(url: str, token: str, concurrency: int, seconds: float) -> dict:
    """Throughput at saturation: ``wrk`` (Debian) if installed, else the asyncio client."""
    exe = shutil.which("wrk")
    if not exe:
        return asyncio.run(closed_loop(url, token, concurrency, seconds))
    out = subprocess.run([exe, "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency",
                          "-H", f"Authorization: token {token}", url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(out.split("Requests/sec:")[1].split()[0])
    non2xx = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0
    return {"saturation_rps": rps, "concurrency": concurrency, "saturation_errors": non2xx,
            "generator": "wrk"}


def run_case(name: str, store: str, ids: list[str], args: argparse.Namespace,
             env: dict[str, str]) -> dict:
    from quantlib.testing.devhub import start_dev_hub

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
    from quantlib.platform.hubconfig import free_port
    from quantlib.testing.demo import populate_demo_store

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
