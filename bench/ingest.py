"""Ingestion throughput on the local sandbox: fetch (FTP + API), standardize, validate.

Usage: ``uv run python bench/ingest.py [n_assets] [years]``. Prints one row per market
and stage; the second fetch shows the idempotent no-op cost.
"""

from __future__ import annotations

import sys
import tempfile
import time

from quantlib.raw import RawZone
from quantlib.sandbox import start_sandbox
from quantlib.sources import fetch_fx, fetch_market
from quantlib.standardize import standardize
from quantlib.validate import validate


def _fetch(market: str, raw: RawZone, sb: object, fetch_id: str) -> list:
    if market == "FX":
        return fetch_fx(raw=raw, connection=sb, fetch_id=fetch_id)  # type: ignore[arg-type]
    return fetch_market(market, raw=raw, connection=sb, fetch_id=fetch_id)  # type: ignore[arg-type]


def main(n_assets: int = 300, years: float = 10) -> None:
    t0 = time.perf_counter()
    sb = start_sandbox(n_assets=n_assets, years=years, write_state=False,
                       rate_limit=(1000.0, 2000.0))
    print(f"sandbox {n_assets} assets x {years} years: {time.perf_counter() - t0:.1f} s")
    raw = RawZone(tempfile.mkdtemp())
    print(f"{'market':<6} {'files':>6} {'MB':>7} {'fetch s':>8} {'refetch s':>9} "
          f"{'std s':>7} {'rows':>9} {'valid s':>8} {'bad':>5}")
    try:
        for market in ("KR", "EU", "US", "FX"):
            t = time.perf_counter()
            ds = _fetch(market, raw, sb, "one")
            t_fetch = time.perf_counter() - t
            t = time.perf_counter()
            _fetch(market, raw, sb, "two")
            t_refetch = time.perf_counter() - t
            t = time.perf_counter()
            batch = standardize(ds, raw)
            t_std = time.perf_counter() - t
            t = time.perf_counter()
            out = validate(batch, deliveries=ds)
            t_val = time.perf_counter() - t
            mb = sum(d.bytes for d in ds) / 1e6
            print(f"{market:<6} {len(ds):>6} {mb:>7.1f} {t_fetch:>8.2f} {t_refetch:>9.2f} "
                  f"{t_std:>7.2f} {batch.n_rows():>9} {t_val:>8.2f} "
                  f"{out.report['bad_rows']:>5}")
    finally:
        sb.stop()


if __name__ == "__main__":
    main(*(int(sys.argv[1]),) if len(sys.argv) > 1 else (),
         **({"years": float(sys.argv[2])} if len(sys.argv) > 2 else {}))
