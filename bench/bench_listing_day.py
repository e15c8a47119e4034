"""What one daily delta commit with new listings writes, at several history lengths.

``uv run python bench/bench_listing_day.py --assets 2000 --years 1 4``: per history
length, one KR panel (canonical frames of ``tests/store/conftest.py``) stored up to the
session before ``--end``, then a delta commit of the last session that also lists a new
asset whose id sorts in the middle of the stored ones (an ISIN sorts anywhere) and
another that sorts after them. Prints the commit's seconds, ``rows["rewrites"]``, the
chunks it changed (``repo.diff``), how many of those lie in stored date rows (a
listing must change none), and the bytes it added to the repository folder. Flat in
history: the chunk and byte counts equal at every length, the seconds close.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

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


def _one(assets: int, start: str, end: str) -> str:
    f = _frames(assets, start, end)
    ids = sorted(f["assets"]["asset_id"])
    last = f["prices"]["date"].max()
    new_ids = [ids[len(ids) // 2][:-1] + "5", ids[-1][:-1] + "9"]   # mid and end
    tmpl = f["assets"].iloc[[0] * 2].assign(asset_id=new_ids)
    bars = f["prices"][(f["prices"]["asset_id"] == ids[0]) & (f["prices"]["date"] == last)]
    listing = pd.concat([bars.assign(asset_id=a) for a in new_ids])
    with tempfile.TemporaryDirectory() as tmp:
        st = CuratedStore(Path(tmp) / "s")
        head = dict(f)
        head["prices"] = f["prices"][f["prices"]["date"] < last]
        s1 = st.commit(head, message="initial")
        before = _size(Path(tmp) / "s")
        t0 = time.perf_counter()
        s2 = st.commit({"prices": pd.concat([f["prices"][f["prices"]["date"] == last],
                                             listing]),
                        "assets": pd.concat([f["assets"], tmpl], ignore_index=True)},
                       message="listing day", delta=True)
        secs = time.perf_counter() - t0
        diff = st.repo.diff(from_snapshot_id=s1, to_snapshot_id=s2)
        chunks = sum(len(c) for c in diff.updated_chunks.values())
        root = st.repo.readonly_session(snapshot_id=s1).store
        old_date_chunks = len(date_edges(zarr.open_array(root, path="prices/KR/close",
                                                         mode="r")))
        stored_rows = sum(1 for path, cs in diff.updated_chunks.items()
                          for c in cs if len(c) == 2 and c[0] < old_date_chunks)
        total = st.open_prices("KR", s1)
        return (f"KR {assets} assets x {total.sizes['date']} sessions stored "
                f"({old_date_chunks} date chunks): listing day commit {secs:.2f} s, "
                f"rewrites {st.last_delta['rewrites']}, chunks changed {chunks} "
                f"(in stored date rows: {stored_rows}), "
                f"bytes added {_size(Path(tmp) / 's') - before:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=2000)
    ap.add_argument("--years", type=float, nargs="+", default=[1.0, 4.0],
                    help="history lengths stored before the listing day")
    ap.add_argument("--end", default="2024-03-29")
    args = ap.parse_args()
    for years in args.years:
        start = (pd.Timestamp(args.end) - pd.DateOffset(days=round(365.25 * years)))
        print(_one(args.assets, f"{start:%Y-%m-%d}", args.end), flush=True)


if __name__ == "__main__":
    main()
