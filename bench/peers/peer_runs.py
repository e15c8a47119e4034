"""Peer timings for bench/bench_backtest.py; runs in bench/.venv-peers (vectorbt, bt, empyrical,
quantstats live there, never in the project's environment).

Usage: python peer_runs.py DATA_DIR WORKLOAD...   (workloads: w1_vbt, metrics_vbt,
metrics_empyrical, metrics_quantstats, w2_bt). Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import resource
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_backtest import best_of  # noqa: E402  (stdlib + numpy only at import)

warnings.filterwarnings("ignore")
FEE = 0.001


def w1_vbt(d: Path) -> dict:
    import vectorbt as vbt

    close = pd.DataFrame(np.load(d / "w1_close.npy"),
                         index=pd.bdate_range("2000-01-03", periods=2520))
    pairs = json.loads((d / "w1_pairs.json").read_text())
    fast_w = [p[0] for p in pairs]
    slow_w = [p[1] for p in pairs]

    def go():
        fast = vbt.MA.run(close, window=fast_w, short_name="fast")
        slow = vbt.MA.run(close, window=slow_w, short_name="slow")
        entries = fast.ma_above(slow)
        exits = fast.ma_below(slow)
        pf = vbt.Portfolio.from_signals(close, entries, exits, fees=FEE, freq="1D")
        return (pf.total_return().to_numpy(), pf.max_drawdown().to_numpy(),
                pf.sharpe_ratio().to_numpy())

    go_small = lambda: None  # noqa: E731
    go_small()
    t, out = best_of(go, 1)
    np.save(d / "w1_vbt_total_return.npy", out[0])
    return {"seconds": t, "backtests": int(out[0].size)}


def metrics_vbt(d: Path) -> dict:
    import vectorbt  # noqa: F401  (registers the .vbt accessor)

    rets = pd.DataFrame(np.load(d / "metrics_returns.npy"),
                        index=pd.bdate_range("2000-01-03", periods=2520))
    acc = rets.vbt.returns(freq="1D")

    def go():
        return acc.total(), acc.max_drawdown(), acc.sharpe_ratio()

    go()  # numba compile
    t, out = best_of(go, 3)
    np.save(d / "metrics_vbt.npy", np.column_stack([o.to_numpy() for o in out]))
    return {"seconds": t}


def metrics_empyrical(d: Path) -> dict:
    import empyrical as ep

    r = np.load(d / "metrics_returns.npy")

    def go():
        return ep.cum_returns_final(r), ep.max_drawdown(r), ep.sharpe_ratio(r)

    t, out = best_of(go, 3)
    np.save(d / "metrics_empyrical.npy", np.column_stack([np.asarray(o) for o in out]))
    return {"seconds": t}


def metrics_quantstats(d: Path) -> dict:
    import quantstats as qs

    r = np.load(d / "metrics_returns.npy")[:, :1000]
    df = pd.DataFrame(r, index=pd.bdate_range("2000-01-03", periods=2520))

    def go():
        return (qs.stats.comp(df), qs.stats.max_drawdown(df), qs.stats.sharpe(df))

    t, _ = best_of(go, 1)
    return {"seconds_1000_series": t, "seconds_extrapolated": t * r.shape[1] and
            t * np.load(d / "metrics_returns.npy", mmap_mode="r").shape[1] / 1000}


def w2_bt(d: Path) -> dict:
    import bt

    idx = pd.bdate_range("2000-01-03", periods=2520)
    r = np.load(d / "w2_returns.npy")
    n = int(json.loads((d / "w2_meta.json").read_text()).get("bt_assets", r.shape[1]))
    prices = pd.DataFrame(100 * np.cumprod(1 + np.nan_to_num(r[:, :n]), axis=0), index=idx,
                          columns=[f"a{i}" for i in range(n)])
    select = pd.DataFrame(np.load(d / "w2_select.npy")[:, :n], index=idx,
                          columns=prices.columns)

    def go():
        s = bt.Strategy("xs_mom", [bt.algos.RunMonthly(run_on_end_of_period=True),
                                   bt.algos.SelectWhere(select),
                                   bt.algos.WeighEqually(), bt.algos.Rebalance()])
        test = bt.Backtest(s, prices, commissions=lambda q, p: abs(q * p) * FEE,
                           initial_capital=1e12)  # integer shares of 1e12: rounding < 1e-9
        res = bt.run(test)
        return res["xs_mom"].prices.pct_change().fillna(0.0)

    t, daily = best_of(go, 1)
    # bt's price series may start before/after the data's first date: align by date
    aligned = daily.reindex(idx)
    np.save(d / "w2_bt_daily.npy", aligned.to_numpy(dtype=float))
    return {"seconds": t, "assets": n}


if __name__ == "__main__":
    data_dir = Path(sys.argv[1])
    out = {}
    for name in sys.argv[2:]:
        try:
            out[name] = globals()[name](data_dir)
        except Exception as exc:  # report and go on: one peer failing must not hide the rest
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        out[name]["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
