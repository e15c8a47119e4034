"""One more daily refresh of a store kept by ``bench_fullsize.py --keep``, profiled.

The kept work folder holds the store (``grown``) and the streamed vendor's folders
(``ftp``, ``api``). This restarts the vendor sandbox over them at the clock the bench
left (``--clock``, the last refreshed session), moves it one session on and runs ONE
incremental refresh in a fresh process with cProfile around the delta commit
(``CuratedStore.commit_rebased``, or ``--what refresh`` for the whole refresh); prints the
refresh's rows and stage seconds and the profile's top functions (cumulative, own time).
``--what timers`` instead times the functions of :data:`TIMED` in every thread (cProfile
sees only the main thread, and the fetches run on pools): calls and seconds per function
(per source or endpoint where it has one).

    uv run python bench/profile_day.py WORK --years 10 --start 2015-12-31 --clock 2025-12-31

Widths are the full ones (KR 5,000 / US 14,000 / EU 6,000) times ``--width-scale``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from bench_fullsize import _sessions_after, run_compact
from bench_refresh_width import WIDTH, _print_day, one_day

#: what ``--what timers`` times: ``module:Owner.method`` and how to label a call
#: (``"self.name"``: the instance's source name; an int: that positional argument)
TIMED = [
    ("quantlib.sources.ftp:FtpSource.fetch", "self.name"),
    ("quantlib.sources.ftp:FtpSource.list_files", "self.name"),
    ("quantlib.sources.ftp:FtpSource._changed_before_window", "self.name"),
    ("quantlib.sources.ftp:FtpClient.facts", 1),
    ("quantlib.sources.ftp:FtpClient.retrieve", None),
    ("quantlib.sources.http:HttpApiSource.fetch", "self.name"),
    ("quantlib.sources.http:HttpApiSource._fetch_endpoint", 3),
    ("quantlib.sources.http:HttpApiSource.get_page", 3),
    ("quantlib.raw.zone:RawZone.record", None),
    ("quantlib.raw.zone:RawZone.put", None),
    ("quantlib.raw.zone:RawZone.known", 1),
    ("quantlib.raw.zone:RawZone.unpublished", None),
    ("quantlib.raw.zone:RawZone.unpublished_files", 1),
    ("quantlib.raw.zone:RawZone.high_water", 2),
    ("quantlib.raw.index:ManifestIndex.read", 1),
    ("quantlib.raw.index:ManifestIndex.save_listing", 1),
    ("quantlib.raw.index:ManifestIndex.save_published", 1),
    ("quantlib.raw.index:ManifestIndex.published", 1),
    ("quantlib.raw.index:ManifestIndex.append", None),
    ("quantlib.standardize.delta:read_changed", None),
    ("quantlib.pipeline.incremental:delta_frames", None),
    ("quantlib.pipeline.incremental:stored_action_dates", None),
    ("quantlib.pipeline.incremental:previous_closes", 1),
    ("quantlib.pipeline.incremental:drop_unchanged", 1),
    ("quantlib.pipeline.incremental:changed_deliveries", None),
    ("quantlib.store.curated:CuratedStore.read_table", 1),
    ("quantlib.store.curated:CuratedStore.commit_rebased", None),
]

_CHILD = r'''
import cProfile, io, json, pstats, sys, time, types
from quantlib.store.curated import CuratedStore
prof = cProfile.Profile()
if sys.argv[3] == "commit":
    orig = CuratedStore.commit_rebased
    def wrapped(self, *a, **k):
        prof.enable()
        try:
            return orig(self, *a, **k)
        finally:
            prof.disable()
    CuratedStore.commit_rebased = wrapped
TIMES = {}
if sys.argv[3] == "timers":
    import functools, importlib, threading
    import quantlib.pipeline.refresh, quantlib.pipeline.tasks, quantlib.pipeline.catchup
    lock = threading.Lock()
    def timed(owner, name, label):
        fn = getattr(owner, name)
        @functools.wraps(fn)
        def run(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                key = label(a, k)
                with lock:
                    n, s = TIMES.get(key, (0, 0.0))
                    TIMES[key] = (n + 1, s + time.perf_counter() - t)
        setattr(owner, name, run)
        if not isinstance(owner, type):   # a function: also where it was imported by name
            for mod in list(sys.modules.values()):
                if getattr(mod, "__name__", "").startswith("quantlib") and \
                        getattr(mod, name, None) is fn:
                    setattr(mod, name, run)
    for path, extra in json.loads(sys.argv[5]):
        mod, _, attr = path.rpartition(":")
        owner_name, _, name = attr.rpartition(".")
        owner = importlib.import_module(mod)
        for part in filter(None, owner_name.split(".")):
            owner = getattr(owner, part)
        def label(a, k, attr=attr, extra=extra):
            tail = ""
            if extra == "self.name" and a:
                tail = str(getattr(a[0], "name", getattr(a[0], "source", "")))
            elif isinstance(extra, int) and len(a) > extra:
                tail = str(a[extra])[:40]
            return f"{attr}[{tail}]" if tail else attr
        timed(owner, name, label)
from quantlib.pipeline import refresh
t0, c0 = time.perf_counter(), time.process_time()
if sys.argv[3] == "refresh":
    prof.enable()
r = refresh(sys.argv[1], connection=types.SimpleNamespace(**json.loads(sys.argv[2])))
prof.disable()
print(f"wall {time.perf_counter() - t0:.1f} s, CPU {time.process_time() - c0:.1f} s")
print("rows", r.rows)
print("seconds", {k: round(v, 2) for k, v in r.seconds.items()})
if TIMES:
    print(f"{'function[source/arg]':60s} {'calls':>6s} {'seconds':>8s}")
    for key, (n, s) in sorted(TIMES.items(), key=lambda kv: -kv[1][1]):
        print(f"{key:60s} {n:6d} {s:8.2f}")
    sys.exit(0)
for key in ("cumulative", "tottime"):
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats(key).print_stats(int(sys.argv[4]))
    print(s.getvalue())
'''


def _stamps(root: str) -> dict[str, tuple[bytes, tuple[int, int], tuple[int, int]]]:
    """Each vendor file's sidecar text and the (atime, mtime) of file and sidecar."""
    out = {}
    for side in Path(root).rglob("*.sha256"):
        data = side.with_suffix("")
        if data.exists():
            a, b = data.stat(), side.stat()
            out[str(data)] = (side.read_bytes(), (a.st_atime_ns, a.st_mtime_ns),
                              (b.st_atime_ns, b.st_mtime_ns))
    return out


def _restore(stamps: dict[str, tuple[bytes, tuple[int, int], tuple[int, int]]]
             ) -> tuple[int, int]:
    """Put back the modify times of the files the restart rewrote with the same bytes (the
    same sidecar): a vendor does not touch unchanged files, and new times make the
    refresh re-check every listed file. Returns (restored, changed)."""
    kept = changed = 0
    for path, (sidecar, fa, sa) in stamps.items():
        side = Path(path + ".sha256")
        if side.exists() and side.read_bytes() == sidecar:
            os.utime(path, ns=fa)
            os.utime(side, ns=sa)
            kept += 1
        else:
            changed += 1
    return kept, changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", help="the work folder bench_fullsize.py --keep left")
    ap.add_argument("--years", type=float, required=True, help="the sandbox's history length")
    ap.add_argument("--start", required=True, help="the history's first date (the bench prints it)")
    ap.add_argument("--clock", required=True, help="the last session the store holds")
    ap.add_argument("--width-scale", type=float, default=1.0)
    ap.add_argument("--what", choices=("commit", "refresh", "timers", "stages"),
                    default="commit", help="stages: the bench's own day record (no profile)")
    ap.add_argument("--compact", action="store_true",
                    help="compact the store first (as the bench does after a catch-up)")
    ap.add_argument("--top", type=int, default=60)
    args = ap.parse_args(argv)
    import pandas as pd

    from quantlib.sandbox import start_sandbox

    sizes = {m: max(5, round(n * args.width_scale)) for m, n in WIDTH.items()}
    w = args.work
    if args.compact:
        c = run_compact(f"{w}/grown")
        print(f"compaction: {c['wall']:.0f} s, {c['rewritten']} arrays rewritten", flush=True)
    stamps = _stamps(f"{w}/ftp")
    with start_sandbox(n_assets=sizes, years=args.years, seed=42, start=args.start,
                       end=args.clock, write_state=False, streamed=True, root=f"{w}/ftp",
                       api_root=f"{w}/api") as sb:
        kept, changed = _restore(stamps)
        print(f"sandbox restarted: {kept} files unchanged (modify times restored), "
              f"{changed} changed", flush=True)
        if changed > len(stamps) // 10:
            print("more than 10 % of the vendor files changed: --years/--start must be the "
                  "ones the sandbox was created with", file=sys.stderr)
            return 2
        day = _sessions_after(pd.Timestamp(args.clock))
        sb.advance(day)
        print(f"daily refresh of {day.date()}", flush=True)
        if args.what == "stages":
            _print_day(one_day(f"{w}/grown", sb.connection()))
            return 0
        conn = json.dumps(dataclasses.asdict(sb.connection()))
        out = subprocess.run([sys.executable, "-c", _CHILD, f"{w}/grown", conn, args.what,
                              str(args.top), json.dumps(TIMED)], capture_output=True, text=True)
    print(out.stdout)
    if out.returncode:
        print(out.stderr[-4000:], file=sys.stderr)
    return out.returncode


if __name__ == "__main__":
    sys.exit(main())
