"""Store status: data versions, freshness per market and source, quarantine counts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from quantlib.errors import SnapshotNotFoundError
from quantlib.raw import RawZone
from quantlib.store import CuratedStore, table_files

__all__ = ["StoreStatus", "status"]


@dataclass
class StoreStatus:
    """What :func:`status` reports.

    Attributes
    ----------
    store : str
        The store URL.
    versions : DataFrame
        ``snapshot_id, tags, written_at, message``, newest first.
    freshness : DataFrame
        Per ``market, source``: ``last_fetched_at``, ``last_published_at`` (manifest)
        and ``latest_known_at`` (the newest ``known_at`` of the market's bars, or FX
        rates, in the latest version).
    quarantine : DataFrame
        Quarantined rows per ``refresh_id, market``, newest run first.
    """

    store: str
    versions: pd.DataFrame
    freshness: pd.DataFrame
    quarantine: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (timestamps as ISO strings)."""
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            out = frame.copy()
            for col in out.columns:
                if out[col].dtype.kind == "M":
                    out[col] = out[col].map(lambda t: None if pd.isna(t) else t.isoformat())
            return out.astype(object).where(out.notna(), None).to_dict("records")

        return {"store": self.store, "versions": records(self.versions),
                "freshness": records(self.freshness), "quarantine": records(self.quarantine)}

    def __str__(self) -> str:
        lines = [f"store: {self.store}", f"versions: {len(self.versions)}"]
        for row in self.versions.head(5).itertuples():
            lines.append(f"  {row.snapshot_id}  {row.written_at:%Y-%m-%d %H:%M:%S}Z  "
                         f"{','.join(row.tags)}  {row.message}")
        lines.append("freshness:")
        for row in self.freshness.itertuples():
            lines.append(f"  {row.market:<3} {row.source:<10} fetched {row.last_fetched_at}  "
                         f"published {row.last_published_at}  known_at {row.latest_known_at}")
        lines.append("quarantine (latest runs):")
        for row in self.quarantine.head(10).itertuples():
            lines.append(f"  {row.refresh_id}  {row.market:<3} {row.rows} rows")
        return "\n".join(lines)


def _latest_known(curated: CuratedStore) -> dict[str, pd.Timestamp]:
    try:
        curated.resolve(None)
    except SnapshotNotFoundError:
        return {}
    out = {}
    for m in curated.markets():
        ns = int(curated.open_prices(m)["known_at"].max().compute())
        out[m] = pd.Timestamp(ns, tz="UTC")
    try:
        out["FX"] = pd.Timestamp(int(curated.open_fx()["known_at"].max().compute()), tz="UTC")
    except Exception:  # noqa: BLE001 - no fx panel yet
        pass
    return out


def _freshness(curated: CuratedStore) -> pd.DataFrame:
    manifest = RawZone(curated.url).manifest()
    known = _latest_known(curated)
    cols = ["market", "source", "last_fetched_at", "last_published_at", "latest_known_at"]
    if manifest.empty:
        return pd.DataFrame({c: [] for c in cols})
    fetched = manifest.groupby(["market", "source"])["fetched_at"].max()
    pub = manifest[manifest["status"] == "published"].groupby(
        ["market", "source"])["fetched_at"].max()
    frame = pd.DataFrame({"last_fetched_at": fetched, "last_published_at": pub}).reset_index()
    frame["latest_known_at"] = frame["market"].map(known)
    return frame[cols].sort_values(["market", "source"]).reset_index(drop=True)


def _quarantine_counts(curated: CuratedStore) -> pd.DataFrame:
    fs = curated.location.filesystem()
    rows = []
    for path in table_files(curated.location, "quarantine"):
        refresh_id = os.path.basename(path).removesuffix(".parquet")
        with fs.open(path, "rb") as fh:
            q = pq.read_table(fh).to_pandas()
        if "severity" in q:
            q = q[q["severity"] != "info"]
        counts = q.groupby("market").size() if "market" in q and len(q) else pd.Series(
            dtype="int64")
        rows += [{"refresh_id": refresh_id, "market": str(m), "rows": int(n)}
                 for m, n in counts.items()]
        if counts.empty:
            rows.append({"refresh_id": refresh_id, "market": "*", "rows": 0})
    frame = pd.DataFrame(rows, columns=["refresh_id", "market", "rows"])
    # run ids look like "<kind>-<YYYYmmddTHHMMSSZ>-<hex>": newest run first
    when = frame["refresh_id"].str.extract(r"(\d{8}T\d{6}Z)", expand=False).fillna("")
    frame = frame.assign(_when=when).sort_values(["_when", "refresh_id", "market"],
                                                 ascending=[False, False, True])
    return frame.drop(columns="_when").reset_index(drop=True)


def status(store: str | None = None) -> StoreStatus:
    """Versions, freshness per market and source, and quarantine counts of a store.

    Examples
    --------
    >>> import tempfile
    >>> st = status(tempfile.mkdtemp())
    >>> len(st.versions), len(st.freshness), len(st.quarantine)
    (0, 0, 0)
    """
    curated = CuratedStore(store)
    return StoreStatus(curated.url, curated.snapshots(), _freshness(curated),
                       _quarantine_counts(curated))
