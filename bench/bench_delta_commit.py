"""The daily delta commit against stored history (issue #12: flat in history).

For each ``--years``, a store is written with the issue's three markets at
``--assets`` assets in all (KR : US : EU = 5 : 14 : 6, as at full width) and that many
years of history in every part that grows with it: the price panels (dask-generated,
written chunk by chunk as the partitioned build does), quarterly statements (5 fields
per asset), a dividend per asset and quarter (corporate actions), daily FX. Then the
next session arrives the way :func:`quantlib.pipeline.incremental.publish_delta` and the
continuity step meet it:

- ``stored_action_dates`` (the jump check's stored actions for the day's bars);
- ``delta_frames`` (the reference tables upserted over the stored ones: the vendor's
  whole ``corporate_actions`` table again with one newly announced action, or with
  ``--actions asset`` only the rows of the assets it changed);
- the delta commit (``CuratedStore.commit(delta=True)``): one session of bars for every
  asset, a correction of 20 bars per market three sessions back, ``--filings``
  statements, the day's FX.

Printed per history: wall and process CPU (all threads) of each part, the rows the
commit read from the stored long tables, the rows it exported to Parquet, and a
breakdown of the commit (reference tables, statements key check, price regions, FX,
Icechunk commit + tag, Parquet export). With several ``--years`` every column should
stay flat. Run the same command with ``PYTHONPATH`` pointing at an older checkout's
``quantlib`` (e.g. ``git archive <commit> quantlib | tar -x -C /tmp/old``) to compare
under the same load.

Usage::

    uv run python bench/bench_delta_commit.py --assets 2000 --years 2,10,20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SHARE = {"KR": 5, "US": 14, "EU": 6}
CURRENCY = {"KR": "KRW", "US": "USD", "EU": "EUR"}
MIC = {"KR": "XKRX", "US": "XNYS", "EU": "XPAR"}
FIELDS = ("revenue", "net_income", "assets", "equity", "shares")
END = pd.Timestamp("2025-12-30")
DAY = pd.Timestamp("2025-12-31")


def _sizes(total: int) -> dict[str, int]:
    return {m: max(5, total * s // sum(SHARE.values())) for m, s in SHARE.items()}


def _panel(market: str, ids: list[str], years: float, seed: int) -> Any:
    """A dask-backed price panel of ``market`` (the layout the partitioned build writes)."""
    import dask.array as da
    import xarray as xr

    from quantlib import calendars

    dates = calendars.sessions(market, END - pd.Timedelta(days=int(365.25 * years)), END)
    n, m = len(dates), len(ids)
    chunks = (512, m)
    rng = da.random.default_rng(seed)
    close = rng.uniform(50.0, 150.0, size=(n, m), chunks=chunks)
    at = (dates.as_unit("ns").asi8 + 22 * 3600 * 10**9).astype("int64")
    known = da.broadcast_to(da.from_array(at[:, None], chunks=(512, 1)), (n, m)).rechunk(chunks)
    data = {v: (("date", "asset"), close) for v in ("open", "high", "low", "close")}
    data["volume"] = (("date", "asset"), da.full((n, m), 1000.0, chunks=chunks))
    data["split"] = (("date", "asset"), da.ones((n, m), chunks=chunks))
    data["dividend"] = (("date", "asset"), da.zeros((n, m), chunks=chunks))
    data["returns"] = (("date", "asset"), da.zeros((n, m), chunks=chunks))
    data["known_at"] = (("date", "asset"), known)
    ds = xr.Dataset(data, coords={"date": dates.as_unit("ns").to_numpy(),
                                  "asset": np.asarray(ids, dtype=str)})
    ds["known_at"].attrs["description"] = "ns since 1970-01-01 UTC; -2**63 = no bar (NaT)"
    ds.attrs["market"] = market
    return ds


def history(total: int, years: float, seed: int = 0) -> tuple[dict[str, pd.DataFrame],
                                                               dict[str, Any]]:
    """Canonical long tables and dask panels of ``years`` of history ending :data:`END`."""
    from quantlib import calendars
    from quantlib.pipeline.merge import canonical

    rng = np.random.default_rng(seed)
    start = END - pd.Timedelta(days=int(365.25 * years))
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in
                                             ("assets", "symbols", "statements",
                                              "corporate_actions", "fx")}
    panels = {}
    quarters = pd.date_range(start, END, freq="QE")
    for k, (market, n) in enumerate(_sizes(total).items()):
        ids = [f"{market}{i:09d}0" for i in range(n)]
        tables["assets"].append(pd.DataFrame({
            "asset_id": ids, "market": market, "mic": MIC[market],
            "currency": CURRENCY[market], "sector": "Tech",
            "name": [f"Co {i}" for i in range(n)], "listed": pd.Timestamp("2000-01-03"),
            "delisted": pd.NaT, "known_at": pd.Timestamp("2000-01-01", tz="UTC")}))
        tables["symbols"].append(pd.DataFrame({
            "asset_id": ids, "symbol": [f"{market}S{i}" for i in range(n)],
            "valid_from": pd.Timestamp("2000-01-03"), "valid_to": pd.NaT}))
        q = np.repeat(quarters.to_numpy(), n)
        a = np.tile(ids, len(quarters))
        known = pd.DatetimeIndex(q).tz_localize("UTC") + pd.to_timedelta(
            rng.integers(20, 60, len(q)), "D")
        keep = known <= END.tz_localize("UTC")
        tables["statements"].append(pd.concat([pd.DataFrame({
            "asset_id": a[keep], "field": f, "period_end": q[keep],
            "value": rng.normal(size=int(keep.sum())), "known_at": known[keep]})
            for f in FIELDS], ignore_index=True))
        ex = pd.DatetimeIndex(q) + pd.Timedelta(days=10)
        acts = pd.DataFrame({"asset_id": a, "ex_date": ex, "kind": "dividend",
                             "value": rng.uniform(0.1, 1.0, len(a)),
                             "known_at": (ex - pd.Timedelta(days=14)).tz_localize("UTC")})
        tables["corporate_actions"].append(acts[acts["ex_date"] <= END])
        panels[market] = _panel(market, ids, years, seed + k)
    days = calendars.global_sessions(tuple(SHARE), start, END)
    for cur in ("KRW", "EUR"):
        tables["fx"].append(pd.DataFrame({
            "date": days, "currency": cur, "rate": rng.uniform(0.5, 1.5, len(days)),
            "known_at": days.tz_localize("UTC") + pd.Timedelta(hours=22)}))
    frames = {k: canonical(k, pd.concat(v, ignore_index=True)) for k, v in tables.items()}
    return frames, panels


def the_day(frames: dict[str, pd.DataFrame], n_filings: int, actions: str
            ) -> dict[str, pd.DataFrame]:
    """The next session's clean frames (see the module doc)."""
    from quantlib import calendars
    from quantlib.pipeline.merge import canonical

    at = DAY.tz_localize("UTC") + pd.Timedelta(hours=22)
    bars = []
    for market in SHARE:
        ids = frames["assets"].loc[frames["assets"]["market"] == market, "asset_id"]
        days = calendars.sessions(market, END - pd.Timedelta(days=10), DAY)
        if DAY in days:
            bars.append(pd.DataFrame({"asset_id": ids, "date": DAY, "close": 101.0}))
        back = days[days <= END][-3]
        bars.append(pd.DataFrame({"asset_id": ids.iloc[:20], "date": back, "close": 99.0}))
    prices = pd.concat(bars, ignore_index=True).assign(
        open=lambda f: f["close"], high=lambda f: f["close"], low=lambda f: f["close"],
        volume=1000.0, known_at=at)
    ids = frames["assets"]["asset_id"]
    filings = pd.DataFrame({"asset_id": ids.iloc[:n_filings], "field": "revenue",
                            "period_end": pd.Timestamp("2025-09-30"), "value": 1.0,
                            "known_at": at})
    first = ids.iloc[0]
    new_action = pd.DataFrame({"asset_id": [first], "ex_date": [pd.Timestamp("2026-01-15")],
                               "kind": ["dividend"], "value": [0.3], "known_at": [at]})
    stored = frames["corporate_actions"]
    if actions == "asset":   # only the assets the vendor changed, each complete
        stored = stored[stored["asset_id"] == first]
    delivered = pd.concat([stored, new_action], ignore_index=True)
    fx = pd.DataFrame({"date": DAY, "currency": ["KRW", "EUR"], "rate": [0.8, 1.1],
                       "known_at": at})
    day = {"prices": prices, "statements": filings, "corporate_actions": delivered,
           "fx": fx}
    return {k: canonical(k, v) for k, v in day.items()}


def run_delay() -> float:
    """Seconds this process's live threads have waited on a run queue (runnable, not
    running: CPU taken by other processes), from ``/proc/self/task/*/schedstat``."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


class Meter:
    """Wall, process CPU and run-queue wait of named parts, plus counters (rows read,
    rows exported). Wall - CPU - run-queue wait is what the part blocked on (I/O,
    locks, sleeps) while no thread of it ran."""

    def __init__(self) -> None:
        self.parts: dict[str, list[float]] = {}
        self.counts: dict[str, int] = {}

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        t0, c0, d0 = time.perf_counter(), time.process_time(), run_delay()
        try:
            yield
        finally:
            got = self.parts.setdefault(name, [0.0, 0.0, 0.0])
            got[0] += time.perf_counter() - t0
            got[1] += time.process_time() - c0
            got[2] += run_delay() - d0

    def wrap(self, owner: Any, attr: str, name: str, count: Any = None) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:   # an older checkout (PYTHONPATH) without this function
            return

        def inner(*a: Any, **k: Any) -> Any:
            with self.part(name):
                out = fn(*a, **k)
            if count is not None:
                key, n = count(a, k, out)
                self.counts[key] = self.counts.get(key, 0) + n
            return out
        setattr(owner, attr, inner)


#: the one meter the instrumented functions report to (reset per history)
METER = Meter()


def _instrument(meter: Meter) -> None:
    from quantlib.store import curated, increment, parquet, tables

    def read_rows(a: tuple, k: dict, out: Any) -> tuple[str, int]:
        return f"rows read: {a[1]}", len(out)

    meter.wrap(tables, "read_table_group", "  (long-table reads)", read_rows)
    meter.wrap(curated, "read_table_group", "  (long-table reads)", read_rows)
    meter.wrap(parquet, "write_table_file", "  parquet export",
               lambda a, k, out: (f"rows exported: {a[1]}", len(a[3])))
    meter.wrap(curated, "_write_reference_tables", "  reference tables")
    meter.wrap(curated, "_delta_actions", "  actions for the regions")
    meter.wrap(curated, "_fresh_statements", "  statements key check")
    meter.wrap(curated, "append_table", "  table appends")
    meter.wrap(curated, "_write_price_parts", "  price regions")
    meter.wrap(curated, "write_fx_delta", "  fx region")
    for attr in ("_new_axes", "_resize", "last_closes", "_write_block"):
        meter.wrap(increment, attr, f"    {attr}")


def _delta_frames_before(store: Any, frames: dict[str, pd.DataFrame], base: str | None
                         ) -> dict[str, pd.DataFrame]:
    """``publish_delta``'s frames as an older checkout (no ``delta_frames``) built them."""
    from quantlib.pipeline.incremental import upsert_appending
    from quantlib.pipeline.merge import canonical
    from quantlib.store.curated import STORED_ROWS_ATTR

    out = {}
    for name in ("assets", "symbols", "corporate_actions"):
        if len(frames.get(name, ())):
            prev = store.read_table(name, base) if base is not None else frames[name][:0]
            table = upsert_appending(canonical(name, prev), frames[name])
            if table.attrs.get(STORED_ROWS_ATTR) != len(table):
                out[name] = table
    return {**out, **{k: v for k, v in frames.items() if k in ("prices", "fx", "statements")
                      and len(v)}}


def run(total: int, years: float, n_filings: int, actions: str) -> tuple[dict, Meter]:
    from quantlib.pipeline import incremental
    from quantlib.pipeline.incremental import stored_action_dates
    from quantlib.store import CuratedStore

    delta_frames = getattr(incremental, "delta_frames", _delta_frames_before)

    folder = Path(tempfile.mkdtemp(prefix=f"bench-dcommit-{years:g}y-"))
    try:
        frames, panels = history(total, years)
        st = CuratedStore(str(folder))
        t0 = time.perf_counter()
        st.commit(frames, panels=panels, message="full")
        t_full = time.perf_counter() - t0
        info = {"years": years, "dates": max(len(p["date"]) for p in panels.values()),
                "statements": len(frames["statements"]),
                "actions": len(frames["corporate_actions"]), "full_s": t_full}
        del frames, panels
        day = the_day({"assets": st.read_table("assets"),
                       "corporate_actions": st.read_table("corporate_actions")},
                      n_filings, actions)
        meter = METER
        meter.parts, meter.counts = {}, {}
        base = st.tip()
        with meter.part("stored_action_dates"):
            stored_action_dates(st, day["prices"])
        with meter.part("delta_frames"):
            out = delta_frames(st, day, base)
        with meter.part("commit"):
            st.commit(out, message="day", delta=True, parent=base)
        info["written"] = dict(st.last_delta)
        return info, meter
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=2000, help="assets in all markets")
    parser.add_argument("--years", default="2,10,20")
    parser.add_argument("--filings", type=int, default=200)
    parser.add_argument("--actions", choices=("whole", "asset"), default="whole",
                        help="the day's actions delivery: the whole table or the changed "
                        "assets' rows")
    args = parser.parse_args(argv)
    import quantlib

    _instrument(METER)
    print(f"delta commit vs stored history: {_sizes(args.assets)} assets, actions "
          f"delivered {args.actions}; quantlib from {Path(quantlib.__file__).parent}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for years in (float(y) for y in args.years.split(",")):
        info, meter = run(args.assets, years, args.filings, args.actions)
        print(f"{years:g} y stored ({info['dates']:,} dates, {info['statements']:,} statement "
              f"rows, {info['actions']:,} actions; full commit {info['full_s']:.0f} s); "
              f"load average {os.getloadavg()[0]:.1f}; wrote {info['written']}")
        print(f"  {'part':<28}{'wall s':>8}{'CPU s':>8}{'queued s':>9}")
        for name, (wall, cpu, queued) in meter.parts.items():
            print(f"  {name:<28}{wall:8.2f}{cpu:8.2f}{queued:9.2f}")
        for name, n in sorted(meter.counts.items()):
            print(f"  {name:<28}{n:10,}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
