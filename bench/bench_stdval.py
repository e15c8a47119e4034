"""Benchmark: CPU per bar of the standardize and validate stages alone (issue #12 part 3).

Run: ``uv run python bench/bench_stdval.py [--assets 150] [--years 4] [--cache DIR]
[--partition-rows 100000] [--repeat 3] [--dirty 0.002] [--profile STAGE] [--save FILE]``.

A vendor sandbox (3 markets x ``--assets`` x ``--years``, a child process) is fetched
once into a raw zone under ``--cache`` (kept, so later runs skip the sandbox and the
fetch). Every delivery's bytes are then held in memory, so the clock sees only the two
stages, as the first build runs them:

- ``one-frame``: per market ``standardize`` of all its deliveries, then ``validate``
  with the deliveries (``quantlib.pipeline.tasks.run_market``);
- ``partitioned``: per market the reference tables (standardize + validate), then
  per partition of ~``--partition-rows`` bars ``standardize`` of its deliveries and
  ``validate`` with the market's assets and actions as context
  (``quantlib.pipeline.partitions.run_partition``; its spill and second report are the
  pipeline's, not counted here).

``--dirty F`` corrupts a fraction ``F`` of the price rows of the delimited files (a
garbage number, a negative close, a swapped high/low, in turn), so the quarantine path
is timed too. CPU is ``time.process_time`` (this process, all threads), the minimum over
``--repeat`` rounds; bars are the standardized price rows. ``--save FILE`` pickles every
quarantine and clean frame so two versions of the code can be compared cell for cell
(``--compare FILE``).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

MARKETS = ("KR", "US", "EU")


class MemoryRaw:
    """A raw zone stand-in: every delivery's bytes in memory, keyed by sha256."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def get(self, sha256: str) -> bytes:
        return self.blobs[sha256]


def _fetch(cache: Path, assets: int, years: float) -> dict[str, Any]:
    """Deliveries per market and their bytes (fetched once from a sandbox, then cached)."""
    done = cache / "deliveries.pkl"
    if done.exists():
        return pickle.loads(done.read_bytes())
    from quantlib.pipeline.sandboxproc import sandbox_process
    from quantlib.raw import RawZone
    from quantlib.sources import fetch_market
    from quantlib.sources.connection import Connection

    raw = RawZone(str(cache / "store"))
    with sandbox_process(n_assets=assets, years=years, seed=1, end="2024-12-31",
                         markets=MARKETS) as conn:
        info = {k: getattr(conn, k) for k in ("ftp_host", "ftp_port", "ftp_user",
                                              "ftp_password", "http_url", "api_key")}
        connection = Connection(**info)
        deliveries = {m: fetch_market(m, raw=raw, connection=connection, fetch_id="bench")
                      for m in MARKETS}
    blobs = {d.sha256: raw.get(d.sha256) for ds in deliveries.values() for d in ds}
    state = {"deliveries": deliveries, "blobs": blobs}
    done.write_bytes(pickle.dumps(state))
    return state


def _corrupt(data: bytes, sep: bytes, every: int, salt: int) -> bytes:
    """Every ``every``-th data row of a delimited file gets one fault (in turn)."""
    lines = data.split(b"\n")
    for i in range(1 + salt % every, len(lines), every):
        cells = lines[i].split(sep)
        if len(cells) < 6:
            continue
        kind = (i // every) % 3
        if kind == 0:
            cells[-2] = b"n/a"                       # close: garbage
        elif kind == 1:
            cells[-2] = b"-" + cells[-2]             # close: negative
        else:
            cells[-5], cells[-3] = cells[-3], cells[-5]  # high <-> low
        lines[i] = sep.join(cells)
    return b"\n".join(lines)


def _dirty(state: dict[str, Any], fraction: float) -> dict[str, Any]:
    """A copy of the deliveries with faults in the delimited price files."""
    from dataclasses import replace

    from quantlib.markets import FORMATS
    from quantlib.pipeline.partitions import is_price_delivery

    every = max(2, round(1 / fraction))
    blobs = dict(state["blobs"])
    out = {}
    for m, ds in state["deliveries"].items():
        new = []
        for k, d in enumerate(ds):
            if d.fmt in FORMATS and is_price_delivery(d):
                sep = FORMATS[d.fmt].separator.encode(FORMATS[d.fmt].encoding)
                data = _corrupt(blobs[d.sha256], sep, every, k)
                sha = hashlib.sha256(data).hexdigest()
                blobs[sha] = data
                d = replace(d, sha256=sha)
            new.append(d)
        out[m] = new
    return {"deliveries": out, "blobs": blobs}


def one_frame(state: dict[str, Any]) -> tuple[dict[str, float], int, dict[str, Any]]:
    """CPU seconds per stage of the one-frame build; bars; the outputs."""
    from quantlib.errors import BatchRejectedError
    from quantlib.standardize import standardize
    from quantlib.validate import validate

    raw = MemoryRaw(state["blobs"])
    cpu = {"standardize": 0.0, "validate": 0.0}
    bars, outputs = 0, {}
    for m, ds in state["deliveries"].items():
        c0 = time.process_time()
        batch = standardize(ds, raw)  # type: ignore[arg-type]
        c1 = time.process_time()
        try:
            out = validate(batch, max_bad_row_fraction=1.0, deliveries=ds)
        except BatchRejectedError as err:  # pragma: no cover - the limit is 1.0
            out = err.outcome  # type: ignore[attr-defined]
        c2 = time.process_time()
        cpu["standardize"] += c1 - c0
        cpu["validate"] += c2 - c1
        bars += len(batch.prices)
        outputs[m] = (out.quarantine, out.clean.frames(), out.report)
    return cpu, bars, outputs


def partitioned(state: dict[str, Any], partition_rows: int
                ) -> tuple[dict[str, float], int, dict[str, Any]]:
    """CPU seconds per stage of the partitioned build's tasks; bars; the outputs."""
    from quantlib.pipeline.partitions import is_price_delivery, price_partitions
    from quantlib.standardize import standardize
    from quantlib.validate import validate

    raw = MemoryRaw(state["blobs"])
    cpu = {"standardize": 0.0, "validate": 0.0}
    bars, outputs = 0, {}
    for m, ds in state["deliveries"].items():
        ref = [d for d in ds if not is_price_delivery(d)]
        c0 = time.process_time()
        batch = standardize(ref, raw)  # type: ignore[arg-type]
        c1 = time.process_time()
        out = validate(batch, max_bad_row_fraction=1.0, deliveries=ref)
        cpu["standardize"] += c1 - c0
        cpu["validate"] += time.process_time() - c1
        context = batch
        outputs[(m, "reference")] = (out.quarantine, out.clean.frames(), out.report)
        parts = price_partitions([d for d in ds if is_price_delivery(d)], partition_rows)
        for i, part in enumerate(parts):
            c0 = time.process_time()
            pb = standardize(part, raw)  # type: ignore[arg-type]
            c1 = time.process_time()
            full = pb.replace(assets=context.assets, prices=pb.prices.reset_index(drop=True))
            out = validate(full, max_bad_row_fraction=1.0,
                           stored_actions=context.corporate_actions)
            cpu["standardize"] += c1 - c0
            cpu["validate"] += time.process_time() - c1
            bars += len(pb.prices)
            outputs[(m, i)] = (out.quarantine, out.clean.prices, out.report)
    return cpu, bars, outputs


def _equal(a: Any, b: Any, where: str) -> list[str]:
    """Where two saved outputs differ (frames cell for cell, dtypes included)."""
    if isinstance(a, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError as exc:
            return [f"{where}: {str(exc)[:300]}"]
        return []
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"]
        return [x for k in a for x in _equal(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, tuple | list):
        return [x for i, (p, q) in enumerate(zip(a, b, strict=True))
                for x in _equal(p, q, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=150)
    parser.add_argument("--years", type=float, default=4)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--partition-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dirty", type=float, default=0.0)
    parser.add_argument("--modes", default="one-frame,partitioned")
    parser.add_argument("--profile", default=None, help="cProfile this mode, print the top")
    parser.add_argument("--save", default=None)
    parser.add_argument("--compare", default=None)
    args = parser.parse_args(argv)
    cache = Path(args.cache or Path(tempfile.gettempdir())
                 / f"bench-stdval-{args.assets}x{args.years:g}")
    cache.mkdir(parents=True, exist_ok=True)
    state = _fetch(cache, args.assets, args.years)
    if args.dirty:
        state = _dirty(state, args.dirty)
    import quantlib.standardize  # noqa: F401  (imports outside the clock)
    import quantlib.validate  # noqa: F401

    runs = {"one-frame": one_frame,
            "partitioned": lambda s: partitioned(s, args.partition_rows)}
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile(time.process_time)
        prof.runcall(runs[args.profile], state)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return 0
    saved = {}
    for mode in args.modes.split(","):
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            cpu, bars, outputs = runs[mode](state)
            best = {k: min(v, best.get(k, v)) for k, v in cpu.items()}
        saved[mode] = outputs
        q = sum(len(o[0]) for o in outputs.values())
        print(f"{mode:<12} bars {bars:,}  quarantine rows {q:,}  "
              + "  ".join(f"{k} {v:.2f} CPU-s = {v / bars * 1e6:.1f} us/bar"
                          for k, v in best.items())
              + f"  total {sum(best.values()) / bars * 1e6:.1f} us/bar", flush=True)
    if args.save:
        Path(args.save).write_bytes(pickle.dumps(saved))
    if args.compare:
        diffs = _equal(pickle.loads(Path(args.compare).read_bytes()), saved, "outputs")
        print("outputs equal to", args.compare if not diffs else "\n".join(diffs[:20]))
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
