"""The partitioned catch-up: an incremental refresh too large for one frame per market.

A store whose last session is far behind the vendor's (a week, a month, a year without
a refresh) gets more delivered bars than one frame per market should hold. Such a
refresh (``partitioned=None`` and more changed price bars than
:data:`~quantlib.pipeline.build.ONE_FRAME_MAX_ROWS`, or ``partitioned=True``) runs by
market x time partition, as the first build does (:mod:`quantlib.pipeline.build`,
whose fetch, task and spill machinery it reuses). Step by step:

1. **fetch**: one task per target from its incremental window (``start``, polling:
   exactly the daily refresh's fetch), keeping the changed deliveries not yet
   published (:func:`~quantlib.pipeline.incremental.changed_deliveries`). The
   vendors' price deliveries come in date order (daily or monthly files; API pages
   sorted by date, for a ``start`` window and for ``updated_since`` alike), so
   consecutive price deliveries are time chunks. Below the size bound the
   deliveries go back to the one-frame incremental path (not fetched twice);
2. **standardize + validate**: per market one *reference* task (the tables delivered
   whole, FX) and one task per price partition
   (:func:`~quantlib.pipeline.partitions.run_partition`), each validated with the
   market's delivered and stored assets and the stored corporate actions from the
   window's start (the context a one-frame batch gets), its clean bars spilled to
   ``<store>/tmp/builds/<refresh_id>/``;
3. **continuity**: each asset's first bar of the catch-up is checked against its last
   stored close (:func:`~quantlib.pipeline.incremental.previous_closes`) and each
   partition's first bar against the previous partition's last
   (:func:`~quantlib.pipeline.partitions.boundary_jumps`): together the jump checks
   of one batch. The market's bad-row fraction is taken over all its partitions;
   over the limit nothing is committed and the batch is rejected as today;
4. **one delta commit**: :func:`~quantlib.pipeline.incremental.publish_delta` with the
   reference tables and, per market, the partitions' spills as ``price_blocks``
   (:class:`SpilledMarket`): each panel is rewritten from its first affected row (a
   correction, a late action's ex date, the partly filled last stored block) in whole
   chunks of a full build's date grid, one dask task per date block reading the spilled
   bars of its dates (:mod:`quantlib.store.blocks`), as the first build writes its
   panels; ONE icechunk session, then ONE commit. No compaction is needed after it.
   A panel the block path cannot express (:mod:`quantlib.store.increment`'s
   fallbacks) gets its partitions merged by region, one after the other. Only one
   date block's bars and grids per task are in memory.

A catch-up killed before its commit leaves the previous version as it was; the manifest
rows of its deliveries never say ``published``, so the next refresh standardizes them
again, and it removes the killed run's spill (it stopped beating,
:mod:`quantlib.pipeline.spill`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import zarr

from quantlib.errors import SnapshotNotFoundError
from quantlib.pipeline import build
from quantlib.pipeline.incremental import changed_deliveries, previous_closes, publish_delta
from quantlib.pipeline.partitions import (
    PartitionResult,
    is_price_delivery,
    price_partitions,
    read_spilled,
    run_partition,
)
from quantlib.pipeline.result import RefreshResult
from quantlib.raw import Delivery, RawZone
from quantlib.store import CuratedStore
from quantlib.store.blocks import BarArrays
from quantlib.store.schema import empty_frame
from quantlib.store.tables import read_table_group
from quantlib.validate import ValidationOutcome, write_report

__all__ = ["partitioned_catchup", "SpilledMarket"]

FX = "FX"


def partitioned_catchup(curated: CuratedStore, targets: Sequence[str], connection: Any,
                        result: RefreshResult, *, starts: Mapping[str, Any],
                        known_assets: tuple[str, ...], client: Any = None,
                        scheduler: str = "threads",
                        max_bad_row_fraction: float | None = None, tag: str | None = None,
                        partition_rows: int = build.PARTITION_ROWS,
                        one_frame_below: int = 0) -> list[list[Delivery]] | None:
    """Catch a store up with the vendors by market x time partition (see the module
    docstring); fills ``result`` like :func:`quantlib.pipeline.refresh`.

    With ``one_frame_below``, a catch-up whose changed price deliveries hold fewer bars
    than that stops after the fetch and returns the deliveries per target (the caller
    runs the one-frame incremental refresh on them); otherwise it returns ``None``.

    Raises
    ------
    BatchRejectedError
        A market's bad rows (all partitions together) are over the limit; nothing was
        committed, the manifest rows say ``rejected`` and the report was written.
    """
    url, rid = curated.url, result.refresh_id
    stored: list[tuple[pd.DataFrame, pd.DataFrame]] = []   # read once, when partitioned
    with build.spill_run(curated, result, "run") as spill:
        def tasks(m: str, deliveries: list[Delivery]) -> list[Any]:
            if not stored:
                stored.append(_stored_context(curated, starts))
            return _market_tasks(url, rid, m, deliveries, known_assets, spill,
                                 partition_rows, stored[0])

        fetch = functools.partial(_fetch_changed, starts=dict(starts))
        fetched, done = build._fetch_and_fan_out(
            targets, url, connection, rid, tasks, result, client, scheduler,
            one_frame_below, fetch=fetch)
        if done is None:
            return fetched
        _commit(curated, targets, fetched, done, result,
                limit=build.bad_row_limit(max_bad_row_fraction), tag=tag, spill=spill,
                client=client)
    return None


def _fetch_changed(market: str, url: str, connection: Any, rid: str, *,
                   starts: Mapping[str, Any]) -> list[Delivery]:
    """The daily refresh's fetch of one target: from its window, polling, only the
    changed deliveries not yet published."""
    deliveries = build._fetch(market, url, connection, rid, start=starts.get(market),
                              poll=True)
    return changed_deliveries(deliveries, RawZone(url).unpublished(deliveries))


def _stored_context(curated: CuratedStore, starts: Mapping[str, Any]
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored assets (with provenance columns, as validation reads them) and the
    stored corporate actions (``asset_id, ex_date``) from the earliest window start."""
    assets, actions = empty_frame("assets"), empty_frame("corporate_actions")
    try:
        root = zarr.open_group(curated.repo.readonly_session(
            snapshot_id=curated.resolve()).store, mode="r")
    except SnapshotNotFoundError:
        root = None
    if root is not None and "assets" in root:
        assets = read_table_group(root, "assets")
    if root is not None and "corporate_actions" in root:
        actions = read_table_group(root, "corporate_actions", columns=["asset_id", "ex_date"])
        first = [pd.Timestamp(s) for s in starts.values() if s is not None]
        if first:
            actions = actions[actions["ex_date"] >= min(first)]
    assets = assets.assign(source="store", file="curated/assets",
                           row=pd.array(range(1, len(assets) + 1), dtype="Int64"))
    return assets.reset_index(drop=True), actions.loc[:, ["asset_id", "ex_date"]] \
        .reset_index(drop=True)


def _reference(url: str, deliveries: list[Delivery], known_assets: tuple[str, ...],
               assets: pd.DataFrame, actions: pd.DataFrame
               ) -> tuple[ValidationOutcome, Any, dict[str, float]]:
    """The build's reference task; the partitions' context gets the stored assets the
    delivery did not replace and the stored actions besides the delivered ones."""
    outcome, context, seconds = build._reference(url, deliveries, known_assets)
    mine = context.assets
    kept = assets[~assets["asset_id"].isin(set(mine["asset_id"].astype(str)))]
    acts = pd.concat([actions, context.corporate_actions.loc[:, ["asset_id", "ex_date"]]],
                     ignore_index=True)
    both = pd.concat([mine, kept], ignore_index=True) if len(mine) else kept
    return outcome, context.replace(assets=both, corporate_actions=acts), seconds


def _market_tasks(url: str, rid: str, m: str, deliveries: list[Delivery],
                  known_assets: tuple[str, ...], spill: Any, partition_rows: int,
                  stored: tuple[pd.DataFrame, pd.DataFrame]) -> list[Any]:
    """The market's ``reference`` task, then one task per price partition."""
    is_price = [m != FX and is_price_delivery(d) for d in deliveries]
    price = [d for d, p in zip(deliveries, is_price, strict=True) if p]
    assets, actions = stored
    mine = assets[assets["market"] == m]
    known = build._literal(known_assets, f"{rid}-known-{m}")
    ref = dask.delayed(_reference, pure=False, nout=3)(
        url, build._literal([d for d, p in zip(deliveries, is_price, strict=True) if not p],
                            f"{rid}-reference-deliveries-{m}"), known,
        build._literal(mine, f"{rid}-stored-assets-{m}"),
        build._literal(actions[actions["asset_id"].isin(set(mine["asset_id"]))],
                       f"{rid}-stored-actions-{m}"),
        dask_key_name=f"{rid}-reference-{m}")
    return [ref, *(dask.delayed(run_partition, pure=False)(
        m, i, url, build._literal(group, f"{rid}-deliveries-{m}-{i}"), ref[1], spill.url,
        known, dask_key_name=f"{rid}-partition-{m}-{i}")
        for i, group in enumerate(price_partitions(price, partition_rows)))]


def _stored_seed(curated: CuratedStore, market: str, parts: list[PartitionResult]
                 ) -> PartitionResult | None:
    """A pseudo-partition before the catch-up's first: its last bars are each asset's
    last stored close before its first bar of the catch-up (continuity)."""
    firsts = [p.first_rest.loc[:, ["asset_id", "date"]] for p in parts if len(p.first_rest)]
    if not firsts:
        return None
    first = pd.concat(firsts, ignore_index=True).groupby("asset_id", as_index=False)["date"] \
        .min()
    prev = previous_closes(curated, market, first)
    if prev.empty:
        return None
    rest = prev.assign(source="store", file="curated", row=0)
    return PartitionResult(market, -1, "", None, None, rest.iloc[:0], rest,
                           prev, cast(ValidationOutcome, None), [])


def _commit(curated: CuratedStore, targets: Sequence[str], fetched: list[list[Delivery]],
            done: list[list[Any]], result: RefreshResult, *, limit: float,
            tag: str | None, spill: Any, client: Any = None) -> None:
    """Continuity, the bad-row limit, then ONE delta commit of every partition."""
    url, rid = curated.url, result.refresh_id
    outcome, by_market, drops, deliveries, raw = build.combined_outcome(
        url, targets, fetched, done, result, limit=limit,
        seed=lambda m, parts: _stored_seed(curated, m, parts))
    fs = spill.filesystem()
    blocks = {m: SpilledMarket.of(fs, [p for p in by_market[m] if p.first_date is not None],
                                  drops[m]) for m in targets}
    blocks = {m: b for m, b in blocks.items() if b is not None}
    t0 = time.perf_counter()
    if not blocks and outcome.clean.n_rows() == 0:
        raw.record(deliveries, status="published")
        result.note = "nothing new at the vendor: no new version committed"
    else:
        publish_delta(curated, raw, outcome, deliveries,
                      message=f"{rid}: {', '.join(targets)} (catch-up)", tag=tag,
                      result=result, price_blocks=blocks, client=client)
    result.seconds["commit"] = time.perf_counter() - t0
    result.report_paths = write_report(outcome, url, rid)


@dataclass
class SpilledMarket:
    """A market's catch-up bars in its partitions' spill files, read by date range by
    the commit's block tasks (:class:`~quantlib.store.blocks.BlockBars`); ``parts``
    are the same bars one partition per call (the region path's, for a panel the block
    path cannot express; not pickled)."""

    market: str
    fs: Any
    paths: list[str]
    spans: list[tuple[np.datetime64, np.datetime64]]
    dropped: pd.DataFrame
    rows: int
    parts: list[Callable[[], pd.DataFrame]]

    @classmethod
    def of(cls, fs: Any, parts: list[PartitionResult], dropped: pd.DataFrame
           ) -> SpilledMarket | None:
        """The bars of ``parts`` (in date order, a later one wins), less ``dropped``;
        ``None`` without bars."""
        if not parts:
            return None
        spans = [(np.datetime64(p.first_date, "ns"), np.datetime64(p.last_date, "ns"))
                 for p in parts]
        return cls(parts[0].market, fs, [p.path for p in parts], spans,
                   dropped.loc[:, ["asset_id", "date"]].reset_index(drop=True),
                   sum(int(p.rows.get("validate", 0)) for p in parts) - len(dropped),
                   [_spilled(fs, p.path, dropped) for p in parts])

    @property
    def first(self) -> np.datetime64:
        return min(a for a, _ in self.spans)

    @property
    def last(self) -> np.datetime64:
        return max(b for _, b in self.spans)

    def read(self, lo: np.datetime64, hi: np.datetime64, ids: pd.Index) -> BarArrays:
        """The bars dated ``lo..hi`` (inclusive)."""
        paths = [p for p, (a, b) in zip(self.paths, self.spans, strict=True)
                 if a <= hi and b >= lo]
        return read_spilled(self.fs, paths, lo, hi, ids, self.dropped)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "parts": []}


def _spilled(fs: Any, path: str, dropped: pd.DataFrame) -> Callable[[], pd.DataFrame]:
    """A partition's clean bars, read back from its spill file (Arrow IPC,
    :func:`~quantlib.pipeline.partitions.run_partition`) when called, less the bars the
    boundary jump check removed."""
    def read() -> pd.DataFrame:
        with fs.open(path, "rb") as f:
            bars = pa.ipc.open_file(f).read_all().to_pandas()
        bars["asset_id"] = bars["asset_id"].astype(str)
        if len(dropped) and len(bars):
            gone = pd.MultiIndex.from_frame(dropped.loc[:, ["asset_id", "date"]])
            bars = bars[~pd.MultiIndex.from_frame(bars.loc[:, ["asset_id", "date"]])
                        .isin(gone)]
        return bars.sort_values(["asset_id", "date"], kind="stable").reset_index(drop=True)
    return read
