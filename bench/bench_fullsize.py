"""Issue #12 at full size, in one run: the store grown to 5, 10 and 20 years, the daily
refresh at each length, one full build of the same vendor data, and their checksums.

Run (quiet box; ~1-1.5 h at full width with today's build speed, see bench/RESULTS.md)::

    uv run python -u bench/bench_fullsize.py --years 5,10,20 [--width-scale 1] [--work DIR]

One streamed (out-of-core) sandbox of KR 5,000 / US 14,000 / EU 6,000 assets (times
``--width-scale``) whose history starts ``max(--years)`` years before the session before
2025-12-31 and whose vendor clock first stands ``--years[0]`` years after that start.
Then, for each length Y in ``--years`` (every pipeline run in a fresh process: its own
peak RSS, ``VmHWM``):

1. the store is brought to Y years: the first length by the initial full build, the
   others by advancing the vendor clock Y - Y_prev years and one refresh (a large
   catch-up: the partitioned path), then a compaction (``quantlib data compact``, what
   the weekly schedule runs: the catch-up's appended dates folded into full blocks);
2. the clock moves one session on and ONE daily incremental refresh brings it in, stage
   by stage (``bench_refresh_width.one_day``); the store folder's bytes before and after
   it give the bytes added by that day, against the zstd size of the day's new panel rows
   (``bench_store_growth.day_new_bytes``: the floor is <= 10x).

At the end the store holds the vendor's whole history (grown by catch-ups and daily
increments, with the vendor's corrections and late actions in between). A fresh store
gets ONE full build of the same vendor state (the initial-build floor: <= 20 min and
<= 6 GB at 25,000 x 20 y; rows/s), and the two stores are compared by checksums: every
variable of every market's price panel (read block by block in the sorted asset view),
the FX panel, and every long table (an order-free sum of per-row hashes). Equal
checksums are the full-size form of the "N daily increments equal one full build" test.
With ``--read`` the read floors run on the full build's store (bench/bench_scale_read.py
steps: catalog open, one variable read MB/s, 12-1 momentum peak RSS).

Prints each step as it ends and a summary table against the floors at the end; the work
folder is removed unless ``--keep`` (then reuse it with bench_scale_read.py --store).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_refresh_width import WIDTH, _print_day, one_day
from bench_store_growth import _delta, curated_bytes, day_new_bytes, folder_bytes

_RUN = r"""
import json, sys, time, types
from quantlib.pipeline import refresh
t0, c0 = time.perf_counter(), time.process_time()
r = refresh(sys.argv[1], connection=types.SimpleNamespace(**json.loads(sys.argv[2])),
            **json.loads(sys.argv[3]))
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"mode": r.mode, "wall": wall, "cpu": cpu, "rows": r.rows,
                  "seconds": r.seconds, "rss_mb": int(hwm[0].split()[1]) / 1024,
                  "snapshot": r.snapshot_id}))
"""


def run_refresh(store: str, connection: object, **kwargs: Any) -> dict:
    """One refresh of ``store`` in a fresh process: wall, rows, mode, peak RSS (VmHWM)."""
    conn = json.dumps(dataclasses.asdict(connection))  # type: ignore[call-overload]
    out = subprocess.run([sys.executable, "-c", _RUN, store, conn, json.dumps(kwargs)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"the refresh of {store} failed (exit {out.returncode})")
    res: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return res


_COMPACT = r"""
import json, sys, time
from quantlib.store.compact import compact
t0 = time.perf_counter()
r = compact(sys.argv[1])
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"wall": time.perf_counter() - t0, "snapshot": r.snapshot_id,
                  "rewritten": len(r.rewritten), "rss_mb": int(hwm[0].split()[1]) / 1024}))
"""


def run_compact(store: str) -> dict:
    """``quantlib data compact`` of ``store`` in a fresh process (wall, arrays rewritten)."""
    out = subprocess.run([sys.executable, "-c", _COMPACT, store], capture_output=True,
                         text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"the compaction of {store} failed (exit {out.returncode})")
    res: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def _sessions_after(day: Any, n: int = 1) -> Any:
    """The ``n``-th global session (any of KR/US/EU) after ``day``."""
    import pandas as pd

    from quantlib import calendars

    days = calendars.global_sessions(("KR", "US", "EU"), pd.Timestamp(day) + pd.Timedelta(days=1),
                                     pd.Timestamp(day) + pd.Timedelta(days=10 + 3 * n))
    return days[n - 1]


def _hash_rows(frame: Any) -> str:
    """An order-free checksum of a frame: row count and the sum of its rows' hashes."""
    import pandas as pd

    if frame.empty:
        return "0 rows"
    h = pd.util.hash_pandas_object(frame[sorted(frame.columns)], index=False)
    return f"{len(frame)} rows, {int(h.to_numpy().sum(dtype='uint64')):016x}"


def checksums(store: str, block: int = 512) -> dict[str, str]:
    """Checksums of every panel variable (sorted asset view, ``block`` assets at a time),
    the FX panel and every long table of the store's latest version."""
    import numpy as np

    from quantlib.store import CuratedStore

    cs = CuratedStore(store)
    out: dict[str, str] = {}
    for market in cs.markets():
        ds = cs.open_prices(market)
        coords = hashlib.blake2b(np.asarray(ds["date"].values).tobytes())
        coords.update("\0".join(map(str, ds["asset"].values)).encode())
        out[f"prices/{market} coords"] = f"{dict(ds.sizes)} {coords.hexdigest()[:16]}"
        for name, var in ds.data_vars.items():
            h = hashlib.blake2b()
            for a in range(0, ds.sizes["asset"], block):
                h.update(np.ascontiguousarray(var.isel(asset=slice(a, a + block)).values)
                         .tobytes())
            out[f"prices/{market}/{name}"] = h.hexdigest()[:16]
    fx = cs.open_fx().load()
    out["fx"] = hashlib.blake2b(np.ascontiguousarray(fx["rate"].values).tobytes()
                                + np.asarray(fx["date"].values).tobytes()).hexdigest()[:16]
    for name in ("assets", "symbols", "corporate_actions", "statements"):
        out[name] = _hash_rows(cs.read_table(name))
    return out


def _growth(store: str, before: dict[str, int], day: Any) -> dict[str, Any]:
    after = folder_bytes(Path(store))
    raw, comp = day_new_bytes(store, day)
    added = curated_bytes(after) - curated_bytes(before)
    total = sum(after.values()) - sum(before.values())
    by_area = {k: v for k, v in _delta(after, before).items() if v}
    return {"curated_added": added, "folder_added": total, "new_raw": raw, "new_zstd": comp,
            "ratio": added / comp if comp else float("nan"), "by_area": by_area}


def grow(work: Path, years: list[float], scale: float, partition_rows: int | None,
         full_build: bool = True) -> dict:
    """Steps 1-2 of the module doc for every length, then the full build and checksums."""
    import pandas as pd

    from quantlib import calendars
    from quantlib.sandbox import start_sandbox

    sizes = {m: max(5, round(n * scale)) for m, n in WIDTH.items()}
    last = pd.Timestamp("2025-12-31")
    final = calendars.global_sessions(("KR", "US", "EU"), last - pd.Timedelta(days=10),
                                      last - pd.Timedelta(days=1))[-1]
    start = final - pd.DateOffset(days=round(365.25 * max(years)))
    ends = [start + pd.DateOffset(days=round(365.25 * y)) for y in years]
    ends = [calendars.global_sessions(("KR", "US", "EU"), e - pd.Timedelta(days=10), e)[-1]
            for e in ends]
    store = str(work / "grown")
    extra = {"partition_rows": partition_rows} if partition_rows else {}
    res: dict[str, Any] = {"sizes": sizes, "start": str(start.date()), "lengths": []}
    print(f"width {sizes}, history from {start.date()}, lengths {years} y; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    t0 = time.perf_counter()
    with start_sandbox(n_assets=sizes, years=years[0], seed=42, start=str(start.date()),
                       end=str(ends[0].date()), write_state=False, streamed=True,
                       root=work / "ftp", api_root=work / "api") as sb:
        print(f"sandbox to {ends[0].date()}: {time.perf_counter() - t0:.0f} s", flush=True)
        clock = ends[0]
        for i, (y, end) in enumerate(zip(years, ends, strict=True)):
            step: dict[str, Any] = {"years": y}
            if i:
                t1 = time.perf_counter()
                sb.advance(end)
                step["advance_s"] = time.perf_counter() - t1
            step["bring"] = run_refresh(store, sb.connection(), **extra)
            b = step["bring"]
            adv = f"advance {step['advance_s']:.0f} s, " if i else ""
            print(f"{y:g} y: {adv}"
                  f"{b['mode']} {b['wall']:.0f} s, {b['rows'].get('commit', 0):,} rows "
                  f"({b['rows'].get('commit', 0) / max(b['wall'], 1e-9):,.0f} rows/s), "
                  f"peak RSS {b['rss_mb']:.0f} MB", flush=True)
            if i:   # what the weekly schedule does after appends (catalogs/schedules.yaml)
                step["compact"] = c = run_compact(store)
                print(f"  compaction: {c['wall']:.0f} s, {c['rewritten']} arrays rewritten",
                      flush=True)
            clock = _sessions_after(end)
            sb.advance(clock)
            before = folder_bytes(Path(store))
            step["day"] = one_day(store, sb.connection())
            step["growth"] = _growth(store, before, clock)
            print(f"{y:g} y stored, daily refresh of {clock.date()}:", flush=True)
            _print_day(step["day"])
            g = step["growth"]
            print(f"  store growth: curated +{g['curated_added']:,} B, folder "
                  f"+{g['folder_added']:,} B; the day's panel rows {g['new_raw']:,} B raw, "
                  f"{g['new_zstd']:,} B zstd: {g['ratio']:.1f}x (floor <= 10x); by area "
                  f"{g['by_area']}", flush=True)
            res["lengths"].append(step)
        if not full_build:
            res["full"], res["checksums"], res["different"] = None, {}, []
            return res
        full = str(work / "full")
        res["full"] = run_refresh(full, sb.connection(), **extra)
        f = res["full"]
        print(f"full build of the same vendor state ({clock.date()}): {f['wall']:.0f} s, "
              f"{f['rows'].get('commit', 0):,} rows "
              f"({f['rows'].get('commit', 0) / max(f['wall'], 1e-9):,.0f} rows/s), peak RSS "
              f"{f['rss_mb']:.0f} MB", flush=True)
    t2 = time.perf_counter()
    a, b2 = checksums(store), checksums(full)
    res["checksums"] = {k: (a.get(k), b2.get(k)) for k in sorted(set(a) | set(b2))}
    res["checksum_s"] = time.perf_counter() - t2
    res["different"] = [k for k, (x, y) in res["checksums"].items() if x != y]
    print(f"checksums ({res['checksum_s']:.0f} s): {len(a)} parts, "
          f"{len(res['different'])} different: {res['different']}", flush=True)
    return res


def summary(res: dict) -> None:
    """The floors table (markdown)."""
    print("\n| measure | result | floor |\n| --- | --- | --- |")
    walls = []
    for st in res["lengths"]:
        d, g = st["day"], st["growth"]
        walls.append(d["wall"])
        print(f"| daily refresh, {st['years']:g} y stored | {d['wall']:.1f} s (+{d['import']:.1f}"
              f" s imports), peak RSS {d['rss_mb']:.0f} MB, {d['rows'].get('fetch', 0):,} rows "
              f"fetched | <= 30 s, <= 1.5 GB |")
        print(f"| store growth, that day | +{g['curated_added']:,} B curated, "
              f"{g['new_zstd']:,} B new data zstd: {g['ratio']:.1f}x | <= 10x |")
        if "advance_s" in st:
            b = st["bring"]
            c = st.get("compact", {})
            print(f"| catch-up to {st['years']:g} y ({b['mode']}), then compaction | "
                  f"{b['wall']:.0f} s, {b['rows'].get('commit', 0):,} rows, peak RSS "
                  f"{b['rss_mb']:.0f} MB; compaction {c.get('wall', 0):.0f} s | |")
    if walls:
        spread = max(walls) / min(walls) - 1
        print(f"| daily refresh flat in history | spread {100 * spread:.0f} % "
              f"(max/min - 1) | <= 20 % |")
    f = res["full"]
    if f is None:   # --no-full-build: the first length's build is the full build
        return
    rows = f["rows"].get("commit", 0)
    print(f"| initial full build, {max(s['years'] for s in res['lengths']):g} y | "
          f"{f['wall'] / 60:.1f} min, {rows:,} rows, {rows / f['wall']:,.0f} rows/s, peak RSS "
          f"{f['rss_mb'] / 1024:.2f} GB | <= 20 min, <= 6 GB |")
    print(f"| grown store == full build (checksums) | {len(res['checksums'])} parts, "
          f"{len(res['different'])} different | 0 |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", default="5,10,20",
                        help="comma-separated stored lengths, increasing")
    parser.add_argument("--width-scale", type=float, default=1.0,
                        help="fraction of the full width (smoke runs)")
    parser.add_argument("--partition-rows", type=int, default=None,
                        help="bars per partition of the build and catch-ups (default: "
                        "the pipeline's)")
    parser.add_argument("--work", default=None, help="work folder (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--read", action="store_true",
                        help="then the read floors on the full build's store")
    parser.add_argument("--json", default=None, help="write the whole record here")
    parser.add_argument("--no-full-build", action="store_true",
                        help="skip the final full build and checksums (the first length's "
                        "build is then the only full build)")
    args = parser.parse_args(argv)
    years = [float(y) for y in args.years.split(",")]
    if years != sorted(years) or len(set(years)) != len(years):
        parser.error("--years must be increasing")
    os.environ.setdefault("QUANTLIB_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-fullsize-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        res = grow(work, years, args.width_scale, args.partition_rows,
                   full_build=not args.no_full_build)
        summary(res)
        if args.read:
            from bench_scale_read import _rows, _run_step

            target = work / ("full" if res["full"] is not None else "grown")
            read = {s: _run_step(s, str(target)) for s in ("open", "read", "momentum")}
            res["read"] = read
            for row in _rows(read):
                print("| " + " | ".join(row) + " |")
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{time.perf_counter() - t0:.0f} s in all; load average {os.getloadavg()[0]:.1f}")
    return 0 if not res["different"] else 1


if __name__ == "__main__":
    sys.exit(main())
