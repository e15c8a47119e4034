"""What one daily delta commit with new listings writes, at several history lengths.

``uv run python bench/bench_listing_day.py --assets 2000 --years 1 4``: per history
length, one KR panel (canonical frames of ``tests/store/conftest.py``) stored up to
``--days`` + 1 sessions before ``--end``, a plain delta commit of the next session
(timed too: it warms the delta path up), then ``--days`` delta commits of the last
sessions, each also listing a new asset whose id sorts in the middle of the stored ones
(an ISIN sorts anywhere) and another that sorts after them. Prints each listing commit's
seconds, the chunks it changed (``repo.diff``), how many of those lie in stored date
rows (a listing must change none) and the bytes it added to the repository folder.
Flat in history: the chunk and byte counts equal at every length, the seconds close.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from quantlib.store import CuratedStore
from quantlib.store.dategrid import date_edges


def _frames(assets: int, start: str, end: str) -> dict[str, pd.DataFrame]:
    path = Path(__file__).resolve().parents[1] / "tests" / "store" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_store_frames", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the frames factory from {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_frames(n_assets=assets, start=start, end=end, markets=("KR",))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _listing(f: dict[str, pd.DataFrame], ids: list[str], day: pd.Timestamp, k: int
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assets rows and bars of day ``day``'s two listings: one sorting mid-axis, one
    after every stored id (``k`` makes the ids distinct per day)."""
    new_ids = [ids[len(ids) // 2 + k][:-1] + "5", ids[-1][:-1] + str(k)]
    rows = f["assets"].iloc[[0] * 2].assign(asset_id=new_ids)
    bars = f["prices"][(f["prices"]["asset_id"] == ids[0]) & (f["prices"]["date"] == day)]
    return rows, pd.concat([bars.assign(asset_id=a) for a in new_ids])


def _one(assets: int, start: str, end: str, days: int) -> str:
    f = _frames(assets, start, end)
    ids = sorted(f["assets"]["asset_id"])
    sessions = sorted(f["prices"]["date"].unique())
    plain, listing_days = sessions[-days - 1], sessions[-days:]
    with tempfile.TemporaryDirectory() as tmp:
        st = CuratedStore(Path(tmp) / "s")
        head = dict(f)
        head["prices"] = f["prices"][f["prices"]["date"] < plain]
        st.commit(head, message="initial")
        t0 = time.perf_counter()          # a plain day first (warms the delta path up)
        base = st.commit({"prices": f["prices"][f["prices"]["date"] == plain]},
                         message="plain day", delta=True)
        plain_s = time.perf_counter() - t0
        n_stored = st.open_prices("KR", base).sizes["date"]
        assets_now = f["assets"]
        secs, chunks, stored_rows, added = [], [], 0, []
        for k, day in enumerate(listing_days):
            rows, bars = _listing(f, ids, day, k)
            assets_now = pd.concat([assets_now, rows], ignore_index=True)
            store = zarr.open_array(st.repo.readonly_session(snapshot_id=base).store,
                                    path="prices/KR/close", mode="r")
            old_date_chunks = len(date_edges(store))
            before = _size(Path(tmp) / "s")
            t0 = time.perf_counter()
            snap = st.commit({"prices": pd.concat([f["prices"][f["prices"]["date"] == day],
                                                   bars]), "assets": assets_now},
                             message=f"listing day {k}", delta=True)
            secs.append(time.perf_counter() - t0)
            added.append(_size(Path(tmp) / "s") - before)
            if st.last_delta["rewrites"]:
                raise SystemExit(f"listing day {day} rewrote the panel")
            diff = st.repo.diff(from_snapshot_id=base, to_snapshot_id=snap)
            chunks.append(sum(len(c) for c in diff.updated_chunks.values()))
            stored_rows += sum(1 for cs in diff.updated_chunks.values()
                               for c in cs if len(c) == 2 and c[0] < old_date_chunks)
            base = snap
        return (f"KR {assets} assets x {n_stored} sessions stored: listing day commits "
                f"{' '.join(f'{s:.2f}' for s in secs)} s (median "
                f"{float(np.median(secs)):.2f}; plain day before: {plain_s:.2f} s), "
                f"rewrites 0, chunks changed {chunks} (in stored date rows: {stored_rows}), "
                f"bytes added {added}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=2000)
    ap.add_argument("--years", type=float, nargs="+", default=[1.0, 4.0],
                    help="history lengths stored before the listing day")
    ap.add_argument("--end", default="2024-03-29")
    ap.add_argument("--days", type=int, default=3, help="listing days in a row")
    args = ap.parse_args()
    for years in args.years:
        start = (pd.Timestamp(args.end) - pd.DateOffset(days=round(365.25 * years)))
        print(_one(args.assets, f"{start:%Y-%m-%d}", args.end, args.days), flush=True)


if __name__ == "__main__":
    main()
