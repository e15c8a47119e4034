"""Portfolio-mode sweep (issue #15: >= 1.7x on 2 threads vs 1): wall and CPU seconds.

The W1 portfolio sweep of bench_backtest.py (90 MA-crossover portfolios of 200 sleeves x
2,520 sessions, flat 10 bps, all sets in the batched kernel) in ONE process, 1 and 2
threads interleaved, best and median of ``--repeat``. Besides the wall times it reports
the CPU seconds of the parallel kernel and of everything else (the serial part), measured
on one thread, and the Amdahl bound they imply for 2 threads: on a loaded machine the
wall ratio is depressed by the other processes, the CPU split is not. ``--before REF``
runs the same measurement on the code of git ref ``REF`` (its ``quantlib/`` extracted to a
temporary folder, same virtual environment) in a child process, for a same-time baseline::

    uv run python bench/bench_portfolio_sweep.py --repeat 5 --before 72c869c
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

import numpy as np

HERE = Path(__file__).resolve().parent
T = 2520
FEE = 0.001
PAIRS = [(f, s) for f in range(5, 55, 5) for s in range(20, 220, 20) if f < s]  # 90 pairs


def measure(n: int, repeat: int) -> dict:
    import pandas as pd
    import xarray as xr

    from quantlib.backtest.parallel import threads
    from quantlib.backtest.sweep import sweep
    from quantlib.backtest.synthetic import make_dataset

    syn = make_dataset(n, T, seed=1, markets=(), start="2000-01-03", delist_fraction=0.0,
                       list_fraction=0.0)
    ds = xr.Dataset({k: (("date", "asset"), syn[k].values) for k in ("close", "returns")},
                    coords={"date": pd.bdate_range("2000-01-03", periods=T)})
    grid = [{"fast": f, "slow": s} for f, s in PAIRS]
    kernel = _kernel_clock()

    def go(nt: int) -> np.ndarray:
        with threads(nt):
            df = sweep("ma_crossover", grid, ds, costs=f"flat:{FEE * 1e4}", full_metrics=False)
        return df[["total_return", "max_drawdown", "sharpe"]].to_numpy()

    outs = {nt: go(nt) for nt in (1, 2)}  # warm-up: JIT cache, close sums
    rows: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    for _ in range(repeat):
        for nt in (1, 2):
            kernel["cpu"] = np.nan
            c0, w0 = time.process_time(), time.perf_counter()
            outs[nt] = go(nt)
            rows[nt].append((time.perf_counter() - w0, time.process_time() - c0, kernel["cpu"]))
    out = {"identical_1_2_threads": bool(np.array_equal(outs[1], outs[2], equal_nan=True)),
           "load_average": os.getloadavg()}
    for nt, r in rows.items():
        a = np.array(r)
        out[f"t{nt}"] = {"wall_best": a[:, 0].min(), "wall_median": float(np.median(a[:, 0])),
                         "cpu_median": float(np.median(a[:, 1])),
                         "kernel_cpu_median": float(np.nanmedian(a[:, 2]))
                         if np.isfinite(a[:, 2]).any() else None}
    return out


def _kernel_clock() -> dict:
    """CPU seconds of the batched kernel call (absent in code before batched.py)."""
    clock: dict = {"cpu": np.nan}
    try:
        import quantlib.backtest.batched as batched
    except ImportError:
        return clock
    for name in ("_ma_batch", "_targets_batch"):
        inner = getattr(batched, name)

        def timed(*args, _inner=inner):
            c0 = time.process_time()
            try:
                return _inner(*args)
            finally:
                clock["cpu"] = time.process_time() - c0
        setattr(batched, name, timed)
    return clock


def report(tag: str, m: dict) -> None:
    t1, t2 = m["t1"], m["t2"]
    print(f"{tag}: load average {', '.join(f'{x:.1f}' for x in m['load_average'])}; "
          f"identical 1/2 threads: {m['identical_1_2_threads']}")
    for nt, t in (("1 thread ", t1), ("2 threads", t2)):
        print(f"  {nt}: wall best {t['wall_best']:.3f} s, median {t['wall_median']:.3f} s; "
              f"CPU median {t['cpu_median']:.3f} s")
    print(f"  ratio 1/2 threads: best {t1['wall_best'] / t2['wall_best']:.2f}x, median "
          f"{t1['wall_median'] / t2['wall_median']:.2f}x (floor 1.7x)")
    if t1["kernel_cpu_median"] is not None:
        k, total = t1["kernel_cpu_median"], t1["cpu_median"]
        s = max(total - k, 0.0)
        print(f"  1 thread CPU: parallel kernel {k:.3f} s + serial rest {s:.3f} s: parallel "
              f"fraction {k / total:.3f}, Amdahl bound on 2 cores {total / (s + k / 2):.2f}x")


def before(ref: str, n: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = HERE.parent
        tar = subprocess.run(["git", "-C", str(root), "archive", ref, "quantlib"],
                             check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=tar, check=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        res = subprocess.run([sys.executable, __file__, "--child", "--assets", str(n),
                              "--repeat", str(repeat)], env=env, check=True,
                             capture_output=True, text=True)
        return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", help="also measure this git ref's code (same-time baseline)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a.assets, a.repeat)))
        return
    print(f"portfolio sweep, {len(PAIRS)} sets x {a.assets} assets x {T} sessions, one process")
    if a.before:
        report(f"before ({a.before})", before(a.before, a.assets, a.repeat))
    report("now", measure(a.assets, a.repeat))


if __name__ == "__main__":
    main()
