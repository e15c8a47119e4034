"""One more daily refresh of a store kept by ``bench_fullsize.py --keep``, profiled.

The kept work folder holds the store (``grown``) and the streamed vendor's folders
(``ftp``, ``api``). This restarts the vendor sandbox over them at the clock the bench
left (``--clock``, the last refreshed session), moves it one session on and runs ONE
incremental refresh in a fresh process with cProfile around the delta commit
(``CuratedStore.commit_rebased``, or ``--what refresh`` for the whole refresh); prints the
refresh's rows and stage seconds and the profile's top functions (cumulative, own time).

    uv run python bench/profile_day.py WORK --years 10 --start 2015-12-31 --clock 2025-12-31

Widths are the full ones (KR 5,000 / US 14,000 / EU 6,000) times ``--width-scale``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

from bench_fullsize import _sessions_after
from bench_refresh_width import WIDTH

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
from quantlib.pipeline import refresh
t0, c0 = time.perf_counter(), time.process_time()
if sys.argv[3] != "commit":
    prof.enable()
r = refresh(sys.argv[1], connection=types.SimpleNamespace(**json.loads(sys.argv[2])))
prof.disable()
print(f"wall {time.perf_counter() - t0:.1f} s, CPU {time.process_time() - c0:.1f} s")
print("rows", r.rows)
print("seconds", {k: round(v, 2) for k, v in r.seconds.items()})
for key in ("cumulative", "tottime"):
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats(key).print_stats(int(sys.argv[4]))
    print(s.getvalue())
'''


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", help="the work folder bench_fullsize.py --keep left")
    ap.add_argument("--years", type=float, required=True, help="the sandbox's history length")
    ap.add_argument("--start", required=True, help="the history's first date (the bench prints it)")
    ap.add_argument("--clock", required=True, help="the last session the store holds")
    ap.add_argument("--width-scale", type=float, default=1.0)
    ap.add_argument("--what", choices=("commit", "refresh"), default="commit")
    ap.add_argument("--top", type=int, default=60)
    args = ap.parse_args(argv)
    import pandas as pd

    from quantlib.sandbox import start_sandbox

    sizes = {m: max(5, round(n * args.width_scale)) for m, n in WIDTH.items()}
    w = args.work
    with start_sandbox(n_assets=sizes, years=args.years, seed=42, start=args.start,
                       end=args.clock, write_state=False, streamed=True, root=f"{w}/ftp",
                       api_root=f"{w}/api") as sb:
        day = _sessions_after(pd.Timestamp(args.clock))
        sb.advance(day)
        print(f"daily refresh of {day.date()}", flush=True)
        conn = json.dumps(dataclasses.asdict(sb.connection()))
        out = subprocess.run([sys.executable, "-c", _CHILD, f"{w}/grown", conn, args.what,
                              str(args.top)], capture_output=True, text=True)
    print(out.stdout)
    if out.returncode:
        print(out.stderr[-4000:], file=sys.stderr)
    return out.returncode


if __name__ == "__main__":
    sys.exit(main())
