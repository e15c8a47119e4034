"""Combining per-market results: one validation outcome, one set of frames to commit.

A refresh (or a file drop) *upserts* into the curated store: rows of the assets it
delivered replace their previous rows; assets it did not deliver keep theirs (a refresh
of ``US`` alone keeps ``KR`` and ``EU``; a vendor refresh keeps assets ingested from a
file drop). FX rows are replaced per ``(date, currency)``. Statements are passed through
as delivered: the store appends them to the previous ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import pandas as pd

from quantlib.standardize import CanonicalBatch
from quantlib.store import CuratedStore
from quantlib.store.panels import panel_to_prices
from quantlib.store.schema import CANONICAL_COLUMNS
from quantlib.validate import ValidationOutcome, summarize

__all__ = ["merge_outcomes", "canonical", "upsert_previous", "market_counts"]

def _add(total: dict[str, int], part: dict[str, Any]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + int(value)


def merge_outcomes(outcomes: Iterable[ValidationOutcome]) -> ValidationOutcome:
    """One outcome (clean batch, quarantine, report, summary) from per-market outcomes."""
    outcomes = list(outcomes)
    clean = CanonicalBatch.concat(o.clean for o in outcomes)
    quarantine = pd.concat([o.quarantine for o in outcomes], ignore_index=True) \
        if outcomes else pd.DataFrame()
    report: dict[str, Any] = {"rows_in": {}, "rows_out": {}, "rows_in_total": 0,
                              "rows_out_total": 0, "quarantined_rows": 0, "bad_rows": 0,
                              "by_check": {}, "by_source": {}, "by_market": {}, "markets": {},
                              "max_bad_row_fraction": None, "rejected_markets": [],
                              "reconciliation": {"files": 0, "mismatches": []}}
    for o in outcomes:
        r = o.report
        for key in ("rows_in", "rows_out", "by_check", "by_source", "by_market"):
            _add(report[key], r.get(key, {}))
        for key in ("rows_in_total", "rows_out_total", "quarantined_rows", "bad_rows"):
            report[key] += int(r.get(key, 0))
        report["markets"].update(r.get("markets", {}))
        report["rejected_markets"] += list(r.get("rejected_markets", []))
        report["max_bad_row_fraction"] = r.get("max_bad_row_fraction")
        rec = r.get("reconciliation", {})
        report["reconciliation"]["files"] += int(rec.get("files", 0))
        report["reconciliation"]["mismatches"] += list(rec.get("mismatches", []))
    report["rejected_markets"] = sorted(set(report["rejected_markets"]))
    merged = ValidationOutcome(clean=clean, quarantine=quarantine, report=report)
    merged.summary = summarize(merged)
    return merged


def canonical(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The canonical columns of a frame (provenance dropped), cast to canonical dtypes."""
    cols = CANONICAL_COLUMNS[name]
    return frame.loc[:, list(cols)].astype(cols).reset_index(drop=True)


def upsert_previous(store: CuratedStore, frames: dict[str, pd.DataFrame],
                    base: str | None) -> dict[str, pd.DataFrame]:
    """Frames for a commit: the new frames plus the rows of version ``base`` they keep.

    ``base`` is the snapshot the commit will be based on (``None``: an empty store,
    nothing to keep); every read is pinned to it, so the frames are exactly "``base``
    + this delivery" (see :meth:`~quantlib.store.CuratedStore.commit_rebased`). Only
    reads the previous prices when some previously stored asset is missing from the new
    delivery (otherwise the new frames replace everything they cover).
    """
    if base is None:
        return dict(frames)
    delivered = set(frames["assets"]["asset_id"]) | set(frames["prices"]["asset_id"])
    prev_assets = store.read_table("assets", base)
    keep_ids = set(prev_assets["asset_id"]) - delivered
    out = dict(frames)
    if keep_ids:
        for name in ("assets", "symbols", "corporate_actions"):
            prev = store.read_table(name, base)
            kept = prev[prev["asset_id"].isin(keep_ids)]
            out[name] = pd.concat([canonical(name, kept), frames[name]], ignore_index=True)
        # panels of markets this commit does not touch stay as stored; only the
        # markets it rewrites need the kept assets' bars
        market_of = out["assets"].set_index("asset_id")["market"]
        touched = set(market_of.reindex(frames["prices"]["asset_id"].unique()).dropna())
        stored = set(store.markets(base))
        kept_bars = [panel_to_prices(store.open_prices(m, base).load())
                     for m in sorted(touched & stored)]
        kept_bars = [b[b["asset_id"].isin(keep_ids)] for b in kept_bars]
        out["prices"] = pd.concat([*(canonical("prices", b) for b in kept_bars),
                                   frames["prices"]], ignore_index=True)
    if "fx" in frames and not frames["fx"].empty:
        prev_fx = store.read_table("fx", base)
        new_keys = set(zip(frames["fx"]["date"], frames["fx"]["currency"], strict=True))
        mask = [k not in new_keys for k in zip(prev_fx["date"], prev_fx["currency"],
                                               strict=True)]
        out["fx"] = pd.concat([canonical("fx", prev_fx[mask]), frames["fx"]],
                              ignore_index=True)
    elif "fx" in frames:
        out.pop("fx")  # nothing delivered: keep the stored panel as it is
    return out


def market_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    """Quarantined (non-info) rows per market."""
    if quarantine.empty or "market" not in quarantine:
        return {}
    q = quarantine[quarantine["severity"] != "info"] if "severity" in quarantine else quarantine
    return dict(sorted(Counter(q["market"].astype(str)).items()))
