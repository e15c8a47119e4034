"""Profile the partitioned first build: every stage in ONE thread, CPU time per stage.

Run: ``uv run python bench/profile_build.py [--assets 150] [--years 4]
[--partition-rows 100000] [--repeat 1] [--cprofile out.pstats] [--catch-up 2]``.

With ``--catch-up Y0``: the sandbox's clock first stands ``Y0`` years after its start,
a build stores that (not profiled), the clock advances to the end and the partitioned
catch-up of the store (:mod:`quantlib.pipeline.catchup`) is profiled; then a full build
of a fresh store from the same vendor state, the same way. Both stores' date chunk
edges are compared (a catch-up that needs no compaction has the build's grid) and
their panels compared cell for cell.

One vendor sandbox (a child process) serves the build. The build is
:func:`quantlib.pipeline.refresh` with ``partitioned=True``, made synchronous: the
fetches run one after the other and every dask graph (partition tasks, chunk writes)
on dask's synchronous scheduler, all in the main thread. Each stage function is
wrapped to add up ``time.process_time`` (the process's CPU, so what native threads,
icechunk's or Arrow's, spend for a call is charged to it; the sandbox's CPU is not
counted, it is printed apart) under the stack of stages it runs in. Prints the tree of
stages with inclusive and own CPU microseconds per bar.

``--rss`` also samples the process's resident set size every 10 ms in a thread and
prints, per stage, the highest RSS seen while that stage ran (inclusive: its callees'
peaks count), the RSS left after it once the freed C heap is handed back
(``malloc_trim``, after every stage: what the stage left alive; the trims cost CPU, so
the CPU columns of an ``--rss`` run are not comparable) and the bytes Arrow's memory
pool held then, and the process's peak (``VmHWM``): what the build's peak memory is
made of.

``--cprofile`` also writes a cProfile of the build (functions by own time; Python
3.12's profiler sees every thread's calls, so its cumulative times across threads are
not to be trusted, its own times are).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import peak_mb, reset_peak  # noqa: E402

#: (label, module, attribute path): wrapped where callers look them up
STAGES: list[tuple[str, str, str]] = [
    ("fetch", "quantlib.pipeline.build", "_fetch"),
    ("reference", "quantlib.pipeline.build", "_reference"),
    ("partition", "quantlib.pipeline.build", "run_partition"),
    ("standardize", "quantlib.standardize", "standardize"),
    ("validate", "quantlib.validate", "validate"),
    ("build_report", "quantlib.validate.report", "build_report"),
    ("rest_bars", "quantlib.pipeline.partitions", "_rest_bars"),
    ("to_parquet", "pandas", "DataFrame.to_parquet"),
    ("read_parquet", "pandas", "read_parquet"),
    ("plan+commit", "quantlib.pipeline.build", "_build"),
    ("boundary_jumps", "quantlib.pipeline.build", "boundary_jumps"),
    ("combine", "quantlib.pipeline.build", "_combine"),
    ("plan_market", "quantlib.pipeline.build", "_plan_market"),
    ("commit", "quantlib.store.curated", "CuratedStore.commit"),
    ("tables", "quantlib.store.curated", "CuratedStore._write_all"),
    ("lazy_panels", "quantlib.store.curated", "_write_lazy_panels"),
    ("chunk_grids", "quantlib.pipeline.build", "chunk_grids"),
    ("read_spill", "quantlib.pipeline.partitions", "_read_spill"),
    ("write_block", "quantlib.store.curated", "_write_block"),
    ("seal", "quantlib.store.dategrid", "seal"),
    ("statements_export", "quantlib.store.parquet", "write_table_file"),
    ("catchup_commit", "quantlib.pipeline.catchup", "_commit"),
    ("region_parts", "quantlib.store.curated", "_write_price_parts"),
    ("blocks", "quantlib.store.curated", "write_blocks"),
    ("chunk_last", "quantlib.store.blocks", "_chunk_last"),
    ("seeds", "quantlib.store.blocks", "_seeds"),
    ("write_chunk", "quantlib.store.blocks", "_write_chunk"),
    ("stored_rows", "quantlib.store.blocks", "_stored"),
    ("actions_grid", "quantlib.store.blocks", "actions_grid"),
    ("zarr_setitem", "zarr.core.array", "Array.__setitem__"),
    ("read_table", "quantlib.store.curated", "CuratedStore.read_table"),
    ("manifest", "quantlib.raw.zone", "RawZone.record"),
    ("write_report", "quantlib.pipeline.build", "write_report"),
]

_stack: list[str] = []
_cpu: dict[tuple[str, ...], float] = {}
_calls: dict[tuple[str, ...], int] = {}
_rss: dict[tuple[str, ...], float] = {}     # highest RSS (MB) seen inside each stage


def _wrap(label: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        _stack.append(label)
        key = tuple(_stack)
        c0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _cpu[key] = _cpu.get(key, 0.0) + time.process_time() - c0
            _calls[key] = _calls.get(key, 0) + 1
            if _TRIM:
                _after(key)
            _stack.pop()
    return timed


def _instrument() -> None:
    for label, module, attr in STAGES:
        try:    # (a stage the code under test lacks, e.g. an older checkout's, is skipped)
            owner: Any = importlib.import_module(module)
            *parents, name = attr.split(".")
            for p in parents:
                owner = getattr(owner, p)
            setattr(owner, name, _wrap(label, getattr(owner, name)))
        except (ImportError, AttributeError):
            continue


def _synchronous() -> None:
    """Run every fetch and graph of the build in the calling thread."""
    import dask

    from quantlib.pipeline import build
    from quantlib.store import curated

    def fetches(self: Any, targets: Any, url: str, connection: Any, rid: str,
                fetch: Any) -> Any:
        for i, m in enumerate(targets):
            yield i, fetch(m, url, connection, rid)

    def start(self: Any, tasks: list[Any]) -> Any:
        f: Future = Future()
        f.set_result(dask.compute(*tasks, scheduler="sync"))
        return f

    build._Runner.fetches = fetches  # type: ignore[method-assign]
    build._Runner.start = start  # type: ignore[method-assign]
    write = curated._write_lazy_panels
    curated._write_lazy_panels = lambda s, p, c: write(s, p, "sync")  # type: ignore
    blocks = getattr(curated, "write_blocks", None)
    if blocks is not None:
        curated.write_blocks = lambda s, b, p, c=None: blocks(s, b, p, "sync")  # type: ignore


def _children_cpu() -> float:
    """CPU seconds of this process's live children (the vendor sandbox)."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


_TRIM: list[Any] = []     # [libc] with --rss: freed heap handed back after each stage
_live: dict[tuple[str, ...], tuple[float, float]] = {}   # most (RSS, Arrow MB) after


def _after(key: tuple[str, ...]) -> None:
    """After a stage: hand the freed C heap back (``malloc_trim``) and note the RSS
    left and the bytes Arrow's pool holds: what the stage left alive."""
    import pyarrow as pa
    from memory import rss_mb

    _TRIM[0].malloc_trim(0)
    now = (rss_mb(), pa.total_allocated_bytes() / 2**20)
    old = _live.get(key, (0.0, 0.0))
    _live[key] = (max(old[0], now[0]), max(old[1], now[1]))


def _sample_rss(stop: Any, every: float = 0.01) -> None:
    """Until ``stop`` is set: the RSS now, charged to every stage on the stack."""
    from memory import rss_mb

    while not stop.wait(every):
        now, key = rss_mb(), tuple(_stack)
        for n in range(1, len(key) + 1):
            if now > _rss.get(key[:n], 0.0):
                _rss[key[:n]] = now


def _print_tree(total: float, bars: int) -> None:
    print(f"{'stage (inclusive / own CPU us per bar)':<46}{'incl':>8}{'own':>8}{'calls':>7}"
          + (f"{'peak RSS MB':>13}{'RSS after':>11}{'Arrow MB':>10}" if _rss else ""))
    keys = sorted(_cpu)
    for key in keys:
        own = _cpu[key] - sum(v for k, v in _cpu.items() if len(k) == len(key) + 1
                              and k[:len(key)] == key)
        name = "  " * (len(key) - 1) + key[-1]
        print(f"{name:<46}{_cpu[key] / bars * 1e6:>8.2f}{own / bars * 1e6:>8.2f}"
              f"{_calls[key]:>7}" + (f"{_rss.get(key, float('nan')):>13.0f}"
                                     f"{_live.get(key, (0, 0))[0]:>11.0f}"
                                     f"{_live.get(key, (0, 0))[1]:>10.0f}" if _rss else ""))
    top = sum(v for k, v in _cpu.items() if len(k) == 1)
    print(f"{'(outside every stage)':<46}{(total - top) / bars * 1e6:>8.2f}")


def _profiled(store: str, conn: Any, args: Any, what: str) -> Any:
    """One refresh of ``store``, profiled; prints its tree and returns its result."""
    from quantlib.pipeline import refresh

    _cpu.clear()
    _calls.clear()
    _rss.clear()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(stop,), daemon=True)
    if args.rss:
        import ctypes

        _TRIM[:] = [ctypes.CDLL("libc.so.6")]
        _live.clear()
        reset_peak()
        sampler.start()
    prof = cProfile.Profile() if args.cprofile else None
    c0, t0, v0 = time.process_time(), time.perf_counter(), _children_cpu()
    if prof:
        prof.enable()
    result = refresh(store, connection=conn, partitioned=True,
                     partition_rows=args.partition_rows)
    if prof:
        prof.disable()
        prof.dump_stats(args.cprofile if what == "build" else f"{args.cprofile}.{what}")
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    stop.set()
    vendor = _children_cpu() - v0
    bars = int(result.rows.get("standardize", 0))
    print(f"\n{what}: {bars:,} rows, {result.rows.get('partitions')} partitions, snapshot "
          f"{result.snapshot_id}: wall {wall:.1f} s, CPU {cpu:.1f} s = "
          f"{cpu / bars * 1e6:.1f} CPU-us/row (the sandbox process: {vendor:.1f} s "
          f"= {vendor / bars * 1e6:.1f}); load {os.getloadavg()[0]:.1f}")
    _print_tree(cpu, bars)
    if args.rss:
        print(f"process peak RSS (VmHWM): {peak_mb():.0f} MB")
    return result


def _date_chunks(store: str) -> dict[str, list[int]]:
    """Date chunk edges of every 2-D panel array of a store's latest version."""
    import zarr

    from quantlib.store import CuratedStore, dategrid

    st = CuratedStore(store)
    root = zarr.open_group(st.repo.readonly_session("main").store, mode="r")
    return {f"{m}/{n}": dategrid.date_edges(a) for m in st.markets()
            for n, a in dategrid.date_arrays(cast(zarr.Group, root[f"prices/{m}"]))
            if a.ndim == 2}


def _catch_up(assets: Any, args: Any) -> int:
    """Build ``--catch-up`` years, advance the clock, profile the catch-up, then a full
    build of the same vendor state (see the module docstring)."""
    import shutil

    import pandas as pd

    from quantlib.pipeline import refresh
    from quantlib.pipeline.sandboxproc import sandbox_process
    from quantlib.store import CuratedStore

    end = pd.Timestamp("2024-12-31")
    start = end - pd.DateOffset(months=round(12 * args.years))
    first = start + pd.DateOffset(months=round(12 * args.catch_up))
    with sandbox_process(n_assets=assets, years=args.years, seed=1, end=str(first.date()),
                         start=str(start.date()), markets=("KR", "US", "EU")) as conn:
        grown = tempfile.mkdtemp(prefix="prof-catchup-")
        c0 = time.process_time()
        r0 = refresh(grown, connection=conn, partitioned=True,
                     partition_rows=args.partition_rows)
        print(f"stored {start.date()}..{first.date()}: {r0.rows['standardize']:,} rows, "
              f"CPU {time.process_time() - c0:.1f} s (not profiled)")
        conn.advance(end)   # type: ignore[attr-defined]
        r1 = _profiled(grown, conn, args, "catch-up")
        print(f"  appended dates {r1.rows.get('appended_dates')}, block chunks "
              f"{r1.rows.get('block_chunks')}, region cells {r1.rows.get('region_cells')}, "
              f"rewrites {r1.rows.get('rewrites')}")
        full = tempfile.mkdtemp(prefix="prof-full-")
        _profiled(full, conn, args, "full build")
    a, b = _date_chunks(grown), _date_chunks(full)
    print("\ndate chunks per array, catch-up vs full build: "
          + ", ".join(f"{k.split('/')[0]} {len(a[k])} vs {len(b[k])}"
                      for k in sorted(a) if k.endswith("/close"))
          + f"; every array's grid the same: {a == b}")
    same = all(CuratedStore(grown).open_prices(m).load().drop_attrs().equals(
        CuratedStore(full).open_prices(m).load().drop_attrs()) for m in ("KR", "US", "EU"))
    print(f"panels equal cell for cell: {same}")
    for path in (grown, full):
        shutil.rmtree(path, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="150",
                        help="assets per market: one number or KR=5000,US=14000,EU=6000")
    parser.add_argument("--years", type=float, default=4)
    parser.add_argument("--partition-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cprofile", default=None, help="write a cProfile here")
    parser.add_argument("--catch-up", type=float, default=None, dest="catch_up",
                        help="years stored before a profiled catch-up to --years")
    parser.add_argument("--rss", action="store_true", help="peak RSS per stage (sampled)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QUANTLIB_HOME", tempfile.mkdtemp(prefix="prof-home-"))
    from bench_pipeline_build import _warm

    from quantlib.pipeline.sandboxproc import sandbox_process

    _warm()
    _synchronous()
    _instrument()
    assets: Any = int(args.assets) if args.assets.isdigit() else args.assets
    if args.catch_up is not None:
        return _catch_up(assets, args)
    with sandbox_process(n_assets=assets, years=args.years, seed=1, end="2024-12-31",
                         markets=("KR", "US", "EU")) as conn:
        for _ in range(args.repeat):
            store = tempfile.mkdtemp(prefix="prof-build-")
            _profiled(store, conn, args, "build")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
