"""Benchmark: reads at scale (#12 part 5) on a full-size US panel store.

The store (``bench/scale_store.py``): 14,000 US assets x 20 years of XNYS sessions
(5,031), synthetic values with listings/delistings as NaN, the pipeline's chunks
(128 dates x 512 assets), written chunk by chunk through the store's writers.

Each step runs in a fresh process (peak RSS is that process's ``ru_maxrss``); modules are
imported before a step's clock starts and the import time is reported on its own (this
box sets ``PYTHONDONTWRITEBYTECODE``, so every process compiles its imports):

* ``open``: ``quantlib.open_catalog(store, markets=["US"])`` and the prices entry's
  ``.read()`` (the lazy dataset: grid, FX, graph; no panel chunk read).
* ``read``: one variable (``close``) of one market, all 20 years, as float64 in memory:
  plain zarr ``array[:]`` on the pinned snapshot (reference: zarr's own pipeline, chunks
  fetched through Icechunk), the store's direct chunk reader
  (:class:`quantlib.store.chunkread.ChunkedArray`, what the store and the catalog read
  with), the store's xarray panel (``CuratedStore.open_prices``: dask, one task per 512
  assets, each a direct read), and the catalog's PIT ``close`` (reads ``close`` and
  ``known_at``, re-stamps by decision time). MB/s = decompressed float64 bytes / wall
  seconds; MB per CPU-second (this process, all threads) too, since the box is shared,
  and the quiet two-core bound ``MB / (CPU-s / 2)`` (both cores busy, nothing else
  running).
* ``momentum``: ``quantlib.load_dataset(markets=["US"], fundamentals=False)``, the
  variables 12-1 momentum reads (``close``, ``returns``, ``in_universe``) loaded, then
  ``backtest.run("xs_momentum", costs="flat:10")``; peak RSS and which stored arrays
  were read (counted on the store).
* ``reference``: the same 12-1 momentum in plain NumPy on the same stored arrays read with
  zarr (``close``; returns from ``close``/``split``/``dividend``; membership = has a bar in
  the window): equal weight of the top decile at month ends, daily portfolio return.

Run: ``uv run python bench/bench_scale_read.py --store /tmp/scaleread/full`` (builds the
store there when absent, ~5 min; default ``$TMPDIR/quantlib-scale-read``; ``--assets
2000 --years 5`` for a smoke run). The default sections ``open,read,momentum`` take
about 3 minutes on a quiet 2-core machine; ``--sections all`` adds the NumPy reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _imports() -> float:
    t = time.perf_counter()
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
    import icechunk  # noqa: F401
    import intake  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import quantlib  # noqa: F401
    import quantlib.backtest  # noqa: F401
    import quantlib.catalog.readers  # noqa: F401
    import quantlib.pit  # noqa: F401
    return time.perf_counter() - t


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


COORDS = ("date", "asset", "currency")


def _counted_reads() -> dict[str, int]:
    """Count chunk reads per stored data variable (a wrapper around the store's ``get``
    and the direct reader's chunk-file reads; coordinate arrays left out)."""
    import icechunk

    from quantlib.store.chunkread import ChunkedArray

    counts: dict[str, int] = {}
    original = icechunk.IcechunkStore.get
    direct = ChunkedArray._chunk_bytes

    def count(name: str) -> None:
        if name.rsplit("/", 1)[-1] not in COORDS:
            counts[name] = counts.get(name, 0) + 1

    async def get(self, key, *args, **kwargs):  # type: ignore[no-untyped-def]
        if "/c/" in key:
            count(key.split("/c/")[0])
        return await original(self, key, *args, **kwargs)

    def chunk_bytes(self, ref):  # type: ignore[no-untyped-def]
        count(self.path)
        return direct(self, ref)

    icechunk.IcechunkStore.get = get  # type: ignore[method-assign]
    ChunkedArray._chunk_bytes = chunk_bytes  # type: ignore[method-assign]
    return counts


def _timed(fn):  # type: ignore[no-untyped-def]
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def step_open(store: str) -> dict:
    import quantlib

    counts = _counted_reads()
    cat, t_open, _ = _timed(lambda: quantlib.open_catalog(store, markets=["US"]))
    ds, t_read, cpu = _timed(lambda: cat["prices"].read())
    return {"open_s": t_open, "lazy_read_s": t_read, "lazy_read_cpu_s": cpu,
            "shape": list(ds["close"].shape),
            "price_chunks_read": sum(v for k, v in counts.items() if k.startswith("prices/"))}


def step_read(store: str) -> dict:
    import numpy as np
    import zarr

    import quantlib
    from quantlib.store import CuratedStore
    from quantlib.store.chunkread import ChunkedArray, native_chunk_dir

    st = CuratedStore(store)
    snap = st.resolve(None)
    session = st.repo.readonly_session(snapshot_id=snap)
    root = zarr.open_group(session.store, mode="r")
    out: dict = {"same_values": True}
    ref = None

    def measure(label: str, fn) -> None:  # type: ignore[no-untyped-def]
        nonlocal ref
        arr, t, cpu = _timed(fn)
        out[label] = {"s": t, "cpu_s": cpu, "mb": arr.nbytes / 1e6}
        if ref is None:
            ref = arr
        elif label != "catalog_pit":
            out["same_values"] &= bool(np.array_equal(arr, ref, equal_nan=True))

    measure("zarr", lambda: root["prices/US/close"][:])
    direct = ChunkedArray(session.store, "prices/US/close", native_chunk_dir(st.location))
    measure("direct", lambda: direct[:])
    measure("direct_again", lambda: direct[:])
    panel = st.open_prices("US", snap)
    measure("xarray", lambda: panel["close"].values)
    ref = None
    ds = quantlib.open_catalog(store, markets=["US"])["prices"].read()
    measure("catalog_pit", lambda: ds["close"].values)
    out["peak_rss_mb"] = _peak_mb()
    return out


def step_momentum(store: str) -> dict:
    import quantlib
    from quantlib import backtest

    counts = _counted_reads()
    t0 = time.perf_counter()
    ds = quantlib.load_dataset(store, markets=["US"], fundamentals=False)
    t_open = time.perf_counter() - t0
    data = ds[["close", "returns", "in_universe"]].load()
    t_load = time.perf_counter() - t0 - t_open
    res = backtest.run("xs_momentum", data, costs="flat:10")
    wall = time.perf_counter() - t0
    return {"open_s": t_open, "load_s": t_load, "wall_s": wall, "peak_rss_mb": _peak_mb(),
            "sharpe": float(res.metrics["sharpe"]),
            "arrays_read": {k: v for k, v in sorted(counts.items()) if k.startswith("prices/")}}


def step_reference(store: str) -> dict:
    """12-1 momentum in plain NumPy on the zarr arrays (no PIT re-stamping, no costs)."""
    import numpy as np
    import pandas as pd
    import zarr

    from quantlib.store import CuratedStore
    from quantlib.store.panels import total_returns

    st = CuratedStore(store)
    t0 = time.perf_counter()
    snap = st.resolve(None)
    g = zarr.open_group(st.repo.readonly_session(snapshot_id=snap).store, mode="r")
    close = g["prices/US/close"][:]
    r = total_returns(close, g["prices/US/split"][:], g["prices/US/dividend"][:])
    t_load = time.perf_counter() - t0
    dates = pd.DatetimeIndex(st.open_prices("US", snap)["date"].values)
    month = dates.month.to_numpy()
    month_end = np.flatnonzero(month != np.append(month[1:], 0))   # last session of a month
    cum = np.nan_to_num(r)
    np.log1p(cum, out=cum)
    np.cumsum(cum, axis=0, out=cum)                     # log growth up to each row
    port = np.zeros(len(dates))
    for a, b in zip(month_end[:-1], month_end[1:], strict=True):
        if a < 252:
            continue
        score = cum[a - 21] - cum[a - 252]
        score[~np.isfinite(close[a])] = np.nan
        top = score >= np.nanquantile(score, 0.9)
        port[a + 1:b + 1] = np.nanmean(np.where(top, r[a + 1:b + 1], np.nan), axis=1)
    wall = time.perf_counter() - t0
    return {"load_s": t_load, "wall_s": wall, "peak_rss_mb": _peak_mb(),
            "mean_daily": float(np.nanmean(port)), "months": int(len(month_end))}


STEPS = {"open": step_open, "read": step_read, "momentum": step_momentum,
         "reference": step_reference}


def _run_step(step: str, store: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--step", step, "--store", store],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mbs(part: dict) -> str:
    return (f"{part['mb'] / part['s']:.0f} MB/s wall, {part['mb'] / part['cpu_s']:.0f} "
            f"MB/CPU-s (quiet 2-core bound {2 * part['mb'] / part['cpu_s']:.0f} MB/s)")


def _rows(res: dict) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if "open" in res:
        o = res["open"]
        rows += [("catalog open (open_catalog)", f"{o['open_s']:.3f} s", "< 1 s"),
                 ("prices .read() (lazy dataset)", f"{o['lazy_read_s']:.2f} s, "
                  f"{o['price_chunks_read']} panel chunks read", ""),
                 ("imports (each process)", f"{o['import_s']:.1f} s", "")]
    if "read" in res:
        r = res["read"]
        rows += [("read close, plain zarr `[:]` (reference)", _mbs(r["zarr"]), ""),
                 ("read close, direct chunk reader (ChunkedArray)", _mbs(r["direct"]),
                  ">= 200 MB/s"),
                 ("  same, second read", _mbs(r["direct_again"]), ">= 200 MB/s"),
                 ("read close, store xarray panel (open_prices)", _mbs(r["xarray"]),
                  ">= 200 MB/s"),
                 ("read close, catalog PIT (+known_at, re-stamped)", _mbs(r["catalog_pit"]),
                  ""),
                 ("  values equal (zarr, direct, xarray)", str(r["same_values"]), "")]
    if "momentum" in res:
        m = res["momentum"]
        rows += [("12-1 momentum, quantlib (load+run)", f"{m['wall_s']:.1f} s (load "
                  f"{m['load_s']:.1f} s), peak RSS {m['peak_rss_mb']:.0f} MB", "<= 4 GB"),
                 ("  stored arrays read (chunks)", ", ".join(
                     f"{k.split('/')[-1]} {v}" for k, v in m["arrays_read"].items()), "")]
    if "reference" in res:
        ref = res["reference"]
        rows.append(("12-1 momentum, NumPy+zarr reference", f"{ref['wall_s']:.1f} s, peak "
                     f"RSS {ref['peak_rss_mb']:.0f} MB", ""))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default=os.path.join(tempfile.gettempdir(),
                                                    "quantlib-scale-read"))
    ap.add_argument("--assets", type=int, default=14_000)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--sections", default="open,read,momentum",
                    help="comma-separated among " + ",".join(STEPS) + ", or all")
    ap.add_argument("--step", choices=sorted(STEPS))
    args = ap.parse_args()
    if args.step:
        imports = _imports()
        out = STEPS[args.step](args.store)
        out["import_s"] = imports
        print(json.dumps(out))
        return
    if not Path(args.store, "curated").exists():
        from scale_store import write_us_store

        print("writing the store:", write_us_store(os.path.join(args.store, ""), args.assets,
                                                   args.years), flush=True)
    steps = list(STEPS) if args.sections == "all" else args.sections.split(",")
    t0, load = time.perf_counter(), os.getloadavg()[0]
    res = {step: _run_step(step, args.store) for step in steps}
    print(json.dumps(res, indent=1))
    print(f"\n{time.perf_counter() - t0:.0f} s; load average {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end; {os.cpu_count()} CPUs")
    print("\n| measure | result | floor |\n| --- | --- | --- |")
    for row in _rows(res):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
