"""Ingest a file drop (e.g. the bokeh-sampledata stocks, ``yahoo-csv``) as a new version.

The drop goes through the same stages as a vendor refresh: raw zone (content hash,
manifest), standardize, validate, then one commit that upserts its assets over the
previous version (everything else stays as it was).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd

from quantlib.errors import BatchRejectedError, StandardizeError
from quantlib.pipeline.merge import market_counts
from quantlib.pipeline.refresh import _known_assets, new_refresh_id, publish_outcome
from quantlib.pipeline.result import RefreshResult
from quantlib.raw import Delivery, RawZone
from quantlib.standardize import CanonicalBatch
from quantlib.store import CuratedStore
from quantlib.validate import validate, write_report

__all__ = ["ingest", "bokeh_stocks_path"]


def bokeh_stocks_path() -> str:
    """Path of the ``stocks.csv.gz`` file shipped by ``bokeh-sampledata``.

    Examples
    --------
    >>> bokeh_stocks_path().endswith("stocks.csv.gz")
    True
    """
    from bokeh_sampledata import package_path

    return str(package_path("stocks.csv.gz"))


def _standardize(deliveries: list[Delivery], raw: RawZone,
                 standardize: Callable[[list[Delivery], RawZone], CanonicalBatch]
                 ) -> CanonicalBatch:
    """Standardize a drop; an empty file is a what/found/fix error naming the file."""
    empty = [d for d in deliveries if d.bytes == 0]
    try:
        if empty:
            raise pd.errors.EmptyDataError("0 bytes")
        return standardize(deliveries, raw)
    except pd.errors.EmptyDataError as exc:
        raw.record(deliveries, status="failed")
        bad = empty[0] if empty else None
        raise StandardizeError(
            "a file drop must hold a header row (and data rows)",
            found=f"an empty file ({bad.bytes} bytes)" if bad else f"no columns ({exc})",
            fix="check the export that produced it and deliver it again",
            source=bad.source if bad else None,
            file=bad.file if bad else ", ".join(d.file for d in deliveries)) from exc


def ingest(path_or_url: str, fmt: str = "yahoo-csv", market: str = "US",
           store: str | None = None, *, max_bad_row_fraction: float | None = None,
           tag: str | None = None) -> RefreshResult:
    """Ingest a file or folder drop and commit a new version that adds its assets.

    Parameters
    ----------
    path_or_url : str
        A file or folder, local or an fsspec URL.
    fmt : str
        Reader name (``yahoo-csv``).
    market : str
        Market the drop belongs to.
    store : str, optional
        Store URL (default: configured store).
    max_bad_row_fraction : float, optional
        Bad-row limit (default: config ``validation.max_bad_row_fraction``).
    tag : str, optional
        Tag of the new version.

    Returns
    -------
    RefreshResult
        ``snapshot_id`` is ``None`` (and ``note`` says why) when the drop holds no data
        rows: nothing is committed then.

    Raises
    ------
    BatchRejectedError
        The drop had too many bad rows; nothing was committed, the report was written.
    StandardizeError
        A file of the drop is empty (not even a header).
    StoreError
        The store cannot be written, or other writers won every commit attempt.
    """
    from quantlib.sources import ingest_files
    from quantlib.standardize import standardize

    t_start = time.perf_counter()
    curated = CuratedStore(store)
    curated.location.check_writable()
    raw = RawZone(curated.url)
    refresh_id = new_refresh_id("ingest")
    result = RefreshResult(refresh_id, markets=[market])
    t0 = time.perf_counter()
    deliveries = ingest_files(str(path_or_url), fmt, market, raw=raw, fetch_id=refresh_id)
    t1 = time.perf_counter()
    batch = _standardize(deliveries, raw, standardize)
    t2 = time.perf_counter()
    try:
        outcome = validate(batch, max_bad_row_fraction=max_bad_row_fraction,
                           known_assets=_known_assets(curated), deliveries=deliveries)
    except BatchRejectedError as err:
        raw.record(deliveries, status="rejected")
        write_report(err.outcome, curated.url, refresh_id)  # type: ignore[attr-defined]
        raise
    t3 = time.perf_counter()
    result.rows = {"fetch": sum(d.rows or 0 for d in deliveries),
                   "standardize": batch.n_rows(), "validate": outcome.clean.n_rows()}
    result.seconds = {"fetch": t1 - t0, "standardize": t2 - t1, "validate": t3 - t2}
    if outcome.clean.n_rows() == 0:  # a header-only drop: no new version
        result.note = (f"nothing committed: {path_or_url} holds no data rows "
                       f"({len(deliveries)} file(s), headers only); the store is unchanged")
        result.report_paths = write_report(outcome, curated.url, refresh_id)
        result.summary = outcome.summary
        result.seconds["total"] = time.perf_counter() - t_start
        return result
    result.snapshot_id, result.tag, result.rows["commit"] = publish_outcome(
        curated, raw, outcome, deliveries, refresh_id=refresh_id,
        message=f"{refresh_id}: file drop {path_or_url} ({fmt}, {market})", tag=tag,
        result=result)
    result.seconds["commit"] = time.perf_counter() - t3
    result.report_paths = write_report(outcome, curated.url, refresh_id)
    result.summary = outcome.summary
    result.quarantine = market_counts(outcome.quarantine)
    result.seconds["total"] = time.perf_counter() - t_start
    return result
