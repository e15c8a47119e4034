"""Benchmark: peak memory of a market's statements in the first build, one frame (the
``reference`` task, as before) vs by parts (:mod:`quantlib.pipeline.statements`).

Run: ``uv run python bench/bench_statements_memory.py [--rows 300000,1200000]
[--statement-rows 500000]``.

For each size, a fundamentals feed of about ``rows`` rows (assets x 6 fields x 4
quarters a year, one restatement in ten, in 5,000-row API pages as the vendor sends
them) is written to a fresh raw zone; then each mode runs in a fresh process and
reports its peak RSS (``VmHWM``) above the RSS it had after its imports, and its CPU:

- ``one-frame``: standardize + validate every page at once (the build's ``reference``
  task before statements went by parts), then the clean frame written whole as the
  stored table (:func:`~quantlib.store.tables.write_table`, in memory) and exported
  whole to Parquet;
- ``parts``: the read tasks (page groups of ``--statement-rows``), the check tasks (asset
  buckets), the table written by parts (:func:`~quantlib.store.tables.write_table_parts`)
  and exported by parts, one task at a time (a build runs up to its thread count at
  once).

Both write the same table (the script checks the row counts). Prints MB above the
imports and bytes per statement row: what scales with rows and what does not.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import peak_mb, reset_peak, rss_mb  # noqa: E402

PAGE = 5000
FIELDS = ("revenue", "net_income", "total_equity", "total_assets", "shares_outstanding",
          "operating_cash_flow")


def _feed(store: str, rows: int) -> list[dict]:
    """Write the pages; return their deliveries as dicts."""
    from quantlib.raw import RawZone

    years = 5
    assets = max(1, rows // (len(FIELDS) * 4 * years))
    rng = np.random.default_rng(0)
    day = 86_400_000
    t0 = 1_420_070_400_000   # 2015-01-01
    recs = []
    for a in range(assets):
        isin = f"US{a:09d}0"
        for q in range(4 * years):
            end = t0 + q * 91 * day
            for f in FIELDS:
                v = float(rng.normal(1e6, 1e5))
                recs.append({"isin": isin, "field": f, "period_end_ms": end, "value": v,
                             "currency": "USD", "published_ms": end + 40 * day,
                             "updated_ms": end + 40 * day})
                if rng.random() < 0.1:   # a restatement, filed a quarter later
                    recs.append({**recs[-1], "value": v * 1.01,
                                 "published_ms": end + 130 * day,
                                 "updated_ms": end + 130 * day})
    raw = RawZone(store)
    out = []
    for i in range(0, len(recs), PAGE):
        page = recs[i:i + PAGE]
        d = raw.put(json.dumps({"data": page, "total_rows": len(recs)}).encode(),
                    source="api-us", market="US",
                    file=f"api/v1/fundamentals?market=US&page={i // PAGE + 1}",
                    fetch_id="f", fmt="api-json", rows=len(page), record=False)
        out.append(d.__dict__ | {"fetched_at": str(d.fetched_at)})
    return out


def _assets(deliveries: list) -> object:
    import pandas as pd

    from quantlib.standardize import CanonicalBatch

    n = max(int(d.file.rsplit("=", 1)[1]) for d in deliveries) * PAGE
    ids = [f"US{a:09d}0" for a in range(n // (len(FIELDS) * 4 * 5) + 1)]
    frame = pd.DataFrame({"asset_id": ids, "market": "US", "mic": "XNYS", "currency": "USD",
                          "sector": "Energy", "name": "x", "listed": pd.Timestamp("2010-01-01"),
                          "delisted": pd.NaT, "known_at": pd.Timestamp("2010-01-01", tz="UTC"),
                          "source": "api-us", "file": "api/v1/securities", "row": 0})
    return CanonicalBatch(assets=frame.astype(CanonicalBatch().assets.dtypes.to_dict()))


def child(mode: str, store: str, deliveries_json: str, statement_rows: int) -> dict:
    """One mode in this process: its peak RSS above the RSS after imports."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zarr

    from quantlib.pipeline import build, statements
    from quantlib.pipeline.merge import canonical
    from quantlib.raw import Delivery
    from quantlib.store.tables import write_table, write_table_parts
    from quantlib.validate import validate  # noqa: F401 - imported before the baseline

    deliveries = [Delivery(**{**d, "fetched_at": pd.Timestamp(d["fetched_at"])})
                  for d in json.loads(deliveries_json)]
    context = _assets(deliveries)
    spill = tempfile.mkdtemp(prefix="bench-st-spill-")
    root = zarr.group(store=zarr.storage.MemoryStore())
    base = rss_mb()
    reset_peak()
    c0 = time.process_time()
    if mode == "one-frame":
        outcome, _, _ = build._reference(store, deliveries, ())
        clean = canonical("statements", outcome.clean.statements)
        del outcome
        write_table(root, "statements", clean)
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(clean, preserve_index=False), buf)
        n = len(clean)
    else:
        groups = statements.statement_groups(deliveries, statement_rows)
        buckets = statements.n_buckets(deliveries, statement_rows)
        reads = [statements.read_statements("US", i, store, g, buckets, spill)
                 for i, g in enumerate(groups)]
        checks = [statements.check_statements("US", b, reads, context, spill)
                  for b in range(buckets)]
        import fsspec

        parts = statements.statement_parts(checks, fsspec.filesystem("file"))
        n = write_table_parts(root, "statements", (p() for p in parts),
                              canonical("statements", context.statements))
        from quantlib.store.parquet import EXPORT_ROWS, _write_parts
        from quantlib.store.tables import read_table_group

        _write_parts(io.BytesIO(), (read_table_group(root, "statements",
                                                     rows=slice(a, min(a + EXPORT_ROWS, n)))
                                    for a in range(0, n, EXPORT_ROWS)))
    return {"mode": mode, "rows": n, "base_mb": base, "peak_mb": peak_mb() - base,
            "cpu_s": time.process_time() - c0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="300000,1200000")
    parser.add_argument("--statement-rows", type=int, default=500_000)
    parser.add_argument("--modes", default="one-frame,parts")
    for hidden in ("--child", "--store", "--deliveries"):   # a mode's own process
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("QUANTLIB_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    if args.child:
        deliveries = Path(args.deliveries).read_text()
        print(json.dumps(child(args.child, args.store, deliveries, args.statement_rows)))
        return 0
    print(f"{'rows asked':>11}{'mode':>11}{'rows stored':>13}{'peak MB':>9}{'B/row':>7}"
          f"{'CPU s':>7}{'imports MB':>11}")
    for rows in (int(r) for r in args.rows.split(",")):
        store = tempfile.mkdtemp(prefix="bench-st-")
        listing = Path(store) / "deliveries.json"
        listing.write_text(json.dumps(_feed(store, rows), default=str))
        for mode in args.modes.split(","):
            proc = subprocess.run([sys.executable, __file__, "--child", mode, "--store",
                                   store, "--deliveries", str(listing),
                                   "--statement-rows", str(args.statement_rows)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode:
                print(f"{mode}: failed\n{proc.stderr[-3000:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{rows:>11,}{mode:>11}{r['rows']:>13,}{r['peak_mb']:>9.0f}"
                  f"{r['peak_mb'] * 2**20 / max(r['rows'], 1):>7.0f}{r['cpu_s']:>7.1f}"
                  f"{r['base_mb']:>11.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
