"""Cost of a result's data address vs the backtest it addresses (issue #9).

A result id covers the data a backtest read: a content fingerprint of every variable
and coordinate (:func:`quantlib.backtest.engine.data_fingerprint`) unless the data is an
untouched catalog read. This prints the fingerprint time of a seeded 1,000-asset x
2,520-session panel (ten variables, 184 MB) next to single backtests on it.

    uv run python bench/bench_fingerprint.py [--assets 1000] [--days 2520] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Fastest of ``repeat`` timed calls (seconds)."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main() -> None:
    from quantlib.backtest import run
    from quantlib.backtest.engine import data_fingerprint
    from quantlib.backtest.synthetic import make_dataset

    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=1000)
    ap.add_argument("--days", type=int, default=2520)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    ds = make_dataset(a.assets, a.days, seed=0, markets=("US",))
    print(f"panel {a.assets} x {a.days}, {len(ds.data_vars)} variables, "
          f"{ds.nbytes / 1e6:.0f} MB")
    rows = [("data_fingerprint", best_of(lambda: data_fingerprint(ds), a.repeat))]
    for name, kw in (("ma_crossover", {"fast": 20, "slow": 100}),
                     ("xs_momentum", {"window": 252, "skip": 21})):
        run(name, ds, **kw)  # compile / warm caches
        rows.append((f"run {name} (includes one fingerprint)",
                     best_of(lambda n=name, k=kw: run(n, ds, **k), max(2, a.repeat // 2))))
    fp = rows[0][1]
    print("| step | best s | fingerprint share |\n| --- | ---: | ---: |")
    for name, t in rows:
        print(f"| {name} | {t:.3f} | {fp / t:.0%} |")


if __name__ == "__main__":
    main()
