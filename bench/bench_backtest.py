"""Backtest benchmarks: W1 (MA-crossover sweep), W1 metrics, W2 (cross-sectional momentum),
Dask sweep scaling. Prints a table; ratios are measured in the same run.

Peers (vectorbt, bt, empyrical, quantstats) run in an environment of their own::

    uv venv bench/.venv-peers --python 3.12
    uv pip install --python bench/.venv-peers -r bench/peers/requirements.txt
    uv run python bench/bench_backtest.py            # add --no-peers to skip them

All data are seeded; 2,520 sessions. The plain-NumPy references are written here,
next to the workloads they mirror.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEERS_PY = HERE / ".venv-peers" / "bin" / "python"
T = 2520
FEE = 0.001
PAIRS = [(f, s) for f in range(5, 55, 5) for s in range(20, 220, 20) if f < s]  # 90 pairs


def best_of(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def dataset(n_assets: int, seed: int):
    from quantlib.backtest.synthetic import make_dataset

    return make_dataset(n_assets, T, seed=seed, markets=(), start="2000-01-03",
                        delist_fraction=0.0, list_fraction=0.0)


# ------------------------------------------------------------------ plain NumPy references
def rolling_mean_ref(x: np.ndarray, w: int) -> np.ndarray:
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    out = np.full(x.shape, np.nan)
    out[w - 1:] = (c[w:] - c[:-w]) / w
    return out


def w1_numpy_reference(close: np.ndarray, r: np.ndarray) -> np.ndarray:
    """One vectorized (T x assets) backtest per (fast, slow) pair: the plain NumPy way."""
    out = []
    for f, s in PAIRS:
        pos = (rolling_mean_ref(close, f) > rolling_mean_ref(close, s)).astype(float)
        held = np.vstack([np.zeros((1, pos.shape[1])), pos[:-1]])
        trade = np.abs(np.diff(pos, axis=0, prepend=0.0))
        ret = (1 + held * r) * (1 - FEE * trade) - 1
        wealth = np.cumprod(1 + ret, axis=0)
        peak = np.maximum.accumulate(np.vstack([np.ones((1, pos.shape[1])), wealth]), axis=0)
        mdd = (np.vstack([np.ones((1, pos.shape[1])), wealth]) / peak - 1).min(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sharpe = ret.mean(0) / ret.std(0, ddof=1) * np.sqrt(252)
        out.append(np.column_stack([wealth[-1] - 1, mdd, sharpe]))
    return np.stack(out)


def w2_numpy_reference(r: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Month-end equal-weight top decile of 12-1 momentum, drifting weights, 10 bps."""
    Tn, N = r.shape
    rz = np.nan_to_num(r)
    logv = np.cumsum(np.log1p(rz), axis=0)
    mom = np.full((Tn, N), np.nan)
    mom[252:] = np.exp(logv[252 - 21:Tn - 21] - logv[:Tn - 252]) - 1
    month = dates.astype("datetime64[M]")
    rebalance = np.zeros(Tn, bool)
    rebalance[:-1] = month[1:] != month[:-1]
    k = N // 10
    w = np.zeros(N)
    net = np.empty(Tn)
    for t in range(Tn):
        g = w @ rz[t]
        w = w * (1 + rz[t]) / (1 + g)
        c = 0.0
        if rebalance[t] and t >= 252:
            target = np.zeros(N)
            target[np.argpartition(-mom[t], k - 1)[:k]] = 1.0 / k
            c = FEE * np.abs(target - w).sum()
            w = target
        net[t] = (1 + g) * (1 - c) - 1
    return net


# ------------------------------------------------------------------ ours
def w1_ours(ds):
    from quantlib.backtest.sweep import sweep

    return sweep("ma_crossover", [{"fast": f, "slow": s} for f, s in PAIRS], ds,
                 per_asset=True, costs=f"flat:{FEE * 1e4}")


def _w1_child(q):
    ds = dataset(200, 1)
    w1_ours(ds.isel(asset=slice(0, 5)))  # compile / warm caches
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t, df = best_of(lambda: w1_ours(ds), 3)
    q.put({"seconds": t, "rows": len(df), "max_rss_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_mb": base})


def w2_ours(ds):
    from quantlib.backtest import run

    return run("xs_momentum", ds, window=252, skip=21, quantile=10, rebalance="M",
               costs=f"flat:{FEE * 1e4}")


def run_peers(data_dir: Path, workloads: list[str], timeout: int) -> dict:
    """Each peer workload in its own process of the peers' environment (own peak RSS)."""
    if not PEERS_PY.exists():
        return {w: {"error": "bench/.venv-peers missing"} for w in workloads}
    res = {}
    for w in workloads:
        try:
            out = subprocess.run([str(PEERS_PY), str(HERE / "peers" / "peer_runs.py"),
                                  str(data_dir), w], capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            res[w] = {"error": f"timed out after {timeout} s"}
            continue
        if out.returncode != 0:
            res[w] = {"error": out.stderr[-400:]}
            continue
        res.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--bt-assets", type=int, default=1000)
    ap.add_argument("--peer-timeout", type=int, default=1800)
    ap.add_argument("--peers", default="metrics_vbt,metrics_empyrical,metrics_quantstats,"
                    "w1_vbt,w2_bt", help="comma-separated peer workloads to run")
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-backtest-"))

    # ---------------- W1: 90 pairs x 200 assets = 18,000 backtests
    ds1 = dataset(200, 1)
    close = ds1["close"].ffill("date").values
    r1 = np.nan_to_num(ds1["returns"].values)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_w1_child, args=(q,))
    p.start()
    w1 = q.get()
    p.join()
    t_ref, ref = best_of(lambda: w1_numpy_reference(close, r1), 2)
    df = w1_ours(ds1)
    got = df[["total_return", "max_drawdown", "sharpe"]].to_numpy().reshape(len(PAIRS), 200, 3)
    max_diff = float(np.nanmax(np.abs(got - ref)))
    rows += [("W1 sweep 18,000 backtests", "quantlib sweep(per_asset)",
              f"{w1['seconds']:.3f} s = {18000 / w1['seconds']:,.0f}/s, "
              f"peak RSS {w1['max_rss_mb']:.0f} MB"),
             ("W1 sweep", "plain NumPy reference",
              f"{t_ref:.3f} s = {18000 / t_ref:,.0f}/s"),
             ("W1 sweep", "ratio quantlib / NumPy", f"{t_ref / w1['seconds']:.2f}x (floor 1.5x)"),
             ("W1 sweep", "max |diff| vs NumPy ref", f"{max_diff:.2e}")]

    # ---------------- W1 metrics alone: 3 metrics x 18,000 series x 2,520 days
    from quantlib.backtest.kernels import long_flat_pnl
    from quantlib.backtest.metrics import sweep_metrics, sweep_metrics_numpy
    from quantlib.backtest.signals import rolling_mean_np

    rets = np.empty((T, 18000))
    for j, (f, s) in enumerate(PAIRS):
        pos = (rolling_mean_np(close, f) > rolling_mean_np(close, s)).astype(float)
        rets[:, j * 200:(j + 1) * 200] = long_flat_pnl(pos, r1, FEE)
    np.save(tmp / "metrics_returns.npy", rets)
    sweep_metrics(rets[:, :2])
    t_m, ours_m = best_of(lambda: sweep_metrics(rets), 3)
    t_mn, _ = best_of(lambda: sweep_metrics_numpy(rets), 2)
    rows += [("W1 metrics (18,000 x 2,520)", "quantlib sweep_metrics", f"{t_m:.3f} s"),
             ("W1 metrics", "plain NumPy", f"{t_mn:.3f} s")]

    # ---------------- W2: 1,000 assets, month-end top decile 12-1, 10 bps, drift
    ds2 = dataset(1000, 2)
    r2 = ds2["returns"].values
    dates = ds2["date"].values
    w2_ours(ds2.isel(asset=slice(0, 50)))
    t_w2, res = best_of(lambda: w2_ours(ds2), 5)
    t_w2ref, net_ref = best_of(lambda: w2_numpy_reference(r2, dates), 3)
    diff = float(np.abs(res.returns["net"].to_numpy() - net_ref).max())
    from quantlib.backtest.constraints import rebalance_mask
    from quantlib.backtest.signals import decision_rows
    from quantlib.backtest.strategies import get_strategy

    strat = get_strategy("xs_momentum")

    def weights_only():
        with decision_rows(rebalance_mask(dates, "M")):  # as run() does
            return strat.weights(ds2, window=252, skip=21, quantile=10, long_short=False)

    t_w2w, _ = best_of(weights_only, 5)
    rows += [("W2 xs-momentum 1,000 assets", "quantlib run() end to end",
              f"{t_w2:.4f} s"),
             ("W2", "  of which strategy weights (month-end rows)", f"{t_w2w:.4f} s"),
             ("W2", "plain NumPy reference", f"{t_w2ref:.4f} s"),
             ("W2", "ratio NumPy / quantlib", f"{t_w2ref / t_w2:.2f}x (floor 2x)"),
             ("W2", "max |daily net diff| vs NumPy", f"{diff:.2e} (must be < 1e-10)")]
    n_bt = args.bt_assets
    ds_bt = ds2.isel(asset=slice(0, n_bt))
    res_bt = w2_ours(ds_bt)
    sel = strat.weights(ds_bt, window=252, skip=21, quantile=10, long_short=False).values > 0
    np.save(tmp / "w2_returns.npy", ds_bt["returns"].values)
    np.save(tmp / "w2_select.npy", sel)
    (tmp / "w2_meta.json").write_text(json.dumps({"bt_assets": n_bt}))
    np.save(tmp / "w1_close.npy", close)
    (tmp / "w1_pairs.json").write_text(json.dumps(PAIRS))

    # ---------------- peers
    if not args.no_peers:
        peers = run_peers(tmp, args.peers.split(","), args.peer_timeout)
        mv = peers.get("metrics_vbt", {})
        if "seconds" in mv:
            vbt_m = np.load(tmp / "metrics_vbt.npy")
            agree = np.allclose(vbt_m[:, 0], ours_m[:, 0], rtol=1e-9) and np.allclose(
                vbt_m[:, 1], ours_m[:, 1], rtol=1e-9)
            rows += [("W1 metrics", "vectorbt returns accessor",
                      f"{mv['seconds']:.3f} s; ratio vbt/quantlib {mv['seconds'] / t_m:.2f}x; "
                      f"total return + max DD agree: {agree}")]
        else:
            rows += [("W1 metrics", "vectorbt", str(mv.get("error")))]
        me = peers.get("metrics_empyrical", {})
        if me:
            rows += [("W1 metrics", "empyrical (2-D arrays)", f"{me['seconds']:.3f} s"
                      if "seconds" in me else str(me.get("error")))]
        mq = peers.get("metrics_quantstats", {})
        if mq:
            rows += [("W1 metrics", "quantstats (1,000 series, x18 extrapolated)",
                      f"{mq['seconds_1000_series']:.3f} s -> ~{mq['seconds_extrapolated']:.1f} s"
                      if "seconds_1000_series" in mq else str(mq.get("error")))]
        wv = peers.get("w1_vbt", {})
        if wv:
            rows += [("W1 sweep", "vectorbt MA + from_signals",
                      f"{wv['seconds']:.3f} s = {18000 / wv['seconds']:,.0f}/s, peak RSS "
                      f"{wv['max_rss_mb']:.0f} MB; ratio vbt/quantlib "
                      f"{wv['seconds'] / w1['seconds']:.2f}x" if "seconds" in wv
                      else str(wv.get("error")))]
        wb = peers.get("w2_bt", {})
        if not wb:
            pass
        elif "seconds" in wb:
            daily = np.load(tmp / "w2_bt_daily.npy")
            ours = res_bt.returns["net"].to_numpy()
            live = np.isfinite(daily)
            live[:253] = False  # before the first 12-1 signal both hold cash
            corr = float(np.corrcoef(daily[live], ours[live])[0, 1])
            rows += [("W2", f"bt ({wb['assets']} assets)",
                      f"{wb['seconds']:.2f} s; corr of daily returns {corr:.9f} "
                      "(floor 0.999999)")]
        else:
            rows += [("W2", "bt", str(wb.get("error")))]

    # ---------------- Dask: 2-worker LocalCluster vs one process
    if not args.no_dask:
        rows += dask_rows(ds1, repeat=5)
    width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(f"\n{'workload':<{width[0]}} | {'what':<{width[1]}} | result")
    print("-" * (width[0] + width[1] + 40))
    for a, b, c in rows:
        print(f"{a:<{width[0]}} | {b:<{width[1]}} | {c}")


def dask_rows(ds, repeat: int = 3) -> list[tuple[str, str, str]]:
    """One process vs a 2-worker LocalCluster on the same per-asset sweep, interleaved
    ``repeat`` times (the box is shared: the best of each is compared, medians shown)."""
    import statistics

    from distributed import Client, LocalCluster

    from quantlib.backtest.sweep import sweep

    grid = [{"fast": f, "slow": s} for f in range(1, 101) for s in range(10, 510, 10) if f < s]
    kw = {"per_asset": True, "costs": "flat:10"}
    sweep("ma_crossover", grid[:2], ds, **kw)
    t1s, t2s = [], []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        t0 = time.perf_counter()  # warm the workers; sends the panel (reused afterwards)
        warm = sweep("ma_crossover", grid[:8], ds, client=client, batch_size=1, **kw)
        t_warm = time.perf_counter() - t0
        for _ in range(repeat):
            t1, df1 = best_of(lambda: sweep("ma_crossover", grid, ds, **kw), 1)
            t2, df2 = best_of(lambda: sweep("ma_crossover", grid, ds, client=client, **kw), 1)
            t1s.append(t1)
            t2s.append(t2)
    same = np.array_equal(df1[["total_return", "max_drawdown", "sharpe"]].to_numpy(),
                          df2[["total_return", "max_drawdown", "sharpe"]].to_numpy(),
                          equal_nan=True)
    n = len(df1)
    b1, b2 = min(t1s), min(t2s)
    m1, m2 = statistics.median(t1s), statistics.median(t2s)
    return [(f"Dask sweep {n:,} backtests", "one process (best / median of "
             f"{repeat})", f"{b1:.2f} s = {n / b1:,.0f}/s / {m1:.2f} s"),
            ("Dask sweep", "LocalCluster 2 workers x 1 thread (best / median)",
             f"{b2:.2f} s = {n / b2:,.0f}/s / {m2:.2f} s; speed-up {b1 / b2:.2f}x best, "
             f"{m1 / m2:.2f}x median (floor 1.6x); same numbers: {same}"),
            ("Dask sweep", "bytes sent to workers (panel once per worker and client)",
             f"{warm.attrs['bytes_scattered'] / 1e6:.1f} MB by the first (warm-up) sweep, "
             f"{t_warm:.2f} s with it; {df2.attrs['bytes_scattered']} bytes by each timed "
             f"sweep ({df2.attrs['n_tasks']} tasks)")]


if __name__ == "__main__":
    sys.exit(main())
