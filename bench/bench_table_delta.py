"""What one daily delta commit costs in the long tables, by stored history (issue #12).

A store is written with ``--assets`` US assets and ``--years`` of history (one market's
price panel of the last 90 days only: bars are not what this measures, the
assets/symbols tables, quarterly statements of 3 fields per asset, a
dividend per asset and quarter), then one day arrives as a delta commit the way
:func:`quantlib.pipeline.incremental.publish_delta` builds it: that day's filings
(``--filings`` rows known that day), the vendor's whole ``corporate_actions`` table again
with one newly announced action, and one session of bars. Timed: the statements key
check (``_fresh_statements``), the reference-table upsert (read + upsert), the commit,
and the bytes the repository gained. With several ``--years`` the stages should stay
flat. Run the same command with ``PYTHONPATH`` pointing at an older checkout to compare.

Usage::

    uv run python bench/bench_table_delta.py --assets 2000 --years 2,10
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def frames_for(n_assets: int, years: float, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Canonical frames of ``years`` of US history ending 2025-12-30 (see module doc)."""
    from quantlib import calendars

    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2025-12-30")
    start = end - pd.Timedelta(days=int(365.25 * years))
    days = calendars.sessions("US", end - pd.Timedelta(days=90), end)   # bars: not the point
    ids = [f"US{i:09d}0" for i in range(n_assets)]
    utc = "datetime64[ns, UTC]"
    assets = pd.DataFrame({"asset_id": ids, "market": "US", "mic": "XNYS", "currency": "USD",
                           "sector": "Tech", "name": [f"Co {i}" for i in range(n_assets)],
                           "listed": pd.Timestamp("2000-01-03"), "delisted": pd.NaT,
                           "known_at": pd.Timestamp("2000-01-01", tz="UTC")})
    symbols = pd.DataFrame({"asset_id": ids, "symbol": [f"S{i}" for i in range(n_assets)],
                            "valid_from": pd.Timestamp("2000-01-03"), "valid_to": pd.NaT})
    quarters = pd.date_range(start, end, freq="QE")
    q = np.repeat(quarters.values, n_assets)
    a = np.tile(ids, len(quarters))
    known = pd.DatetimeIndex(q).tz_localize("UTC") + pd.to_timedelta(
        rng.integers(20, 60, len(q)), "D")
    keep = known <= end.tz_localize("UTC")
    statements = pd.concat([pd.DataFrame({
        "asset_id": a[keep], "field": f, "period_end": q[keep],
        "value": rng.normal(size=int(keep.sum())), "known_at": known[keep]})
        for f in ("revenue", "net_income", "assets")], ignore_index=True)
    ex = pd.DatetimeIndex(q) + pd.Timedelta(days=10)
    actions = pd.DataFrame({"asset_id": a, "ex_date": ex, "kind": "dividend",
                            "value": rng.uniform(0.1, 1.0, len(a)),
                            "known_at": (ex - pd.Timedelta(days=14)).tz_localize("UTC")})
    actions = actions[actions["ex_date"] <= end].reset_index(drop=True)
    n = len(days) * n_assets
    close = 100 * np.exp(rng.normal(0, 0.01, n))
    prices = pd.DataFrame({"asset_id": np.repeat(ids, len(days)),
                           "date": np.tile(days.values, n_assets), "open": close,
                           "high": close, "low": close, "close": close,
                           "volume": 1000.0,
                           "known_at": np.tile(days.values, n_assets)})
    prices["known_at"] = prices["known_at"].dt.tz_localize("UTC") + pd.Timedelta(hours=22)
    out = {"assets": assets, "symbols": symbols, "prices": prices,
           "corporate_actions": actions, "statements": statements}
    for f in out.values():
        for col in f.columns:
            if col in ("known_at",):
                f[col] = f[col].astype(utc)
    return out


def one_day(frames: dict[str, pd.DataFrame], n_filings: int) -> dict[str, pd.DataFrame]:
    """The next session (2025-12-31): its bars, its filings, the actions table again with
    one new announcement."""
    day = pd.Timestamp("2025-12-31")
    at = day.tz_localize("UTC") + pd.Timedelta(hours=22)
    ids = frames["assets"]["asset_id"]
    bars = pd.DataFrame({"asset_id": ids, "date": day, "open": 101.0, "high": 101.0,
                         "low": 101.0, "close": 101.0, "volume": 1000.0, "known_at": at})
    filings = pd.DataFrame({"asset_id": ids.iloc[:n_filings], "field": "revenue",
                            "period_end": pd.Timestamp("2025-09-30"), "value": 1.0,
                            "known_at": at})
    new_action = pd.DataFrame({"asset_id": [ids.iloc[0]], "ex_date": [pd.Timestamp(
        "2026-01-15")], "kind": ["dividend"], "value": [0.3], "known_at": [at]})
    actions = pd.concat([frames["corporate_actions"], new_action], ignore_index=True)
    return {"prices": bars, "statements": filings, "corporate_actions": actions}


def repo_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(n_assets: int, years: float, n_filings: int) -> dict[str, float]:
    from quantlib.pipeline.incremental import upsert_table
    from quantlib.pipeline.merge import canonical
    from quantlib.store import CuratedStore
    from quantlib.store import curated as curated_mod

    try:   # this branch: append what the vendor added
        from quantlib.pipeline.incremental import upsert_appending as upsert
    except ImportError:   # an older checkout
        upsert = upsert_table
    folder = Path(tempfile.mkdtemp(prefix=f"bench-tdelta-{years:g}y-"))
    try:
        frames = frames_for(n_assets, years)
        st = CuratedStore(str(folder))
        t0 = time.perf_counter()
        st.commit({k: canonical(k, v) for k, v in frames.items()}, message="full")
        t_full = time.perf_counter() - t0
        before = repo_bytes(folder / "curated")
        day = {k: canonical(k, v) for k, v in one_day(frames, n_filings).items()}
        base = st.tip()
        root = st._base(base)
        t0 = time.perf_counter()
        fresh = curated_mod._fresh_statements(root, day["statements"])
        t_keys = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = upsert(canonical("corporate_actions", st.read_table("corporate_actions", base)),
                       day["corporate_actions"])
        t_upsert = time.perf_counter() - t0
        t0 = time.perf_counter()
        st.commit({"prices": day["prices"], "statements": day["statements"],
                   "corporate_actions": table}, message="day", delta=True, parent=base)
        t_commit = time.perf_counter() - t0
        added = repo_bytes(folder / "curated") - before
        return {"years": years, "statements": len(frames["statements"]),
                "actions": len(frames["corporate_actions"]), "full_s": t_full,
                "fresh": len(fresh), "keys_s": t_keys, "upsert_s": t_upsert,
                "commit_s": t_commit, "added_kb": added / 1e3}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=2000)
    parser.add_argument("--years", default="2,10")
    parser.add_argument("--filings", type=int, default=50)
    args = parser.parse_args(argv)
    import quantlib

    print(f"long tables of one delta commit: US x {args.assets} assets; quantlib from "
          f"{Path(quantlib.__file__).parent}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"{'years':>6}{'stmt rows':>11}{'actions':>9}{'full s':>8}{'fresh':>7}"
          f"{'keys s':>8}{'upsert s':>9}{'commit s':>9}{'added KB':>10}")
    for years in (float(y) for y in args.years.split(",")):
        r = run(args.assets, years, args.filings)
        print(f"{r['years']:6g}{r['statements']:11,}{r['actions']:9,}{r['full_s']:8.1f}"
              f"{r['fresh']:7}{r['keys_s']:8.2f}{r['upsert_s']:9.2f}{r['commit_s']:9.2f}"
              f"{r['added_kb']:10.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
