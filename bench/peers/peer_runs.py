"""Peer timings for bench/bench_backtest.py; runs in bench/.venv-peers (vectorbt with its
Numba and Rust engines, bt, empyrical-reloaded, quantstats, pandas live there, never in
the project's environment).

Usage: python peer_runs.py DATA_DIR WORKLOAD   (one workload per process: its own peak RSS).
Workloads: w1_vbt, w1_vbt_rust, w2_vbt, w2_vbt_rust, w2_bt, metrics_vbt, metrics_vbt_rust,
metrics_empyrical, metrics_quantstats, metrics_pandas. Prints one JSON object: ``import_s``
(importing the library), ``cold_s`` (the first call: JIT compilation, caches),
``seconds`` (best warm call), ``peak_mb`` (peak RSS over the process's start, warm calls).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from memory import peak_mb, reset_peak  # noqa: E402  (stdlib only)

warnings.filterwarnings("ignore")
FEE = 0.001
IDX = pd.bdate_range("2000-01-03", periods=2520)


def _time(go, repeat: int) -> tuple[float, float, object]:
    t = time.perf_counter()
    out = go()
    cold = time.perf_counter() - t
    best = float("inf")
    reset_peak()
    for _ in range(repeat):
        t = time.perf_counter()
        out = go()
        best = min(best, time.perf_counter() - t)
    return cold, best, out


def _vbt(engine: str):
    t = time.perf_counter()
    import vectorbt as vbt

    vbt.settings["engine"] = engine
    return vbt, time.perf_counter() - t


def w1(d: Path, engine: str) -> dict:
    vbt, imp = _vbt(engine)
    close = pd.DataFrame(np.load(d / "w1_close.npy"), index=IDX[:len(np.load(d / "w1_close.npy"))])
    pairs = json.loads((d / "w1_pairs.json").read_text())

    def go():
        fast = vbt.MA.run(close, window=[p[0] for p in pairs], short_name="fast")
        slow = vbt.MA.run(close, window=[p[1] for p in pairs], short_name="slow")
        pf = vbt.Portfolio.from_signals(close, fast.ma_above(slow), fast.ma_below(slow),
                                        fees=FEE, freq="1D")
        return pf.total_return().to_numpy()

    cold, best, out = _time(go, 1)
    return {"import_s": imp, "cold_s": cold, "seconds": best, "backtests": int(out.size)}


def w2(d: Path, engine: str) -> dict:
    """Target-percent orders on month ends, one cash-sharing group (drifting weights)."""
    vbt, imp = _vbt(engine)
    r = np.load(d / "w2_returns.npy")
    close = pd.DataFrame(100 * np.cumprod(1 + np.nan_to_num(r), axis=0), index=IDX[:len(r)])
    size = pd.DataFrame(np.load(d / "w2_orders.npy"), index=close.index)  # NaN: no order

    def go():
        pf = vbt.Portfolio.from_orders(close, size, size_type="targetpercent", fees=FEE,
                                       group_by=True, cash_sharing=True, call_seq="auto",
                                       freq="1D")
        return pf.returns().to_numpy()

    cold, best, daily = _time(go, 2)
    np.save(d / f"w2_vbt_{engine}_daily.npy", np.asarray(daily, float).ravel())
    return {"import_s": imp, "cold_s": cold, "seconds": best}


def w2_bt(d: Path) -> dict:
    t = time.perf_counter()
    import bt

    imp = time.perf_counter() - t
    r = np.load(d / "w2_returns.npy")
    n = r.shape[1]
    cols = [f"a{i}" for i in range(n)]
    prices = pd.DataFrame(100 * np.cumprod(1 + np.nan_to_num(r), axis=0), index=IDX[:len(r)],
                          columns=cols)
    select = pd.DataFrame(np.load(d / "w2_select.npy"), index=prices.index, columns=cols)

    def go():
        s = bt.Strategy("xs_mom", [bt.algos.RunMonthly(run_on_end_of_period=True),
                                   bt.algos.SelectWhere(select),
                                   bt.algos.WeighEqually(), bt.algos.Rebalance()])
        test = bt.Backtest(s, prices, commissions=lambda q, p: abs(q * p) * FEE,
                           initial_capital=1e12)  # integer shares of 1e12: rounding < 1e-9
        return bt.run(test)["xs_mom"].prices.pct_change().fillna(0.0)

    cold, best, daily = _time(go, 1)
    np.save(d / "w2_bt_daily.npy", daily.reindex(prices.index).to_numpy(dtype=float))
    return {"import_s": imp, "cold_s": cold, "seconds": best}


def metrics(d: Path, lib: str) -> dict:
    order = "F" if (d / "metrics_layout.txt").read_text().strip() == "F" else "C"
    r = np.asarray(np.load(d / "metrics_returns.npy"), order=order)
    t = time.perf_counter()
    if lib.startswith("vbt"):
        vbt, _ = _vbt("rust" if lib == "vbt_rust" else "numba")
        acc = pd.DataFrame(r, index=IDX[:len(r)], copy=False).vbt.returns(freq="1D")

        def go():
            return acc.total(), acc.max_drawdown(), acc.sharpe_ratio()
    elif lib == "empyrical":
        import empyrical as ep

        def go():
            return ep.cum_returns_final(r), ep.max_drawdown(r), ep.sharpe_ratio(r)
    elif lib == "pandas":
        df = pd.DataFrame(r, copy=False)

        def go():
            wealth = (1 + df).cumprod()
            return (wealth.iloc[-1] - 1, (wealth / wealth.cummax().clip(lower=1) - 1).min(),
                    df.mean() / df.std() * np.sqrt(252))
    else:  # quantstats: 1,000 series, extrapolated
        import quantstats as qs

        sub = pd.DataFrame(r[:, :1000], index=IDX[:len(r)])

        def go():
            return qs.stats.comp(sub), qs.stats.max_drawdown(sub), qs.stats.sharpe(sub)
    imp = time.perf_counter() - t
    cold, best, out = _time(go, 1 if lib == "quantstats" else 3)
    res = {"import_s": imp, "cold_s": cold, "seconds": best, "layout": order}
    if lib == "quantstats":
        res["seconds"] = best * r.shape[1] / 1000
        res["note"] = "1,000 series timed, x18 extrapolated"
    else:
        np.save(d / f"metrics_{lib}.npy", np.column_stack([np.asarray(o) for o in out]))
    return res


WORKLOADS = {
    "w1_vbt": lambda d: w1(d, "numba"), "w1_vbt_rust": lambda d: w1(d, "rust"),
    "w2_vbt": lambda d: w2(d, "numba"), "w2_vbt_rust": lambda d: w2(d, "rust"),
    "w2_bt": w2_bt,
    "metrics_vbt": lambda d: metrics(d, "vbt"), "metrics_vbt_rust": lambda d: metrics(d, "vbt_rust"),
    "metrics_empyrical": lambda d: metrics(d, "empyrical"),
    "metrics_quantstats": lambda d: metrics(d, "quantstats"),
    "metrics_pandas": lambda d: metrics(d, "pandas"),
}

if __name__ == "__main__":
    data_dir, name = Path(sys.argv[1]), sys.argv[2]
    try:
        out = WORKLOADS[name](data_dir)
    except Exception as exc:  # report and go on: one peer failing must not hide the rest
        out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    out["peak_mb"] = peak_mb()
    print(json.dumps({name: out}))
