"""One market's slice of a refresh: fetch -> standardize -> validate.

:func:`run_market` is what the refresh fans out as a Dask task, one per market (``FX``
for exchange rates). It is a plain function of picklable arguments that opens its own
raw zone, so it runs the same in a thread, a local process or a remote worker. A batch
over the bad-row threshold is not an exception here: the task returns its outcome
marked ``rejected`` so the refresh can report every market before it raises.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from quantlib.errors import BatchRejectedError, SnapshotNotFoundError, TransientSourceError
from quantlib.pipeline.continuity import StoredTail
from quantlib.pipeline.incremental import (
    changed_deliveries,
    drop_unchanged,
    stored_action_dates,
    stored_listings,
)
from quantlib.raw import Delivery, RawZone
from quantlib.store import CuratedStore
from quantlib.validate import ValidationOutcome

__all__ = ["MarketOutput", "run_market", "run_market_with_retries", "FX"]

FX = "FX"


@dataclass
class MarketOutput:
    """What one market task produced."""

    market: str
    deliveries: list[Delivery]
    outcome: ValidationOutcome
    rejection: BatchRejectedError | None = None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        """Whether validation rejected this market's batch."""
        return self.rejection is not None


def run_market(market: str, store_url: str, connection: Any, fetch_id: str, *,
               max_bad_row_fraction: float | None = None,
               known_assets: Collection[str] = (), fetch_workers: int = 8,
               incremental: bool = False, start: Any = None,
               deliveries: list[Delivery] | None = None) -> MarketOutput:
    """Fetch, standardize and validate one market (or ``"FX"``).

    ``fetch_workers`` parallel FTP connections download the market's files (the
    transfers are latency-bound: many small daily files). With ``incremental`` the
    fetch window starts at ``start`` and only changed deliveries not yet published are
    standardized and validated, with continuity against the stored last bars, and
    re-fetched bars equal to the stored ones are dropped (``rows["unchanged"]``;
    :mod:`quantlib.pipeline.incremental`). ``deliveries`` already fetched into the raw
    zone (a first build that measured its size first, or a daily refresh routed by its
    size: the changed deliveries not yet published, :mod:`quantlib.pipeline.catchup`)
    are neither fetched nor looked up in the manifest again.

    Raises
    ------
    SourceError, StandardizeError
        When the vendor cannot be read or a delivery does not parse (after the
        sources' own retries).
    """
    from quantlib.sources import fetch_fx, fetch_market
    from quantlib.standardize import standardize
    from quantlib.standardize.delta import read_changed
    from quantlib.validate import validate

    raw = RawZone(store_url)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    given = deliveries is not None
    if deliveries is not None:
        pass
    elif market == FX:
        deliveries = fetch_fx(raw=raw, connection=connection, fetch_id=fetch_id, start=start,
                              poll=incremental)
    else:
        deliveries = fetch_market(market, raw=raw, connection=connection, fetch_id=fetch_id,
                                  workers=fetch_workers, start=start, poll=incremental)
    if incremental and not given:   # given ones were chosen so by the catch-up's fetch
        deliveries = changed_deliveries(deliveries, raw.unpublished(deliveries))
    t1 = time.perf_counter()
    held, read = 0, deliveries
    if incremental:   # re-delivered files: only the rows not published before
        delta = read_changed(deliveries, raw)
        batch, held, read = delta.batch, delta.skipped, delta.read
    else:
        batch = standardize(deliveries, raw)
    t2 = time.perf_counter()
    rejection = None
    store = CuratedStore(store_url) if incremental else None
    context, tail = _continuity(store, market, batch) if store is not None else ({}, None)
    try:
        outcome = validate(batch, max_bad_row_fraction=max_bad_row_fraction,
                           known_assets=known_assets, deliveries=read, **context)
    except BatchRejectedError as err:
        rejection = err
        outcome = err.outcome  # type: ignore[attr-defined]
    unchanged = 0
    if store is not None and rejection is None:   # re-fetched bars equal to the stored
        outcome.clean, unchanged = drop_unchanged(store, market, outcome.clean, tail)
    t3 = time.perf_counter()
    seconds = {"fetch": t1 - t0, "standardize": t2 - t1, "validate": t3 - t2}
    rows = {"fetch": sum(d.rows or 0 for d in deliveries), "standardize": batch.n_rows(),
            "validate": outcome.clean.n_rows(), "unchanged": unchanged, "held": held}
    return MarketOutput(market, deliveries, outcome, rejection, rows, seconds)


def _continuity(store: CuratedStore, market: str, batch: Any
                ) -> tuple[dict[str, Any], StoredTail | None]:
    """Validation's context from the store (each delivered asset's last stored close
    before its first bar and date of its last stored bar, the stored actions that can
    explain a jump in this batch, the stored listing facts of its assets), and the stored panel as the batch touches it (read
    again by ``drop_unchanged``); ``({}, None)`` without a stored version."""
    frame = batch.fx if market == FX else batch.prices
    tail = StoredTail.open(store, market) if len(frame) else None
    if market == FX or batch.prices.empty:
        return {}, tail
    try:   # only the actions that can explain a jump in this batch (its assets, dates)
        context: dict[str, Any] = {"stored_actions": stored_action_dates(store, batch.prices)}
    except SnapshotNotFoundError:
        return {}, tail
    if tail is not None:
        context.update(previous=tail.previous_closes(batch.prices),
                       last_bars=tail.last_bars(batch.prices),
                       stored_assets=stored_listings(store, batch.prices))
    return context, tail


def run_market_with_retries(market: str, store_url: str, connection: Any, fetch_id: str,
                            *, retries: int = 1, **kwargs: Any) -> MarketOutput:
    """:func:`run_market`, rerun up to ``retries`` times on a transient source error.

    The sources already retry single files; this retries the whole task (the fetch is
    idempotent, so a rerun only downloads what is missing). Distributed runs use the
    scheduler's own task retries instead.
    """
    attempt = 0
    while True:
        try:
            return run_market(market, store_url, connection, fetch_id, **kwargs)
        except TransientSourceError:
            if attempt >= retries:
                raise
            time.sleep(min(2.0 ** attempt, 5.0))
            attempt += 1
