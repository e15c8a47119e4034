"""Store growth per daily refresh (issue #12): bytes the store gains per session.

A sandbox (3 markets x ``--assets``, ``--years`` of history) is built in full; then the
vendor's clock moves one session at a time (``Sandbox.advance``) and each session is
brought in by one incremental refresh. After every refresh the store folder's bytes are
counted per Icechunk area (``chunks``, ``manifests``, ``snapshots``, ``transactions``,
the rest), and the day's new data is measured the way the issue defines it: the new
session's rows of every stored 2-D panel variable (all assets of every market) and of
the tables the refresh appended, compressed with zstd (level 3, the store's codec).

The ratio ``bytes added / compressed new data`` is what the floor bounds (<= 10x); it
is given for the curated store (the Icechunk repository) and for the whole store folder
(plus the raw zone's deliveries, the statements export, ...: ``other`` is broken down by
top-level folder). Then ``quantlib data compact`` runs (the date-axis tails merged,
:mod:`quantlib.store.dategrid`) and the store is measured again: the ratio over all the
sessions including the compaction's bytes. One variable (``close`` of the largest
market, every date) is read before the appends, after them and after the compaction
(best of 3) to show the 1-date chunks do not slow reads.

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
    """Bytes under ``root`` by Icechunk area; anything else by its top-level folder
    (``other:<folder>``, ``other:curated`` for the repository's refs and config)."""
    out = dict.fromkeys(AREAS, 0)
    for dirpath, _dirs, files in os.walk(root):
        rel = Path(dirpath).relative_to(root).parts
        area = next((p for p in rel if p in AREAS), f"other:{rel[0] if rel else '.'}")
        out.setdefault(area, 0)
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


def curated_bytes(sizes: dict[str, int]) -> int:
    """Bytes of the Icechunk repository (areas plus its refs/config)."""
    return sum(sizes.get(k, 0) for k in (*AREAS, "other:curated"))


def read_seconds(store: str, market: str) -> float:
    """Best of 3: read ``close`` of ``market``, every date and asset."""
    from quantlib.store.curated import CuratedStore

    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        CuratedStore(store).open_prices(market)["close"].values.sum()
        best = min(best, time.perf_counter() - t0)
    return best


def written_by_path(store: str) -> dict[str, int]:
    """Chunk bytes the last commit wrote, by array (its group and name)."""
    from zarr.core.sync import sync

    from quantlib.store.curated import CuratedStore

    repo = CuratedStore(store).repo
    info = next(iter(repo.ancestry(branch="main")))
    diff = repo.diff(from_snapshot_id=info.parent_id, to_snapshot_id=info.id)
    store_ = repo.readonly_session(snapshot_id=info.id).store
    out: dict[str, int] = {}
    for path, chunks in diff.updated_chunks.items():
        for c in chunks:
            key = f"{path.strip('/')}/c/" + "/".join(map(str, c))
            try:
                size = sync(store_.getsize(key))
            except (FileNotFoundError, KeyError):
                size = 0            # a chunk deleted
            out[path.strip("/")] = out.get(path.strip("/"), 0) + size
    return out


def _delta(now: dict[str, int], prev: dict[str, int]) -> dict[str, int]:
    return {k: now.get(k, 0) - prev.get(k, 0) for k in set(now) | set(prev)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--years", type=float, default=2)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--detail", action="store_true",
                        help="list the chunk bytes each refresh wrote, by array")
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
                  f"{sum(base.values()) / 1e6:.1f} MB (curated {curated_bytes(base) / 1e6:.1f})")
            from quantlib.store.curated import CuratedStore
            market = max(CuratedStore(store).markets(),
                         key=lambda m: CuratedStore(store).open_prices(m).sizes["asset"])
            reads = {"after build": read_seconds(store, market)}
            hdr = (f"{'session':>11}{'added KB':>10}{'chunks KB':>10}{'manif KB':>9}"
                   f"{'snap+tx KB':>11}{'other KB':>9}{'new raw KB':>11}{'new zstd KB':>12}"
                   f"{'curated x':>10}{'all x':>7}")
            print(hdr)
            prev = base
            comps, curated_added, others = [], [], {}
            for day in steps:
                sb.advance(day)
                refresh(store, connection=sb.connection())
                now = folder_bytes(Path(store))
                added = _delta(now, prev)
                raw, comp = day_new_bytes(store, day)
                comps.append(comp)
                cur = curated_bytes(added)
                curated_added.append(cur)
                other = {k: v for k, v in added.items() if k.startswith("other:")}
                for k, v in other.items():
                    others[k] = others.get(k, 0) + v
                print(f"{str(day.date()):>11}{sum(added.values()) / 1e3:10.1f}"
                      f"{added['chunks'] / 1e3:10.1f}{added['manifests'] / 1e3:9.1f}"
                      f"{(added['snapshots'] + added['transactions']) / 1e3:11.1f}"
                      f"{sum(other.values()) / 1e3:9.1f}"
                      f"{raw / 1e3:11.1f}{comp / 1e3:12.1f}{cur / comp:10.1f}"
                      f"{sum(added.values()) / comp:7.1f}")
                prev = now
                if args.detail:
                    by = sorted(written_by_path(store).items(), key=lambda kv: -kv[1])
                    print("      wrote: " + ", ".join(f"{p} {b / 1e3:.1f}" for p, b in by[:12]))
            total_new = sum(comps)
            print(f"curated store: {sum(curated_added) / 1e3:.1f} KB added for "
                  f"{total_new / 1e3:.1f} KB of new data (zstd): "
                  f"{sum(curated_added) / total_new:.1f}x (floor: <= 10x)")
            print("outside the repository, over all sessions: " + ", ".join(
                f"{k.split(':', 1)[1]} {v / 1e3:.1f} KB" for k, v in sorted(others.items())))
            reads["after appends"] = read_seconds(store, market)
            res = compact(store)
            after = folder_bytes(Path(store))
            comp_added = curated_bytes(after) - curated_bytes(prev)
            reads["after compaction"] = read_seconds(store, market)
            print(f"{res}; curated {curated_bytes(prev) / 1e6:.2f} -> "
                  f"{curated_bytes(after) / 1e6:.2f} MB (+{comp_added / 1e3:.1f} KB)")
            print(f"with the compaction: {(sum(curated_added) + comp_added) / 1e3:.1f} KB for "
                  f"{total_new / 1e3:.1f} KB: "
                  f"{(sum(curated_added) + comp_added) / total_new:.1f}x (floor: <= 10x)")
            print(f"read close of {market} (best of 3): " + ", ".join(
                f"{k} {v * 1e3:.0f} ms" for k, v in reads.items()))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
