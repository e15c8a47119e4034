"""A/B of the start-up probe (bench/startup_probe.py) between configurations, interleaved
(one start of each in turn, ``--rounds`` times, after one warming start each), so a
loaded box's drift hits every configuration alike. Reports per phase the median and
minimum of CPU (user + sys) and wall seconds, and the median major page faults.

Configurations: ``elf`` (default: artifacts linked by quantlib's ELF loader), ``mcjit``
(``QUANTLIB_NATIVE_ELF=0``: linked by llvmlite's MCJIT, the previous default),
``numba`` (``QUANTLIB_NATIVE_CACHE=0``). Python's bytecode cache on (a private
``PYTHONPYCACHEPREFIX``), as bench_backtest.py's start-up rows have it.

Usage: ``uv run python bench/bench_startup_ab.py [--rounds 7] [--configs elf,mcjit]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = {"elf": {}, "mcjit": {"QUANTLIB_NATIVE_ELF": "0"},
           "numba": {"QUANTLIB_NATIVE_CACHE": "0"}}
PHASES = ("numpy, pandas, xarray", "quantlib.backtest", "first run()", "first result",
          "second run()")


def probe(d: Path, env: dict[str, str]) -> dict:
    full = {k: v for k, v in {**os.environ, **env}.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run([sys.executable, str(HERE / "startup_probe.py"), str(d)],
                         capture_output=True, text=True, timeout=600, env=full, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["phases"]["first result"] = {"cpu_s": res["first_result_cpu_s"],
                                     "wall_s": res["first_result_s"], "major_faults": sum(
        res["phases"][k]["major_faults"] for k in PHASES[:3])}
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--configs", default="elf,mcjit")
    ap.add_argument("--data", default=None, help="a folder with the W2 1,000-asset arrays")
    args = ap.parse_args()
    names = args.configs.split(",")
    work = Path(tempfile.mkdtemp(prefix="startup-ab-"))
    d = Path(args.data) if args.data else work
    if not args.data:
        sys.path.insert(0, str(HERE))
        from bench_backtest import make_w2

        make_w2(d, 1000)
    base = {"PYTHONPYCACHEPREFIX": str(work / "pyc")}
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for n in names:
        probe(d, {**base, **CONFIGS[n]})  # warms the bytecode cache and the artifacts
    for _ in range(args.rounds):
        for n in names:
            runs[n].append(probe(d, {**base, **CONFIGS[n]}))
    print(f"load average {os.getloadavg()}; {args.rounds} interleaved starts per config")
    print("| phase | " + " | ".join(f"{n} CPU med / min | {n} wall med | {n} majflt"
                                    for n in names) + " |")
    print("| --- |" + " ---: | ---: | ---: |" * len(names))
    for ph in PHASES:
        cells = []
        for n in names:
            cpu = [r["phases"][ph]["cpu_s"] for r in runs[n]]
            wall = [r["phases"][ph]["wall_s"] for r in runs[n]]
            flt = [r["phases"][ph]["major_faults"] for r in runs[n]]
            cells += [f"{statistics.median(cpu):.3f} / {min(cpu):.3f}",
                      f"{statistics.median(wall):.3f}", f"{statistics.median(flt):.0f}"]
        print(f"| {ph} | " + " | ".join(cells) + " |")
    for n in names:
        r = runs[n][-1]
        print(n, "native:", r["native"], "numba imported:", r["numba_imported"],
              "llvmlite imported:", r["llvmlite_imported"],
              "modules:", r["modules_at_first_result"])


if __name__ == "__main__":
    main()
