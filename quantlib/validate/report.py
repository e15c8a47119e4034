"""Validation report: counts per check/source/market, rows in/out, manifest reconciliation;
and :func:`write_report`, which stores quarantine, counts and the report in the store.

Written under the store URL (docs/architecture.md, "Store layout")::

    tables/quarantine/<refresh_id>.parquet   the quarantine rows
    tables/validation/<refresh_id>.parquet   counts per frame, market, source, check
    reports/<refresh_id>.json, reports/<refresh_id>.md
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from quantlib.raw import Delivery, filesystem

if TYPE_CHECKING:
    from quantlib.standardize import CanonicalBatch
    from quantlib.validate.core import ValidationOutcome

__all__ = ["build_report", "summarize", "write_report", "validation_table"]


def _markets(batch: CanonicalBatch, asset_market: pd.Series,
             source_market: dict[str, str]) -> pd.Series:
    from quantlib.validate.core import _row_markets

    parts = [_row_markets(n, f, asset_market, source_market)
             for n, f in batch.frames().items() if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.Series([], dtype="str")


def _reconcile(batch: CanonicalBatch, deliveries: list[Delivery]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], int] = {}
    for frame in batch.frames().values():
        if frame.empty:
            continue
        per = frame.groupby(["source", "file"]).size()
        for key, n in per.items():
            counts[key] = max(counts.get(key, 0), int(n))  # type: ignore[index]
    out = []
    for d in deliveries:
        got = counts.get((d.source, d.file), 0)
        out.append({"source": d.source, "file": d.file, "sha256": d.sha256,
                    "manifest_rows": d.rows, "batch_rows": got,
                    "ok": d.rows is None or d.rows == got})
    return out


def build_report(batch: CanonicalBatch, outcome: ValidationOutcome, limit: float,
                 asset_market: pd.Series, source_market: dict[str, str],
                 deliveries: list[Delivery] | None) -> dict[str, Any]:
    """The report dict (see the module docstring); used by :func:`validate`."""
    q = outcome.quarantine
    bad = q[q["severity"] == "bad"]
    rows_in = {n: len(f) for n, f in batch.frames().items()}
    rows_out = {n: len(f) for n, f in outcome.clean.frames().items()}
    market_rows = _markets(batch, asset_market, source_market).value_counts()
    bad_rows = bad.drop_duplicates(["frame", "source", "file", "row"])
    bad_per_market = bad_rows["market"].value_counts()
    markets: dict[str, dict[str, Any]] = {}
    for m, n in market_rows.items():
        nb = int(bad_per_market.get(m, 0))
        markets[str(m)] = {"rows_in": int(n), "bad_rows": nb,
                           "bad_fraction": nb / int(n) if n else 0.0,
                           "over_threshold": bool(n and nb / int(n) > limit)}
    recon = _reconcile(batch, deliveries) if deliveries is not None else []
    return {
        "rows_in": rows_in, "rows_out": rows_out,
        "rows_in_total": sum(rows_in.values()), "rows_out_total": sum(rows_out.values()),
        "quarantined_rows": len(q[q["severity"] != "info"]),
        "bad_rows": len(bad_rows),
        "by_check": {str(k): int(v) for k, v in q["check"].value_counts().sort_index().items()},
        "by_source": {str(k): int(v) for k, v in
                      q[q["severity"] != "info"]["source"].value_counts().sort_index().items()},
        "by_market": {str(k): int(v) for k, v in
                      q[q["severity"] != "info"]["market"].value_counts().sort_index().items()},
        "markets": markets, "max_bad_row_fraction": limit,
        "rejected_markets": sorted(m for m, s in markets.items() if s["over_threshold"]),
        "reconciliation": {"files": len(recon), "mismatches": [r for r in recon if not r["ok"]]},
    }


def summarize(outcome: ValidationOutcome) -> str:
    """A few lines for humans: rows in/out, quarantine by check, rejected markets."""
    r = outcome.report
    lines = [f"validation: {r['rows_in_total']} rows in, {r['rows_out_total']} clean, "
             f"{r['bad_rows']} bad, {r['quarantined_rows']} quarantined"]
    if r["by_check"]:
        lines.append("by check: " + ", ".join(f"{k}={v}" for k, v in r["by_check"].items()))
    for m, s in sorted(r["markets"].items()):
        lines.append(f"{m}: {s['bad_rows']}/{s['rows_in']} bad ({s['bad_fraction']:.3%})"
                     + (" REJECTED" if s["over_threshold"] else ""))
    mism = r["reconciliation"]["mismatches"]
    if mism:
        lines.append(f"row counts differ from the manifest for {len(mism)} file(s), e.g. "
                     f"{mism[0]['file']}: {mism[0]['batch_rows']} vs {mism[0]['manifest_rows']}")
    return "\n".join(lines)


def validation_table(outcome: ValidationOutcome) -> pd.DataFrame:
    """Counts of quarantined rows per frame, market, source, check and severity."""
    q = outcome.quarantine
    if q.empty:
        return pd.DataFrame({"frame": pd.Series([], dtype="str"),
                             "market": pd.Series([], dtype="str"),
                             "source": pd.Series([], dtype="str"),
                             "check": pd.Series([], dtype="str"),
                             "severity": pd.Series([], dtype="str"),
                             "count": pd.Series([], dtype="int64")})
    return (q.groupby(["frame", "market", "source", "check", "severity"]).size()
            .rename("count").reset_index())


def _markdown(outcome: ValidationOutcome, refresh_id: str) -> str:
    lines = [f"# Validation report `{refresh_id}`", "", "```", outcome.summary, "```", "",
             "| frame | rows in | rows out |", "| --- | ---: | ---: |"]
    for name, n in outcome.report["rows_in"].items():
        lines.append(f"| {name} | {n} | {outcome.report['rows_out'][name]} |")
    q = outcome.quarantine[outcome.quarantine["severity"] != "info"].head(20)
    if len(q):
        lines += ["", "First quarantined rows:", "",
                  "| source | file | row | field | value | check |",
                  "| --- | --- | ---: | --- | --- | --- |"]
        lines += [f"| {r.source} | {r.file} | {r.row} | {r.field} | {r.value} | {r.check} |"
                  for r in q.itertuples()]
    return "\n".join(lines) + "\n"


def write_report(outcome: ValidationOutcome, store_url: str, refresh_id: str) -> dict[str, str]:
    """Write quarantine, counts and report files under the store; returns their paths.

    Examples
    --------
    >>> import tempfile
    >>> from quantlib.standardize import CanonicalBatch
    >>> from quantlib.validate import validate
    >>> out = validate(CanonicalBatch.empty())
    >>> paths = write_report(out, tempfile.mkdtemp(), "r1")
    >>> sorted(k for k in paths)
    ['json', 'markdown', 'quarantine', 'validation']
    """
    fs, root = filesystem(store_url)
    paths = {"quarantine": f"{root}/tables/quarantine/{refresh_id}.parquet",
             "validation": f"{root}/tables/validation/{refresh_id}.parquet",
             "json": f"{root}/reports/{refresh_id}.json",
             "markdown": f"{root}/reports/{refresh_id}.md"}
    blobs = {"quarantine": outcome.quarantine.to_parquet(index=False),
             "validation": validation_table(outcome).to_parquet(index=False),
             "json": json.dumps({"refresh_id": refresh_id, **outcome.report,
                                 "summary": outcome.summary}, indent=2, default=str).encode(),
             "markdown": _markdown(outcome, refresh_id).encode()}
    for key, path in paths.items():
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, blobs[key])
    return paths
