"""Store growth per daily refresh (issue #12): bytes the store gains per session.

A sandbox (3 markets x ``--assets``, ``--years`` of history) is built in full; then the
vendor's clock moves one session at a time (``Sandbox.advance``) and each session is
brought in by one incremental refresh. After every refresh the store folder's bytes are
counted per Icechunk area (``chunks``, ``manifests``, ``snapshots``, ``transactions``,
the rest), and the day's new data is measured the way the issue defines it: the new
session's rows of every stored 2-D panel variable (all assets of every market) and of
the tables the refresh appended, compressed with zstd (level 3, the store's codec).

The ratio ``bytes added / compressed new data`` is what the floor bounds (<= 10x).
Then ``quantlib data compact`` runs and the store is measured again.

Usage::

    uv run python bench/bench_store_growth.py --assets 100 --years 2 --days 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

AREAS = ("chunks", "manifests", "snapshots", "transactions")


def folder_bytes(root: Path) -> dict[str, int]:
    """Bytes under ``root`` by Icechunk area (anything else under ``other``)."""
    out = dict.fromkeys((*AREAS, "other"), 0)
    for dirpath, _dirs, files in os.walk(root):
        rel = Path(dirpath).relative_to(root).parts
        area = next((p for p in rel if p in AREAS), "other")
        for name in files:
            try:
                out[area] += (Path(dirpath) / name).stat().st_size
            except FileNotFoundError:
                pass
    return out


def day_new_bytes(store: str, day: object) -> tuple[int, int]:
    """(raw bytes, zstd bytes) of ``day``'s row of every 2-D panel variable."""
    import numpy as np
    import pandas as pd
    from numcodecs import Zstd

    from quantlib.store.curated import CuratedStore

    cs = CuratedStore(store)
    raw = comp = 0
    codec = Zstd(level=3)
    for market in cs.markets():
        try:
            ds = cs.open_prices(market)
        except Exception:  # noqa: BLE001 - a market without a panel counts nothing
            continue
        dates = pd.DatetimeIndex(ds["date"].values)
        pos = dates.get_indexer([pd.Timestamp(day)])[0]
        if pos < 0:
            continue
        for var in ds.data_vars.values():
            if var.ndim != 2:
                continue
            row = np.ascontiguousarray(var.isel(date=pos).values)
            raw += row.nbytes
            comp += len(codec.encode(row))
    return raw, comp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--years", type=float, default=2)
    parser.add_argument("--days", type=int, default=5)
    args = parser.parse_args(argv)

    import pandas as pd

    from quantlib import calendars
    from quantlib.pipeline import refresh
    from quantlib.sandbox import start_sandbox
    from quantlib.store.compact import compact

    last = pd.Timestamp("2025-12-31")
    sessions = calendars.global_sessions(("KR", "US", "EU"), last - pd.Timedelta(days=40), last)
    days = list(sessions[-(args.days + 1):])
    first_end, steps = days[0], days[1:]
    root = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    store = str(root / "store")
    print(f"store growth per daily refresh: 3 markets x {args.assets} assets, {args.years:g} y "
          f"stored, {len(steps)} sessions; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    try:
        with start_sandbox(n_assets=args.assets, years=args.years, seed=42,
                           end=str(first_end.date()), write_state=False) as sb:
            t0 = time.perf_counter()
            refresh(store, connection=sb.connection())
            base = folder_bytes(Path(store))
            print(f"full build {time.perf_counter() - t0:.1f} s, store "
                  f"{sum(base.values()) / 1e6:.1f} MB")
            hdr = (f"{'session':>11}{'added KB':>10}{'chunks KB':>10}{'manif KB':>9}"
                   f"{'snap+tx KB':>11}{'new raw KB':>11}{'new zstd KB':>12}{'ratio':>7}")
            print(hdr)
            prev = base
            ratios = []
            for day in steps:
                sb.advance(day)
                refresh(store, connection=sb.connection())
                now = folder_bytes(Path(store))
                added = {k: now[k] - prev[k] for k in now}
                raw, comp = day_new_bytes(store, day)
                ratio = sum(added.values()) / comp if comp else float("nan")
                ratios.append(ratio)
                print(f"{str(day.date()):>11}{sum(added.values()) / 1e3:10.1f}"
                      f"{added['chunks'] / 1e3:10.1f}{added['manifests'] / 1e3:9.1f}"
                      f"{(added['snapshots'] + added['transactions']) / 1e3:11.1f}"
                      f"{raw / 1e3:11.1f}{comp / 1e3:12.1f}{ratio:7.1f}")
                prev = now
            print(f"mean ratio {sum(ratios) / len(ratios):.1f}x (floor: <= 10x)")
            res = compact(store)
            after = folder_bytes(Path(store))
            print(f"{res}; store {sum(prev.values()) / 1e6:.1f} -> "
                  f"{sum(after.values()) / 1e6:.1f} MB")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
