"""Benchmark: the local platform's start, spawn, reuse and stop times.

For each variant of ``hub-config/platform.yaml`` (``full``: the shipped file, four managed
services; ``hub-only``: the same with dashboards, results API and scheduler disabled) in a
fresh QUANTLIB_HOME on a free port:

* ``up``: wall time of ``quantlib platform up --no-refresh`` (the CLI process included)
  until the hub answers ``/hub/health`` through the proxy;
* ``spawn``: a researcher's ``POST /hub/api/users/<name>/server`` until the hub reports the
  server ready, then ``/user/<name>/api/status`` answers (``--spawns`` times, stopping the
  server in between);
* ``lab page``: from the same ``POST`` until JupyterLab's page ``/user/<name>/lab``
  answers 200 (the server's extensions loaded, the example notebooks in the home): what
  a researcher waits for behind the hub's progress page after login;
* ``second up``: ``quantlib platform up`` again (finds the running hub);
* ``down``: ``quantlib platform down`` until no process of the run is left.

The machine's load average is printed with the table: these are wall-clock times of many
processes and move with whatever else the machine is doing.

Run: ``uv run python bench/bench_hub.py`` (``--variants hub-only --spawns 1`` for a quick run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

from quantlib.platform.hubconfig import free_port
from quantlib.platform.settings import HUB_CONFIG_DIR

QUANTLIB = str(Path(sys.executable).parent / "quantlib")
PASSWORD = "bench-pass-1234"


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run([QUANTLIB, "platform", *args], env=env, input=stdin, text=True,
                          capture_output=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"quantlib platform {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def spawn_once(url: str, token: str) -> tuple[float, float]:
    auth = {"Authorization": f"token {token}"}
    started = time.perf_counter()
    resp = requests.post(url + "hub/api/users/alice/server", headers=auth, timeout=60)
    resp.raise_for_status()
    while not requests.get(url + "hub/api/users/alice", headers=auth, timeout=10).json()[
            "servers"].get("", {}).get("ready"):
        time.sleep(0.1)
    requests.get(url + "user/alice/api/status", headers=auth, timeout=30).raise_for_status()
    took = time.perf_counter() - started
    lab = requests.get(url + "user/alice/lab", headers=auth, timeout=60)
    lab.raise_for_status()
    if "jupyter-config-data" not in lab.text:
        raise SystemExit(f"/user/alice/lab is not JupyterLab's page: {lab.text[:300]}")
    lab_s = time.perf_counter() - started
    requests.delete(url + "hub/api/users/alice/server", headers=auth, timeout=60)
    while requests.get(url + "hub/api/users/alice", headers=auth, timeout=10).json()[
            "servers"]:
        time.sleep(0.2)
    return took, lab_s


def token_for(url: str) -> str:
    session = requests.Session()
    session.get(url + "hub/login", timeout=10)
    session.post(url + "hub/login", timeout=30, allow_redirects=False,
                 data={"username": "alice", "password": PASSWORD,
                       "_xsrf": session.cookies.get("_xsrf", path="/hub/")})
    made = session.post(url + "hub/api/users/alice/tokens", json={"expires_in": 3600},
                        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/")},
                        timeout=10)
    made.raise_for_status()
    return made.json()["token"]


def run_variant(variant: str, spawns: int) -> dict[str, float]:
    raw = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    if variant == "hub-only":
        for name in ("dashboards", "results-api", "scheduler"):
            raw["services"][name]["enabled"] = False
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        config = Path(tmp) / "platform.yaml"
        config.write_text(yaml.safe_dump(raw))
        env = {**os.environ, "QUANTLIB_HOME": str(Path(tmp) / "home"),
               "QUANTLIB_PLATFORM_CONFIG": str(config)}
        cli(env, "users", "passwd", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        out = {"up": cli(env, "up", "--port", str(port), "--no-refresh")}
        try:
            token = token_for(url)
            both = [spawn_once(url, token) for _ in range(spawns)]
            times = [t for t, _ in both]
            out["spawn (median)"] = statistics.median(times)
            out["spawn (min)"] = min(times)
            out["lab page (median)"] = statistics.median(lab for _, lab in both)
            out["second up"] = cli(env, "up", "--port", str(port), "--no-refresh")
        finally:
            out["down"] = cli(env, "down")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["hub-only", "full"],
                        choices=["hub-only", "full"])
    parser.add_argument("--spawns", type=int, default=3)
    args = parser.parse_args()
    rows = {v: run_variant(v, args.spawns) for v in args.variants}
    load = os.getloadavg()
    print(f"\nlocal platform timings, seconds ({os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})")
    keys = list(next(iter(rows.values())))
    print("| variant | " + " | ".join(keys) + " |")
    print("| --- | " + " | ".join("---:" for _ in keys) + " |")
    for variant, row in rows.items():
        print(f"| {variant} | " + " | ".join(f"{row[k]:.1f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
