"""Backtest benchmarks, quantlib vs fair plain-NumPy references vs peers, side by side in
one run: W1 (MA-crossover sweep), W1m (metrics of 18,000 series, both memory layouts),
W2 (12-1 momentum with listings/delistings), start-up, Dask scaling. Prints a table
whose ratios are measured in the same run.

Each timed step runs in a fresh process of its own (its peak working memory is its own):
data are made once, saved as .npy and loaded by the step; a warm-up call (JIT, caches)
precedes the timed calls, best of N. Peers run in their own environment::

    uv venv bench/.venv-peers --python 3.12
    uv pip install --python bench/.venv-peers -r bench/peers/requirements.txt
    uv run python bench/bench_backtest.py                # --no-peers, --no-dask to skip
    # the whole bench, scaling table included, written into bench/RESULTS.md:
    uv run python bench/bench_backtest.py --w1-assets 200,1000 --w2-assets 1000,5000,20000 --write

The report starts with issue #15's floors (measured / met?) and then lists every row; W2
rows give time and peak working memory against the reference at each size.

References: bench/references.py (pinned to quantlib by tests/backtest/test_bench_references.py).
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import references as ref  # noqa: E402
from memory import peak_mb, reset_peak, rss_mb  # noqa: E402

PEERS_PY = HERE / ".venv-peers" / "bin" / "python"
T = 2520
FEE = ref.FEE
PAIRS = [(f, s) for f in range(5, 55, 5) for s in range(20, 220, 20) if f < s]  # 90 pairs
RESULTS_MD = HERE / "RESULTS.md"
BEGIN, END = "<!-- bench_backtest:begin -->", "<!-- bench_backtest:end -->"
MEASURED: dict[str, float] = {}  # what the floors table reads


def best_of(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


# ------------------------------------------------------------------ data (made once)
def make_w1(d: Path, n: int) -> None:
    from quantlib.backtest.synthetic import make_dataset

    ds = make_dataset(n, T, seed=1, markets=(), start="2000-01-03", delist_fraction=0.0,
                      list_fraction=0.0)
    np.save(d / f"w1_{n}_close.npy", ds["close"].values)
    np.save(d / f"w1_{n}_returns.npy", ds["returns"].values)


def make_w2(d: Path, n: int) -> None:
    """Listings and delistings (10% each); made 2,000 assets at a time (bounded memory)."""
    from quantlib.backtest.synthetic import make_dataset

    parts: dict[str, list[np.ndarray]] = {"close": [], "returns": [], "in_universe": []}
    for i, lo in enumerate(range(0, n, 2000)):
        ds = make_dataset(min(2000, n - lo), T, seed=2 + i, markets=(), start="2000-01-03",
                          delist_fraction=0.1, list_fraction=0.1)
        for k in parts:
            parts[k].append(ds[k].values)
    for k, v in parts.items():
        np.save(d / f"w2_{n}_{k}.npy", np.concatenate(v, axis=1))
    np.save(d / "dates.npy", ds["date"].values)


def w2_dataset(d: Path, n: int):
    import pandas as pd
    import xarray as xr

    dates = pd.DatetimeIndex(np.load(d / "dates.npy"), name="date")
    dv = {k: (("date", "asset"), np.load(d / f"w2_{n}_{k}.npy"))
          for k in ("close", "returns", "in_universe")}
    return xr.Dataset(dv, coords={"date": dates, "asset": [f"A{i:05d}" for i in range(n)]})


# ------------------------------------------------------------------ steps (child processes)
def step(name: str, d: Path, n: int, threads: int) -> dict:
    """One timed step in this (fresh) process; returns seconds, peak working MB."""
    import contextlib

    from quantlib.backtest.parallel import threads as use_threads

    ctx = use_threads(threads) if threads else contextlib.nullcontext()
    with ctx:
        go, warm, repeat = _step_fn(name, d, n)
        warm()
        base = rss_mb()
        reset_peak()
        t, out = best_of(go, repeat)
    if isinstance(out, np.ndarray):
        np.save(d / f"out_{name}_{n}.npy", out)
    return {"seconds": t, "peak_mb": peak_mb() - base}


def _step_fn(name: str, d: Path, n: int):
    if name.startswith("w1") and not name.startswith("w1m"):
        close, r = np.load(d / f"w1_{n}_close.npy"), np.load(d / f"w1_{n}_returns.npy")
        if name == "w1_ref":
            cf, rz = _ffill(close), np.nan_to_num(r)
            return (lambda: ref.w1_reference(cf, rz, PAIRS),
                    lambda: ref.w1_reference(cf[:, :3], rz[:, :3], PAIRS[:2]), 2)
        import pandas as pd
        import xarray as xr

        from quantlib.backtest.sweep import sweep

        ds = xr.Dataset({"close": (("date", "asset"), close), "returns": (("date", "asset"), r)},
                        coords={"date": pd.bdate_range("2000-01-03", periods=T)})
        grid = [{"fast": f, "slow": s} for f, s in PAIRS]

        per_asset = name != "w1_portfolio"

        def go(data=ds):
            df = sweep("ma_crossover", grid, data, per_asset=per_asset,
                       costs=f"flat:{FEE * 1e4}", full_metrics=False)
            return df[["total_return", "max_drawdown", "sharpe"]].to_numpy()
        return go, lambda: go(ds.isel(asset=slice(0, 3))), 3
    if name.startswith("w1m"):
        rets = np.load(d / "metrics_returns.npy")
        x = np.asfortranarray(rets) if name.endswith("F") else rets
        del rets
        if "_ref" in name:
            return lambda: ref.series_metrics(x), lambda: None, 2
        from quantlib.backtest.metrics import sweep_metrics

        return lambda: sweep_metrics(x), lambda: sweep_metrics(x[:, :4]), 5
    if name.startswith("w2"):
        if name == "w2_ref":
            r = np.load(d / f"w2_{n}_returns.npy")
            uni = np.load(d / f"w2_{n}_in_universe.npy")
            dates = np.load(d / "dates.npy")
            return (lambda: ref.w2_reference(r, uni, dates),
                    lambda: ref.w2_reference(r[:, :50], uni[:, :50], dates), 3)
        from quantlib.backtest import run

        ds = w2_dataset(d, n)

        def go(data=ds):
            res = run("xs_momentum", data, window=252, skip=21, quantile=10, rebalance="M",
                      costs=f"flat:{FEE * 1e4}")
            return res.returns["net"].to_numpy()
        return go, lambda: go(ds.isel(asset=slice(0, 50))), 3
    raise SystemExit(f"unknown step {name}")


def _ffill(x: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(x), np.arange(len(x))[:, None], 0)
    return x[np.maximum.accumulate(idx, axis=0), np.arange(x.shape[1])]


def child(args: list[str], env: dict[str, str] | None = None, timeout: int = 1800) -> dict:
    res = _child(args, env, timeout)
    print(f"[step] {' '.join(args[:1] + args[2:])}: {json.dumps(res)[:300]}", file=sys.stderr,
          flush=True)  # progress: a run cut short keeps what it measured
    return res


def _child(args: list[str], env: dict[str, str] | None, timeout: int) -> dict:
    full = {**os.environ, **(env or {})}
    for k in [k for k, v in full.items() if v == "<unset>"]:
        del full[k]
    out = subprocess.run([sys.executable, str(Path(__file__)), "--child", *args],
                         capture_output=True, text=True, timeout=timeout, env=full)
    if out.returncode != 0:
        return {"error": out.stderr[-600:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def peer(d: Path, name: str, timeout: int) -> dict:
    if not PEERS_PY.exists():
        return {"error": "bench/.venv-peers missing (see the module docstring)"}
    try:
        out = subprocess.run([str(PEERS_PY), str(HERE / "peers" / "peer_runs.py"), str(d), name],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if out.returncode != 0:
        return {"error": out.stderr[-400:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])[name]
    print(f"[peer] {name}: {json.dumps(res)[:300]}", file=sys.stderr, flush=True)
    return res


# ------------------------------------------------------------------ report
Row = tuple[str, str, str]


def fmt(res: dict, per: float | None = None, unit: str = "backtests") -> str:
    if "error" in res:
        return "error: " + res["error"].strip().splitlines()[-1][:200]
    s = f"{res['seconds']:.4f} s"
    if per:
        s += f" = {per / res['seconds']:,.0f} {unit}/s"
    if "peak_mb" in res:
        s += f", peak working {res['peak_mb']:.0f} MB"
    if "cold_s" in res:
        s += f" (import {res['import_s']:.2f} s, cold first call {res['cold_s']:.2f} s)"
    return s


def ratio(a: dict, b: dict) -> str:
    if "seconds" not in a or "seconds" not in b:
        return "n/a"
    return f"{b['seconds'] / a['seconds']:.2f}x"


def w1_rows(d: Path, sizes: list[int], peers: list[str], timeout: int) -> list[Row]:
    rows: list[Row] = []
    for n in sizes:
        make_w1(d, n)
        nb = n * len(PAIRS)
        ours = child(["w1_ql", str(d), str(n)])
        one = child(["w1_ql", str(d), str(n), "1"])
        base = child(["w1_ref", str(d), str(n)])
        diff = _maxdiff(d / f"out_w1_ql_{n}.npy", d / f"out_w1_ref_{n}.npy")
        tag = f"W1 {len(PAIRS)} pairs x {n:,} assets"
        if "seconds" in ours and n == sizes[0]:
            MEASURED["w1_rate"] = nb / ours["seconds"]
        rows += [(tag, "quantlib sweep(per_asset), all threads", fmt(ours, nb)),
                 (tag, "quantlib, 1 thread", fmt(one, nb) + f"; threads gain {ratio(ours, one)}"),
                 (tag, "NumPy reference (one cumsum, cached means)", fmt(base, nb)),
                 (tag, "ratio reference / quantlib", ratio(ours, base)
                  + f"; max |diff| {diff:.1e}")]
        if n == sizes[0]:
            rows += portfolio_rows(d, n)
            np.save(d / "w1_close.npy", _ffill(np.load(d / f"w1_{n}_close.npy")))
            (d / "w1_pairs.json").write_text(json.dumps(PAIRS))
            for p in [p for p in peers if p.startswith("w1_")]:
                res = peer(d, p, timeout)
                rows.append((tag, p, fmt(res, nb) + f"; ratio peer / quantlib {ratio(ours, res)}"))
    return rows


def portfolio_rows(d: Path, n: int) -> list[Row]:
    """Portfolio mode: 90 portfolios of ``n`` MA sleeves in the batched kernel, all threads
    vs 1 (``bench/bench_portfolio_sweep.py`` adds the kernel / serial CPU split)."""
    pf, pf1 = child(["w1_portfolio", str(d), str(n)]), child(["w1_portfolio", str(d), str(n),
                                                               "1"])
    if "seconds" in pf and "seconds" in pf1:
        MEASURED["portfolio_threads"] = pf1["seconds"] / pf["seconds"]
    return [(f"portfolio sweep, {len(PAIRS)} sets x {n:,} assets", "all threads / 1 thread",
             fmt(pf, len(PAIRS), "portfolios") + " / " + fmt(pf1)
             + f"; threads gain {ratio(pf, pf1)} (floor 1.7x)")]


def _maxdiff(a: Path, b: Path) -> float:
    if not (a.exists() and b.exists()):
        return float("nan")
    x, y = np.load(a), np.load(b)
    return float(np.nanmax(np.abs(x.reshape(y.shape) - y)))


def w1m_rows(d: Path, peers: list[str], timeout: int) -> list[Row]:
    from quantlib.backtest.kernels import long_flat_pnl

    close = _ffill(np.load(d / "w1_200_close.npy"))
    r = np.nan_to_num(np.load(d / "w1_200_returns.npy"))
    ma = ref.window_means(close, [w for p in PAIRS for w in p])
    rets = np.empty((T, 200 * len(PAIRS)))
    for j, (f, s) in enumerate(PAIRS):
        rets[:, j * 200:(j + 1) * 200] = long_flat_pnl((ma[f] > ma[s]).astype(float), r, FEE)
    np.save(d / "metrics_returns.npy", rets)
    del rets
    rows: list[Row] = []
    for lay in ("C", "F"):
        ours = child([f"w1m_ql_{lay}", str(d), "0"])
        base = child([f"w1m_ref_{lay}", str(d), "0"])
        tag = f"W1m 18,000 x 2,520, {'row' if lay == 'C' else 'column'}-major"
        if "seconds" in ours:
            MEASURED[f"w1m_{lay}"] = ours["seconds"]
        rows += [(tag, "quantlib sweep_metrics", fmt(ours)),
                 (tag, "NumPy reference", fmt(base) + f"; ratio {ratio(ours, base)}")]
        (d / "metrics_layout.txt").write_text(lay)
        for p in [p for p in peers if p.startswith("metrics_")]:
            res = peer(d, p, timeout)
            rows.append((tag, p, fmt(res) + f"; ratio peer / quantlib {ratio(ours, res)}"))
    return rows


def w2_rows(d: Path, sizes: list[int], peers: list[str], timeout: int) -> list[Row]:
    rows: list[Row] = []
    for n in sizes:
        make_w2(d, n)
        ours = child(["w2_ql", str(d), str(n)])
        base = child(["w2_ref", str(d), str(n)])
        diff = _maxdiff(d / f"out_w2_ql_{n}.npy", d / f"out_w2_ref_{n}.npy")
        tag = f"W2 12-1 momentum, {n:,} assets"
        mem = (f"; memory quantlib / reference {ours['peak_mb'] / base['peak_mb']:.2f}x"
               if "peak_mb" in ours and "peak_mb" in base else "")
        if "seconds" in ours and "seconds" in base:
            MEASURED[f"w2_ratio_{n}"] = base["seconds"] / ours["seconds"]
        if mem:
            MEASURED[f"w2_mem_{n}"] = ours["peak_mb"] / base["peak_mb"]
        rows += [(tag, "quantlib run() end to end", fmt(ours)),
                 (tag, "NumPy reference (vectorized, delistings)", fmt(base)),
                 (tag, "ratio reference / quantlib", ratio(ours, base) + mem
                  + f"; max |daily diff| {diff:.1e}")]
        if n == sizes[0] and any(p.startswith("w2_") for p in peers):
            rows += _w2_peer_rows(d, n, peers, ours, timeout, tag)
    return rows


def _w2_peer_rows(d: Path, n: int, peers: list[str], ours: dict, timeout: int, tag: str
                  ) -> list[Row]:
    r = np.load(d / f"w2_{n}_returns.npy")
    uni = np.load(d / f"w2_{n}_in_universe.npy")
    reb = np.nonzero(ref.month_ends(np.load(d / "dates.npy")))[0]
    tg = ref.w2_targets(r, uni, reb)
    orders = np.full(r.shape, np.nan)
    orders[reb] = tg
    np.save(d / "w2_returns.npy", r)
    np.save(d / "w2_orders.npy", orders)
    sel = np.zeros(r.shape, bool)
    sel[reb] = tg > 0
    np.save(d / "w2_select.npy", sel)
    want = np.load(d / f"out_w2_ref_{n}.npy")
    rows: list[Row] = []
    for p in [p for p in peers if p.startswith("w2_")]:
        res = peer(d, p, timeout)
        note = ""
        f = d / {"w2_bt": "w2_bt_daily.npy", "w2_vbt": "w2_vbt_numba_daily.npy",
                 "w2_vbt_rust": "w2_vbt_rust_daily.npy"}.get(p, "-")
        if f.exists():
            got = np.load(f)
            live = np.isfinite(got) & (np.arange(len(got)) > reb[reb >= 252][0])
            note = f"; corr of daily net with the reference {np.corrcoef(got[live], want[live])[0, 1]:.6f}"
        rows.append((tag, p, fmt(res) + f"; ratio peer / quantlib {ratio(ours, res)}" + note))
    return rows


def dask_rows(d: Path, repeat: int) -> list[Row]:
    """1 worker x 1 thread vs 2 workers x 1 thread on the same per-asset sweep (interleaved
    ``repeat`` times, best of each), and the per-task overhead of tiny tasks."""
    import pandas as pd
    import xarray as xr
    from distributed import Client, LocalCluster

    from quantlib.backtest.sweep import sweep

    ds = xr.Dataset({"close": (("date", "asset"), np.load(d / "w1_200_close.npy")),
                     "returns": (("date", "asset"), np.load(d / "w1_200_returns.npy"))},
                    coords={"date": pd.bdate_range("2000-01-03", periods=T)})
    grid = [{"fast": f, "slow": s} for f in range(1, 101) for s in range(10, 510, 10) if f < s]
    kw = {"per_asset": True, "costs": "flat:10"}
    times: dict[int, list[float]] = {1: [], 2: []}
    outs = {}
    overhead = {}
    clusters = {n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                dashboard_address=None) for n in (1, 2)}
    try:
        clients = {n: Client(c) for n, c in clusters.items()}
        for n, cl in clients.items():  # warm: compile on the workers, send the panel once
            sweep("ma_crossover", grid[:8], ds, client=cl, batch_size=1, **kw)
            tiny = ds.isel(asset=slice(0, 2), date=slice(0, 300))
            sweep("ma_crossover", grid[:4], tiny, client=cl, batch_size=1, **kw)
            t0 = time.perf_counter()
            sweep("ma_crossover", grid[:200], tiny, client=cl, batch_size=1, **kw)
            overhead[n] = (time.perf_counter() - t0) / 200
        for _ in range(repeat):
            for n, cl in clients.items():
                t0 = time.perf_counter()
                outs[n] = sweep("ma_crossover", grid, ds, client=cl, **kw)
                times[n].append(time.perf_counter() - t0)
        n_tasks = outs[2].attrs["n_tasks"]
    finally:
        for cl in clients.values():
            cl.close()
        for c in clusters.values():
            c.close()
    cols = ["total_return", "max_drawdown", "sharpe"]
    same = np.array_equal(outs[1][cols].to_numpy(), outs[2][cols].to_numpy(), equal_nan=True)
    nb = len(outs[1])
    b1, b2 = min(times[1]), min(times[2])
    MEASURED["dask_scaling"] = b1 / b2
    tag = f"Dask sweep {nb:,} backtests"
    return [(tag, "1 worker x 1 thread", f"{b1:.2f} s = {nb / b1:,.0f}/s"),
            (tag, "2 workers x 1 thread", f"{b2:.2f} s = {nb / b2:,.0f}/s; scaling {b1 / b2:.2f}x "
             f"(floor 1.8x); identical numbers: {same}; {n_tasks} tasks"),
            (tag, "per-task overhead (200 tiny tasks)",
             f"{overhead[1] * 1e3:.1f} ms (1 worker), {overhead[2] * 1e3:.1f} ms (2 workers)")]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        name, d = sys.argv[2], Path(sys.argv[3])
        n = int(sys.argv[4])
        threads = int(sys.argv[5]) if len(sys.argv) > 5 else 0
        print(json.dumps(step(name, d, n, threads)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--w1-assets", default="200")
    ap.add_argument("--w2-assets", default="1000")
    ap.add_argument("--dask-repeat", type=int, default=3)
    ap.add_argument("--sections", default="w1,w1m,w2,startup,dask",
                    help="comma-separated parts to run (also: portfolio, the portfolio-mode "
                         "sweep alone; w1 includes it)")
    ap.add_argument("--peer-timeout", type=int, default=1800)
    ap.add_argument("--peers", default="metrics_vbt,metrics_vbt_rust,metrics_empyrical,"
                    "metrics_quantstats,metrics_pandas,w1_vbt,w1_vbt_rust,w2_vbt,w2_vbt_rust,"
                    "w2_bt")
    ap.add_argument("--write", action="store_true",
                    help="also write the table into bench/RESULTS.md (between its markers)")
    args = ap.parse_args()
    load0, t_start = os.getloadavg(), time.time()
    peers = [] if args.no_peers else args.peers.split(",")
    d = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    try:
        rows = run_sections(args, d, peers)
    finally:
        shutil.rmtree(d, ignore_errors=True)  # GBs of .npy at 20,000 assets
    text = report(rows, load0, time.time() - t_start, " ".join(sys.argv[1:]))
    print("\n" + text)
    if args.write:
        write_results(text)
        print(f"\nwritten to {RESULTS_MD}", file=sys.stderr)


def run_sections(args: argparse.Namespace, d: Path, peers: list[str]) -> list[Row]:
    w1n = [int(x) for x in args.w1_assets.split(",")]
    if 200 not in w1n:
        w1n = [200, *w1n]
    parts = args.sections.split(",")
    rows: list[Row] = []
    if "w1" in parts:
        rows += w1_rows(d, w1n, peers, args.peer_timeout)
    elif {"w1m", "dask", "portfolio"} & set(parts):
        make_w1(d, 200)
    if "portfolio" in parts and "w1" not in parts:  # w1 runs it too
        rows += portfolio_rows(d, 200)
    if "w1m" in parts:
        rows += w1m_rows(d, peers, args.peer_timeout)
    w2n = [int(x) for x in args.w2_assets.split(",")]
    if "w2" in parts:
        rows += w2_rows(d, w2n, peers, args.peer_timeout)
    if "startup" in parts:
        if "w2" not in parts or 1000 not in w2n:
            make_w2(d, 1000)
        rows += startup_rows(d)
    if not args.no_dask and "dask" in parts:
        rows += dask_rows(d, args.dask_repeat)
    return rows


def startup_rows(d: Path, repeat: int = 3) -> list[Row]:
    """Fresh-process start-up with a warm numba cache (bench/startup_probe.py, timed from
    the interpreter's start), as a user's machine has it: Python's bytecode cache on. Also
    the artifacts linked by llvmlite instead of quantlib's ELF loader
    (``QUANTLIB_NATIVE_ELF=0``), numba running the kernels (``QUANTLIB_NATIVE_CACHE=0``:
    lean import and cache loading),
    stock numba import and cache loading (``QUANTLIB_NUMBA_LEAN_LOAD=0``), no bytecode cache (a
    sandbox exporting ``PYTHONDONTWRITEBYTECODE=1`` over a venv installed without .pyc
    files recompiles every module from source at each start) and that sandbox over the
    .pyc files ``uv sync --compile-bytecode`` writes into the venv (.ci/setup does; a venv
    synced without it has none, and this row is then the one above). Per configuration: one
    start warms the caches, then the best of ``repeat`` starts; the floor reads the first
    row. Phases are wall / CPU (user + sys): CPU is the fairer number on a loaded box."""
    rows: list[Row] = []
    pyc = {"PYTHONDONTWRITEBYTECODE": "<unset>", "PYTHONPYCACHEPREFIX": str(d / "pyc")}
    none = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(d / "no-pyc")}
    for label, env in (("bytecode cache on, native kernels (no numba import)", pyc),
                       ("bytecode cache on, native kernels linked by llvmlite's MCJIT", {
                           **pyc, "QUANTLIB_NATIVE_ELF": "0"}),
                       ("bytecode cache on, numba with lean import and cache loading", {
                           **pyc, "QUANTLIB_NATIVE_CACHE": "0"}),
                       ("bytecode cache on, stock numba import and cache loading", {
                           **pyc, "QUANTLIB_NUMBA_LEAN_LOAD": "0"}),
                       ("no bytecode cache (as this sandbox), native kernels", none),
                       ("PYTHONDONTWRITEBYTECODE=1 over the venv's own .pyc (uv sync "
                        "--compile-bytecode, as .ci/setup), native kernels", {
                           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "<unset>"})):
        runs = [_startup_probe(d, env) for _ in range(repeat + 1)][1:]
        ok = [r for r in runs if "phases" in r]
        if not ok:
            rows.append((f"Start-up, {label}", "error", str(runs[-1])[:300]))
            continue
        s = min(ok, key=lambda r: r["first_result_s"])
        if "startup" not in MEASURED:
            MEASURED["startup"] = s["first_result_s"]
        ph = s["phases"]
        parts = " / ".join(f"{ph[k]['wall_s']:.2f} ({ph[k]['cpu_s']:.2f})" for k in ph
                           if k != "data")
        load = ph["first run()"]["wall_s"] - ph["second run()"]["wall_s"]
        rows.append((f"Start-up (fresh process, warm numba cache), {label}",
                     "s wall (CPU): " + " / ".join(k for k in ph if k != "data"),
                     f"{parts}: first result {s['first_result_s']:.2f} s (CPU "
                     f"{s['first_result_cpu_s']:.2f} s, {s['modules_at_first_result']} "
                     f"modules), of which loading the kernels ~{load:.2f} s; "
                     f"{s['lean_loads']} kernels loaded lean, "
                     f"{s.get('native', {}).get('artifacts_loaded', 0)} from native artifacts "
                     f"({s.get('native', {}).get('linked_elf', 0)} linked by the ELF loader; "
                     f"numba imported: {s.get('numba_imported')}, llvmlite: "
                     f"{s.get('llvmlite_imported')}); process {s['process_s']:.2f} s "
                     f"(best of {len(ok)})"))
    return rows


def _startup_probe(d: Path, env: dict[str, str]) -> dict:
    full = {**os.environ, **env}
    for k in [k for k, v in full.items() if v == "<unset>"]:
        del full[k]
    t = time.perf_counter()
    out = subprocess.run([sys.executable, str(HERE / "startup_probe.py"), str(d)],
                         capture_output=True, text=True, timeout=600, env=full)
    if out.returncode != 0:
        return {"error": out.stderr[-600:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t
    print(f"[step] startup: {json.dumps(res)[:300]}", file=sys.stderr, flush=True)
    return res


def floors() -> list[Row]:
    """Issue #15's floors against what this run measured (n/a: the part did not run)."""
    m = MEASURED

    def row(name: str, key: str, fmt_: str, ok: Callable[[float], bool]) -> Row:
        if key not in m:
            return (name, "n/a", "not run")
        return (name, fmt_.format(m[key]), "yes" if ok(m[key]) else "NO")
    out = [row("W1 >= 350,000 backtests/s, one process", "w1_rate", "{:,.0f}/s",
               lambda v: v >= 350_000),
           row("portfolio sweep >= 1.7x on 2 threads", "portfolio_threads", "{:.2f}x",
               lambda v: v >= 1.7),
           row("W1m <= 25 ms, row-major", "w1m_C", "{:.4f} s", lambda v: v <= 0.025),
           row("W1m <= 25 ms, column-major", "w1m_F", "{:.4f} s", lambda v: v <= 0.025),
           row("Dask 2 workers x 1 thread >= 1.8x 1 x 1", "dask_scaling", "{:.2f}x",
               lambda v: v >= 1.8),
           row("start-up <= 1 s to the first result (warm cache)", "startup", "{:.2f} s",
               lambda v: v <= 1.0)]
    for key in sorted((k for k in m if k.startswith("w2_ratio_")), key=lambda k: int(k[9:])):
        n = int(key[9:])
        out.append(row(f"W2 >= 2x the reference, {n:,} assets", key, "{:.2f}x", lambda v: v >= 2))
        if n == 20000:
            out.append(row("W2 peak memory <= 1.3x the reference, 20,000 assets",
                           "w2_mem_20000", "{:.2f}x", lambda v: v <= 1.3))
    return out


def _table(header: Row, rows: list[Row]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| --- | --- | --- |"]
    cells = [[c.replace("|", "\\|") for c in r] for r in rows]  # "max |diff|" in a cell
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def report(rows: list[Row], load0: tuple[float, ...], seconds: float, argv: str) -> str:
    """The Markdown block (floors, then every row) that ``--write`` puts in RESULTS.md."""
    import platform

    load = os.getloadavg()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return "\n".join([
        f"Run {when}: `uv run python bench/bench_backtest.py {argv}` ({seconds / 60:.1f} min); "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}; load average "
        f"{load0[0]:.1f} at the start, {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the "
        "end. Every ratio is measured within this run, each step in a fresh process.", "",
        _table(("floor (issue #15)", "measured", "met?"), floors()), "",
        _table(("workload", "what", "result"), rows)])


def write_results(text: str) -> None:
    """Replace the block between the bench_backtest markers of bench/RESULTS.md."""
    doc = RESULTS_MD.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{RESULTS_MD} must hold the markers {BEGIN} and {END}")
    head, rest = doc.split(BEGIN, 1)
    RESULTS_MD.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])


if __name__ == "__main__":
    sys.exit(main())
