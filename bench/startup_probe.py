"""One fresh-process start-up, as a user's script has it: ``import quantlib;
quantlib.backtest.run(...)`` on the W2 panel (1,000 assets x 2,520 days) of
bench_backtest.py, timed from the interpreter's start. Imports nothing before its first
mark (stdlib only), so every third-party import is inside the measurement.

Phases (wall and CPU = user + sys, how many modules each adds, and its major page faults
and blocks read: file pages not in memory, waited for off the CPU): the data's libraries
(numpy, pandas, xarray, which a user holding a Dataset has imported anyway),
quantlib.backtest, reading the panel (not part of the first result), the first ``run()``
(loads the kernels: their native artifacts, linked by quantlib's ELF loader or llvmlite's
MCJIT, or numba and its cache, see quantlib.backtest.native) and a second ``run()`` (the
steady cost). Prints one JSON line, with whether numba and llvmlite were imported and how
the artifacts were linked. Usage: ``python bench/startup_probe.py DATA_DIR``.
"""

import json
import os
import resource
import sys
import time

MARKS: list[tuple[str, float, float, int, int, int]] = []


def mark(name: str) -> None:
    ru = resource.getrusage(resource.RUSAGE_SELF)  # process_time: ns, not 10 ms ticks
    MARKS.append((name, time.perf_counter(), time.process_time(), len(sys.modules),
                  ru.ru_majflt, ru.ru_inblock))


mark("start")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

mark("numpy, pandas, xarray")
import quantlib  # noqa: E402
import quantlib.backtest  # noqa: E402, F401

mark("quantlib.backtest")


def main(d: str) -> dict:
    dates = pd.DatetimeIndex(np.load(os.path.join(d, "dates.npy")), name="date")
    dv = {k: (("date", "asset"), np.load(os.path.join(d, f"w2_1000_{k}.npy")))
          for k in ("close", "returns", "in_universe")}
    ds = xr.Dataset(dv, coords={"date": dates, "asset": [f"A{i:05d}" for i in range(1000)]})
    mark("data")
    for name in ("first run()", "second run()"):
        quantlib.backtest.run("xs_momentum", ds, window=252, skip=21, quantile=10,
                              costs="flat:10")
        mark(name)
    phases = {}
    for (_, w0, c0, m0, f0, b0), (name, w1, c1, m1, f1, b1) in zip(MARKS, MARKS[1:],
                                                                    strict=False):
        phases[name] = {"wall_s": w1 - w0, "cpu_s": c1 - c0, "modules": m1 - m0,
                        "major_faults": f1 - f0, "blocks_read": b1 - b0}
    counted = [k for k in phases if k not in ("data", "second run()")]
    numba_imported = "numba" in sys.modules  # before jitload's import below imports it
    from quantlib.backtest import native

    jl = sys.modules.get("quantlib.backtest.jitload")
    lean = jl.lean_loads() if jl is not None else 0
    return {"phases": phases,
            "first_result_s": sum(phases[k]["wall_s"] for k in counted),
            "first_result_cpu_s": sum(phases[k]["cpu_s"] for k in counted),
            "modules_at_first_result": MARKS[-2][3] - phases["data"]["modules"],
            "lean_loads": lean, "native": native.counts(), "numba_imported": numba_imported,
            "llvmlite_imported": "llvmlite.binding" in sys.modules,
            "bytecode_cache": not sys.dont_write_bytecode}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
