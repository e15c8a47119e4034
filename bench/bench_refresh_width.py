"""The daily incremental refresh at the issue #12 width, stage by stage (seconds, RSS).

Used by ``uv run python bench/bench_refresh.py --full-width 0.25,0.5,1`` (see its module
doc). Per history length: a streamed (out-of-core) sandbox of KR 5,000 / US 14,000 /
EU 6,000 assets (times ``--width-scale``) with that many years to the session before
2025-12-31, a full build (the partitioned path where it is large), the vendor clock
advanced one session, then one incremental refresh in a fresh process. That process
wraps the refresh's stage functions (:data:`STAGES`) to record each call's wall time
and market (and the CPU time of the calling thread: ``cpu s``, which leaves out helper
threads such as zarr's I/O loop; ``proc s``: the whole process's CPU over the same
span, helper threads included, but also other markets' threads running then), and
samples its own ``VmRSS`` every 20 ms, so each stage reports its summed seconds and the
process's peak RSS while it ran (markets run in parallel threads: a stage's peak is the
process's, not the stage's own share). With
``QUANTLIB_BENCH_STACKS=1`` the sampler also records where each market thread is (its
innermost quantlib function and the leaf function) every 20 ms: what threads that take
equally long wait on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the issue #12 universe, assets per market
WIDTH = {"KR": 5_000, "US": 14_000, "EU": 6_000}

#: (module, attribute, stage name) the refresh process times; a method is "Class.name"
STAGES = [
    ("quantlib.pipeline.refresh", "_known_assets", "known assets (assets table)"),
    ("quantlib.pipeline.refresh", "fetch_windows", "fetch windows"),
    ("quantlib.sources", "fetch_market", "fetch"),
    ("quantlib.sources", "fetch_fx", "fetch"),
    ("quantlib.raw", "RawZone.unpublished", "unpublished (manifest index)"),
    ("quantlib.standardize", "standardize", "standardize"),
    ("quantlib.pipeline.tasks", "_continuity", "continuity (stored tail, actions)"),
    ("quantlib.validate", "validate", "validate"),
    ("quantlib.pipeline.tasks", "drop_unchanged", "drop unchanged"),
    ("quantlib.pipeline.refresh", "merge_outcomes", "merge outcomes"),
    ("quantlib.pipeline.refresh", "publish_delta", "publish delta (all)"),
    ("quantlib.store", "CuratedStore.read_table", "  read table"),
    ("quantlib.store", "CuratedStore.commit_rebased", "  commit_rebased"),
    ("quantlib.store", "CuratedStore.snapshots", "  snapshots listing"),
    ("quantlib.raw", "RawZone.record", "  manifest record"),
    ("quantlib.pipeline.refresh", "write_report", "report"),
]

_CHILD = r'''
import cProfile, importlib, io, json, os, pstats, sys, threading, time, types
t_imp = time.perf_counter()
from quantlib.pipeline import refresh
import quantlib.pipeline.tasks as tasks
t_imp = time.perf_counter() - t_imp
stages, profile = json.loads(sys.argv[3]), sys.argv[4] == "1"
spans, samples, stop, local = [], [], threading.Event(), threading.local()
stacks, market_of = {}, {}   # (market, quantlib function, leaf) -> samples; thread -> market
want_stacks = os.environ.get("QUANTLIB_BENCH_STACKS") == "1"

def where(frame):
    """(innermost quantlib function, leaf function) of a thread's current stack."""
    leaf, mine = f"{frame.f_code.co_name} ({os.path.basename(frame.f_code.co_filename)})", "-"
    while frame is not None:
        if "/quantlib/" in frame.f_code.co_filename:
            mine = f"{frame.f_code.co_name} ({os.path.basename(frame.f_code.co_filename)})"
            break
        frame = frame.f_back
    return mine, leaf

def sampler():
    page = os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    with open("/proc/self/statm") as f:
        while not stop.is_set():
            f.seek(0)
            samples.append((time.perf_counter(), int(f.read().split()[1]) * page))
            if want_stacks:
                for tid, frame in sys._current_frames().items():
                    if tid in market_of:
                        key = (market_of[tid], *where(frame))
                        stacks[key] = stacks.get(key, 0) + 1
            stop.wait(0.02)

def timed(fn, stage):
    def inner(*a, **k):
        t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            spans.append((stage, getattr(local, "market", "-"), t0, time.perf_counter(),
                          time.thread_time() - c0, time.process_time() - p0))
    return inner

for mod_name, attr, stage in stages:
    mod = importlib.import_module(mod_name)
    owner, name = (getattr(mod, attr.split(".")[0]), attr.split(".")[1]) if "." in attr \
        else (mod, attr)
    setattr(owner, name, timed(getattr(owner, name), stage))
run_market = tasks.run_market
def by_market(market, *a, **k):
    local.market = market
    market_of[threading.get_ident()] = market
    try:
        return run_market(market, *a, **k)
    finally:
        market_of.pop(threading.get_ident(), None)
tasks.run_market = by_market

threading.Thread(target=sampler, daemon=True).start()
prof = cProfile.Profile() if profile else None
t0, c_all = time.perf_counter(), time.process_time()
if prof:
    prof.enable()
r = refresh(sys.argv[1], connection=types.SimpleNamespace(**json.loads(sys.argv[2])),
            scheduler="sync" if profile else "threads")
if prof:
    prof.disable()
wall, cpu = time.perf_counter() - t0, time.process_time() - c_all
stop.set()
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
out = {"mode": r.mode, "wall": wall, "cpu": cpu, "import": t_imp, "rows": r.rows,
       "seconds": r.seconds, "rss_mb": int(hwm[0].split()[1]) / 1024, "stages": {},
       "note": r.note}
try:   # the validation report's rows per check (info rows included)
    with open(r.report_paths["json"]) as f:
        out["by_check"] = json.load(f)["by_check"]
except (KeyError, OSError) as exc:
    print("no validation report:", repr(exc), file=sys.stderr)
for stage, market, a, b, cpu, pcpu in spans:
    peak = max((m for t, m in samples if a <= t <= b), default=0.0)
    st = out["stages"].setdefault(stage, {"s": 0.0, "cpu": 0.0, "pcpu": 0.0, "calls": 0,
                                          "peak_mb": 0.0, "markets": {}})
    st["s"] += b - a
    st["cpu"] += cpu
    st["pcpu"] += pcpu
    st["calls"] += 1
    st["peak_mb"] = max(st["peak_mb"], peak)
    st["markets"][market] = round(st["markets"].get(market, 0.0) + b - a, 2)
if stacks:   # where the market threads were, every 20 ms (QUANTLIB_BENCH_STACKS=1)
    top = sorted(stacks.items(), key=lambda kv: -kv[1])[:20]
    out["stacks"] = [[m, mine, leaf, n] for (m, mine, leaf), n in top]
if prof:
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(45)
    out["profile"] = buf.getvalue()
if r.snapshot_id:   # what the commit wrote, per table (its metadata)
    from quantlib.store import CuratedStore
    meta = CuratedStore(sys.argv[1]).repo.lookup_snapshot(r.snapshot_id).metadata or {}
    out["commit_rows"] = meta.get("rows")
print(json.dumps(out))
'''


def _sizes(scale: float) -> dict[str, int]:
    return {m: max(5, round(n * scale)) for m, n in WIDTH.items()}


def one_day(store: str, connection: object, *, profile: bool = False) -> dict:
    """Run one incremental refresh of ``store`` in a fresh process; its stage record."""
    conn = json.dumps(dataclasses.asdict(connection))  # type: ignore[call-overload]
    stages = json.dumps([list(s) for s in STAGES])
    out = subprocess.run([sys.executable, "-c", _CHILD, store, conn, stages,
                          "1" if profile else "0"], capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"the refresh process failed (exit {out.returncode})")
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _print_day(r: dict) -> None:
    rows = r["rows"]
    print(f"  incremental: wall {r['wall']:.1f} s (+ import {r['import']:.1f} s), CPU "
          f"{r.get('cpu', 0.0):.1f} s (all threads), peak RSS "
          f"{r['rss_mb']:.0f} MB; rows fetched {rows.get('fetch', 0):,} / standardized "
          f"{rows.get('standardize', 0):,} / kept {rows.get('validate', 0):,} / unchanged "
          f"{rows.get('unchanged', 0):,}; region cells {rows.get('region_cells', 0):,}, "
          f"dates appended {rows.get('appended_dates', 0)}"
          + (f"; note: {r['note']}" if r.get("note") else ""))
    print(f"  {'stage':<36}{'sum s':>8}{'cpu s':>8}{'proc s':>8}{'calls':>7}{'peak MB':>9}"
          "  per market s")
    for stage, st in r["stages"].items():
        print(f"  {stage:<36}{st['s']:8.2f}{st.get('cpu', 0.0):8.2f}{st.get('pcpu', 0.0):8.2f}"
              f"{st['calls']:7}{st['peak_mb']:9.0f}  {st['markets']}")
    if r.get("commit_rows"):
        print(f"  the commit wrote (rows per table): {r['commit_rows']}")
    for m, mine, leaf, n in r.get("stacks", []):
        print(f"  samples {n:5} {m:3} {mine:<44} <- {leaf}")
    if "by_check" in r:
        print(f"  validation report rows per check: {r['by_check']}")
    if r.get("profile"):
        print(r["profile"])


def full_width_bench(years_list: list[float], scale: float = 1.0, *,
                     profile: bool = False) -> int:
    """Daily refresh at full width with each of ``years_list`` stored (module doc)."""
    import pandas as pd

    from quantlib import calendars
    from quantlib.pipeline import refresh
    from quantlib.sandbox import start_sandbox

    sizes = _sizes(scale)
    last = pd.Timestamp("2025-12-31")
    before = calendars.global_sessions(("KR", "US", "EU"), last - pd.Timedelta(days=10),
                                       last - pd.Timedelta(days=1))[-1]
    print(f"daily refresh at width {sizes} (scale {scale:g}); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for years in years_list:
        work = Path(tempfile.mkdtemp(prefix=f"bench-width-{years:g}y-"))
        store = str(work / "store")
        t0 = time.perf_counter()
        with start_sandbox(n_assets=sizes, years=years, seed=42, end=str(before.date()),
                           write_state=False, streamed=True, root=work / "ftp",
                           api_root=work / "api") as sb:
            t_gen = time.perf_counter() - t0
            full = refresh(store, connection=sb.connection())
            t1 = time.perf_counter()
            sb.advance(last)    # the vendor's clock moves one session on
            t_adv = time.perf_counter() - t1
            r = one_day(store, sb.connection(), profile=profile)
        print(f"{years:g} y stored: sandbox {t_gen:.0f} s, full build {full.seconds['total']:.0f}"
              f" s ({full.rows.get('commit', 0):,} rows), advance {t_adv:.0f} s; load "
              f"average {os.getloadavg()[0]:.1f}", flush=True)
        _print_day(r)
        shutil.rmtree(work, ignore_errors=True)
    return 0
