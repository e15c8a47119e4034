"""Sweep kernels before/after, interleaved in ONE process (fair on a loaded box).

``quantlib/backtest/parallel.py`` of a git revision (``--before``, default ``HEAD``) is
loaded as a module beside the working tree's, and the W1 MA sweep kernel (200 assets x
2,520 sessions x 90 pairs) and the W1m metrics kernel (18,000 x 2,520, row- and
column-major) run in turns, round after round. Reported per case: best and median wall
time, the best process CPU time, and the CPU time of each thread in the best round
(``/proc/self/task/*/schedstat``, nanoseconds), so a "1 thread" case that really ran on
two shows up. Results of both versions are compared bit for bit::

    uv run python bench/bench_kernels_ab.py --before HEAD~1 --threads 1,2 --rounds 7
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [(f, s) for f in range(5, 55, 5) for s in range(20, 220, 20) if f < s]  # 90 pairs


def load_revision(rev: str, where: Path) -> ModuleType:
    """``parallel.py`` at ``rev`` as a module of its own (its own numba cache folder)."""
    src = subprocess.run(["git", "show", f"{rev}:quantlib/backtest/parallel.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    path = where / "parallel_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("parallel_before", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["parallel_before"] = mod
    spec.loader.exec_module(mod)
    return mod


def thread_cpu() -> dict[str, float]:
    out = {}
    for f in glob.glob(f"/proc/{os.getpid()}/task/*/schedstat"):
        try:
            out[f.split("/")[-2]] = int(Path(f).read_text().split()[0]) / 1e9
        except OSError:
            pass
    return out


def timed(fn: Callable[[], object]) -> tuple[float, float, list[float]]:
    a, c0, w0 = thread_cpu(), time.process_time(), time.perf_counter()
    fn()
    wall, cpu, b = time.perf_counter() - w0, time.process_time() - c0, thread_cpu()
    per = sorted((b[k] - a.get(k, 0.0) for k in b), reverse=True)
    return wall, cpu, [x for x in per if x > 0.001]


def cases(mods: dict[str, ModuleType], nth: list[int]) -> dict[str, Callable[[], np.ndarray]]:
    from quantlib.backtest.signals import zero_cumsum

    rng = np.random.default_rng(0)
    T, N = 2520, 200
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, (T, N)), 0))
    r = np.vstack([np.zeros((1, N)), close[1:] / close[:-1] - 1])
    c, k = zero_cumsum(close), zero_cumsum(np.ones_like(close))
    fast, slow = np.array([p[0] for p in PAIRS]), np.array([p[1] for p in PAIRS])
    reb = np.ones(T, bool)
    m = rng.normal(0.0003, 0.01, (T, 18000))
    m[rng.random(m.shape) < 0.001] = np.nan
    mf = np.asfortranarray(m)
    out: dict[str, Callable[[], np.ndarray]] = {}
    for n in nth:
        for name, mod in mods.items():
            def w1(mod: ModuleType = mod, n: int = n) -> np.ndarray:
                with mod.threads(n):
                    return mod.ma_cross_metrics(c, k, fast, slow, r, 0.0005, 252.0, reb)

            def w1m(x: np.ndarray, mod: ModuleType = mod, n: int = n) -> np.ndarray:
                with mod.threads(n):
                    return mod.sweep_metrics_fast(x)
            out[f"W1 kernel, {n} thread(s), {name}"] = w1
            out[f"W1m row-major, {n} thread(s), {name}"] = lambda f=w1m: f(m)
            out[f"W1m column-major, {n} thread(s), {name}"] = lambda f=w1m: f(mf)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="HEAD", help="git revision of the 'before' kernels")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    from quantlib.backtest import parallel as after

    with tempfile.TemporaryDirectory() as tmp:
        mods = {"before": load_revision(args.before, Path(tmp)), "after": after}
        todo = cases(mods, [int(x) for x in args.threads.split(",")])
        first = {name: fn() for name, fn in todo.items()}  # compile / load caches
        same = all(np.array_equal(first[n], first[n.replace("before", "after")],
                                  equal_nan=True) for n in first if n.endswith("before"))
        res: dict[str, list[tuple[float, float, list[float]]]] = {n: [] for n in todo}
        for _ in range(args.rounds):
            for name, fn in todo.items():
                res[name].append(timed(fn))
    load = os.getloadavg()
    print(f"load average {load[0]:.1f}; before = {args.before}; identical results: {same}")
    print("case | wall best ms | wall median ms | CPU best ms | per-thread CPU ms (best round)")
    for name, v in res.items():
        best = min(v, key=lambda x: x[0])
        med = sorted(x[0] for x in v)[len(v) // 2]
        print(f"{name} | {best[0] * 1e3:.1f} | {med * 1e3:.1f} | "
              f"{min(x[1] for x in v) * 1e3:.1f} | {[round(x * 1e3, 1) for x in best[2]]}")


if __name__ == "__main__":
    main()
