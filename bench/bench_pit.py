"""Benchmark: PIT materialization of bitemporal statements, quantlib.pit vs pandas vs DuckDB.

Task: for every global session date d and asset a, each field's value of the latest
``period_end`` among the rows with ``known_at <= decision_time(d, a)`` (clock "own": the
asset's market close + 30 min), in its latest revision known by then; a late restatement
of an older period does not displace a newer one.

All three methods get the same synthetic statements (quarterly periods, announced 20-90
days after the period end, ~10% restated 30-300 days later) and the same precomputed
decision-time grid (the long (date, asset, decision time) table pandas and DuckDB join
against is built outside their timings), and must return identical (date x asset)
panels (asserted).

* ``quantlib.pit``: ``asof_fields`` (numpy kernel: rank + running max +
  scatter + forward max, see quantlib/pit/kernels.py).
* ``pandas``: the fastest pandas route we found: per (asset, field) running best row in
  known_at order (groupby cummax of a (period, known_at) rank), then one
  ``pandas.merge_asof(by="asset")`` of the grid per field.
* ``DuckDB``: the same running best with a window function, then ``ASOF JOIN`` per field.

Run: ``uv run python bench/bench_pit.py`` (``--quick`` for a small smoke run).
"""

from __future__ import annotations

import argparse
import os
import time

import duckdb
import numpy as np
import pandas as pd

from quantlib.pit import asof_fields, make_grid
from quantlib.pit.grid import to_ns

FIELDS = [f"field_{i}" for i in range(10)]


def synthetic(markets: list[str], n_assets: int, years: int, n_fields: int, seed: int = 0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assets and bitemporal statements (canonical columns)."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2025-12-31")
    start = end - pd.DateOffset(years=years)
    ids = [f"{m}{i:06d}" for m in markets for i in range(n_assets)]
    assets = pd.DataFrame({"asset_id": ids, "market": np.repeat(markets, n_assets),
                           "currency": "USD", "sector": "x", "listed": start, "delisted": pd.NaT})
    quarters = pd.date_range(start - pd.DateOffset(months=6), end, freq="QE").to_numpy()
    n_a, n_q, n_f = len(ids), len(quarters), n_fields
    a = np.repeat(np.arange(n_a), n_q * n_f)
    q = np.tile(np.repeat(np.arange(n_q), n_f), n_a)
    f = np.tile(np.arange(n_f), n_a * n_q)
    lag_days = np.repeat(rng.integers(20, 91, n_a * n_q), n_f)     # one announcement per period
    known = quarters[q] + lag_days * np.timedelta64(1, "D") + \
        np.repeat(rng.integers(0, 86400, n_a * n_q), n_f) * np.timedelta64(1, "s")
    value = rng.normal(100, 10, a.size)
    restated = rng.random(a.size) < 0.10
    k2 = known[restated] + rng.integers(30, 301, restated.sum()) * np.timedelta64(1, "D")
    frame = pd.DataFrame({
        "asset_id": np.asarray(ids)[np.r_[a, a[restated]]],
        "field": np.asarray(FIELDS[:n_f])[np.r_[f, f[restated]]],
        "period_end": quarters[np.r_[q, q[restated]]],
        "value": np.r_[value, value[restated] * rng.uniform(0.95, 1.05, restated.sum())],
        "known_at": pd.DatetimeIndex(np.r_[known, k2]).tz_localize("UTC"),
    })
    return assets, frame


def run_pit(statements: pd.DataFrame, grid, fields) -> dict[str, np.ndarray]:
    return {f: v for f, (v, _) in asof_fields(statements, grid, fields,
                                              with_period=False).items()}


def _best_rows(statements: pd.DataFrame, grid) -> pd.DataFrame:
    """pandas: per (asset, field) the row to show after each known_at (running best)."""
    ev = pd.DataFrame({"asset": grid.assets.index.get_indexer(statements["asset_id"]),
                       "field": statements["field"].to_numpy(),
                       "period": to_ns(statements["period_end"]),
                       "t": to_ns(statements["known_at"]),
                       "value": statements["value"].to_numpy()})
    ev = ev.sort_values(["asset", "field", "period", "t"], kind="stable")
    ev["rank"] = np.arange(len(ev))
    value_by_rank = ev["value"].to_numpy()
    ev = ev.sort_values(["asset", "field", "t", "rank"], kind="stable")
    ev["best"] = ev.groupby(["asset", "field"], sort=False)["rank"].cummax()
    ev = ev.drop_duplicates(["asset", "field", "t"], keep="last")
    values = value_by_rank[ev["best"].to_numpy()]
    return pd.DataFrame({"asset": ev["asset"].to_numpy(), "field": ev["field"].to_numpy(),
                         "t": ev["t"].to_numpy(), "value": values})


def _grid_frame(grid) -> pd.DataFrame:
    n_d, n_a = len(grid.dates), len(grid.assets)
    t = grid.decision_times[:, grid.asset_clock]                     # (n_dates, n_assets)
    left = pd.DataFrame({"row": np.arange(n_d * n_a), "asset": np.tile(np.arange(n_a), n_d),
                         "t": t.ravel()})
    return left.sort_values("t", kind="stable").reset_index(drop=True)


def run_pandas(statements: pd.DataFrame, grid, fields, left: pd.DataFrame
               ) -> dict[str, np.ndarray]:
    shape = (len(grid.dates), len(grid.assets))
    cur = _best_rows(statements, grid)
    out = {}
    for f in fields:
        right = cur[cur["field"] == f].sort_values("t", kind="stable")[["t", "asset", "value"]]
        m = pd.merge_asof(left, right, on="t", by="asset", direction="backward")
        panel = np.empty(shape[0] * shape[1])
        panel[m["row"].to_numpy()] = m["value"].to_numpy()
        out[f] = panel.reshape(shape)
    return out


_SQL_BEST = """
create or replace temp table cur as
with r as (select *, row_number() over (order by asset, field, period, t) as rk from ev),
b as (select asset, field, t, max(rk) over (partition by asset, field order by t, rk
        rows between unbounded preceding and current row) as best from r),
c as (select asset, field, t, max(best) as best from b group by asset, field, t)
select c.asset, c.field, c.t, r.value from c join r on r.rk = c.best
"""
def run_duckdb(statements: pd.DataFrame, grid, fields, con) -> dict[str, np.ndarray]:
    shape = (len(grid.dates), len(grid.assets))
    ev = pd.DataFrame({"asset": grid.assets.index.get_indexer(statements["asset_id"]),
                       "field": statements["field"].to_numpy(),
                       "period": to_ns(statements["period_end"]),
                       "t": to_ns(statements["known_at"]), "value": statements["value"].to_numpy()})
    con.register("ev", ev)
    con.execute(_SQL_BEST)
    out = {}
    for f in fields:
        con.execute(f"create or replace temp table curf as select * from cur where field = '{f}'")
        res = con.execute("select g.row, curf.value from grid_t g asof left join curf "
                          "on g.asset = curf.asset and g.t >= curf.t").fetchnumpy()
        panel = np.full(shape[0] * shape[1], np.nan)
        val = np.asarray(res["value"], dtype=float) if not hasattr(res["value"], "filled") \
            else res["value"].filled(np.nan)
        panel[np.asarray(res["row"])] = val
        out[f] = panel.reshape(shape)
    return out


def timed(fn, *args, repeat: int = 1):
    best, result = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, result


def case(name: str, markets: list[str], n_assets: int, years: int, n_fields: int,
         duck: bool = True, repeat: int = 1) -> list[tuple[str, str, float]]:
    assets, statements = synthetic(markets, n_assets, years, n_fields)
    end = pd.Timestamp("2025-12-31")
    grid = make_grid(assets, markets=markets, start=end - pd.DateOffset(years=years), end=end,
                     decision_clock="own", offset_minutes=30, lookback=pd.Timedelta(0))
    fields = FIELDS[:n_fields]
    rows = []
    t_pit, ref = timed(run_pit, statements, grid, fields, repeat=repeat)
    rows.append((name, "quantlib.pit", t_pit))
    # the (date x asset) decision grid is prepared outside the timings for every method
    left = _grid_frame(grid)
    methods = [("pandas.merge_asof", run_pandas, left)]
    if duck:
        con = duckdb.connect()
        con.register("grid", left)
        con.execute("create or replace temp table grid_t as select * from grid")
        methods.append(("DuckDB ASOF JOIN", run_duckdb, con))
    for label, fn, prepared in methods:
        t, got = timed(fn, statements, grid, fields, prepared, repeat=repeat)
        for f in fields:
            np.testing.assert_array_equal(got[f], ref[f], err_msg=f"{label} differs on {f}")
        rows.append((name, label, t))
    n_cells = len(grid.dates) * len(grid.assets) * n_fields
    print(f"# {name}: {len(statements):,} statement rows, {len(grid.dates)} dates x "
          f"{len(grid.assets)} assets x {n_fields} fields = {n_cells:,} cells; panels identical")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--no-duckdb", action="store_true")
    args = ap.parse_args()
    n = 100 if args.quick else 1000
    yrs = 2 if args.quick else 10
    rows = case(f"1 x {n} assets x {yrs} y x 1 field", ["US"], n, yrs, 1, not args.no_duckdb,
                repeat=3)
    rows += case(f"3 x {n} assets x {yrs} y x 10 fields", ["KR", "US", "EU"], n, yrs, 10,
                 not args.no_duckdb)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nCPUs: {os.cpu_count()}, load average (1/5/15 min) at the end: {load}")
    print("\n| case | method | time (s) | quantlib.pit speedup |\n|---|---|---:|---:|")
    base = {r[0]: r[2] for r in rows if r[1] == "quantlib.pit"}
    for name, label, t in rows:
        print(f"| {name} | {label} | {t:.3f} | {t / base[name]:.1f}x |")


if __name__ == "__main__":
    main()
