"""The partitioned full build: market x time partition Dask tasks, one atomic commit.

A store's first build (every vendor delivery from the beginning) never holds a
market's whole history in one frame. Step by step:

1. **fetch**: one Dask task per market (and ``FX``) fetches into the raw zone (bytes on
   disk; the task returns delivery records only);
2. **standardize + validate**, started per market as soon as its fetch is done (the
   first markets' work overlaps the slowest vendor's transfers; a build that may still
   turn out small, ``one_frame_below``, waits until the bars fetched so far reach it):
   per market one *reference* task for the tables
   delivered whole (assets, tickers, corporate actions; FX), the statements' read and
   check tasks (:mod:`quantlib.pipeline.statements`: by page group, then by asset
   bucket, spilled; never a market's statements in one frame) and one task
   per *price partition* (:func:`~quantlib.pipeline.partitions.run_partition`, about
   ``partition_rows`` bars of consecutive dated files or API pages), which spills its
   clean bars to ``<store>/tmp/builds/<refresh_id>/`` and returns a summary;
3. **plan** (small, local): the jump check across partition boundaries
   (:func:`~quantlib.pipeline.partitions.boundary_jumps`), the market's bad-row
   fraction over all its partitions (over the limit: nothing is written, the batch is
   rejected as today), the panel's date axis and each time chunk's returns seed;
4. **write**: every market panel is a dask-backed Dataset whose chunks of
   ``chunk_dates`` sessions (the stored chunk height) are built by
   :func:`~quantlib.pipeline.partitions.chunk_grids` from the spilled bars; one task
   per chunk writes all its variables into a forked icechunk session
   (:meth:`~quantlib.store.CuratedStore.commit` with ``panels=``), the forks are
   merged, the tables written (the statements part by part from their spill, and
   exported to Parquet by parts), and ONE commit makes it all visible. A
   process killed before that commit leaves the previous version as it was.

The spill folder carries a heartbeat; a build first removes the spill folders of
builds that stopped beating (killed), :mod:`quantlib.pipeline.spill`. Fetch tasks
``secede`` from a distributed worker's thread pool while they wait on the vendor.

Tasks run on a ``distributed.Client`` when one is given (the same code on a
LocalCluster or a KubeCluster; the spill lives under the store URL, so workers on other
machines read it when the store is on S3), else on dask's threaded scheduler.
"""

from __future__ import annotations

import concurrent.futures
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from quantlib.config import load_config
from quantlib.errors import BatchRejectedError, TransientSourceError
from quantlib.pipeline.merge import canonical, market_counts, merge_outcomes
from quantlib.pipeline.partitions import (
    PartitionResult,
    boundary_jumps,
    chunk_grids,
    is_price_delivery,
    no_rows,
    price_partitions,
    run_partition,
)
from quantlib.pipeline.result import RefreshResult
from quantlib.pipeline.spill import Heartbeat, remove_stale_spills
from quantlib.pipeline.statements import (
    STATEMENT_ROWS,
    StatementCheck,
    check_statements,
    is_statement_delivery,
    n_buckets,
    read_statements,
    statement_groups,
    statement_parts,
)
from quantlib.raw import Delivery, RawZone
from quantlib.store import CuratedStore
from quantlib.store.panels import PRICE_VARS, market_dates
from quantlib.store.schema import empty_frame
from quantlib.validate import ValidationOutcome, write_report

__all__ = ["partitioned_build", "CHUNK_DATES", "PARTITION_ROWS", "ONE_FRAME_MAX_ROWS"]

FX = "FX"
#: rows of a stored panel chunk along ``date`` (the write unit of one task)
CHUNK_DATES = 128
#: bars per price partition (standardize + validate unit)
PARTITION_ROWS = 500_000
#: a first build with more price bars than this is partitioned by default: a market in
#: one frame peaks at about 1.1 KB of RSS per bar (870 MB at 758k bars), so 2M bars is
#: ~2.3 GB, and below it the partitioned build's fixed cost (~6 CPU-s: spill, graphs,
#: imports) is not repaid on 2 cores (bench/RESULTS.md, "Partitioned first build")
ONE_FRAME_MAX_ROWS = 2_000_000


def _fetch_and_fan_out(targets: Sequence[str], url: str, connection: Any, rid: str,
                       tasks: Callable[[str, list[Delivery]], list[Any]],
                       result: RefreshResult, client: Any, scheduler: str,
                       one_frame_below: int, fetch: Callable[..., list[Delivery]] | None = None
                       ) -> tuple[list[list[Delivery]], Any]:
    """Fetch every target; start a market's tasks (``tasks(market, deliveries)``) as
    soon as its fetch is done and the build is known to be partitioned (the bars
    fetched so far reach ``one_frame_below``), so standardizing the first markets
    overlaps the vendors' slowest transfers. Returns the deliveries per target and
    each target's task results (``None``: fewer bars than ``one_frame_below``, nothing
    started). ``fetch(market, url, connection, rid)`` fetches one target (default
    :func:`_fetch`, the whole history)."""
    t0 = time.perf_counter()
    n = len(targets)
    fetched: list[list[Delivery]] = [[] for _ in targets]
    jobs: dict[int, Any] = {}
    waiting: list[int] = []
    bars = 0
    with _Runner(client, scheduler, n) as run:
        for i, deliveries in run.fetches(targets, url, connection, rid, fetch or _fetch):
            fetched[i] = deliveries
            bars += sum(int(d.rows or 0) for d in deliveries
                        if targets[i] != FX and is_price_delivery(d))
            waiting.append(i)
            if bars >= one_frame_below:
                for j in waiting:
                    jobs[j] = run.start(tasks(targets[j], fetched[j]))
                waiting = []
        result.seconds["fetch"] = time.perf_counter() - t0
        if len(jobs) < n:
            return fetched, None
        t1 = time.perf_counter()
        done = [run.result(jobs[i]) for i in range(n)]
    result.seconds["fan_out"] = time.perf_counter() - t1
    return fetched, done


class _Runner:
    """Fetch tasks and each market's task graph on ``client`` (futures) or, without
    one, in local threads (fetches at once; markets' graphs one after the other on
    dask's ``scheduler``, in a background thread)."""

    def __init__(self, client: Any, scheduler: str, n: int) -> None:
        self.client, self.scheduler = client, scheduler
        self.pool, self.graphs = ThreadPoolExecutor(n), ThreadPoolExecutor(1)
        self.futures: list[Any] = []    # a client's, cancelled if the build fails

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self.futures:
            self.client.cancel(self.futures)
        for pool in (self.pool, self.graphs):
            pool.shutdown(wait=True, cancel_futures=True)

    def fetches(self, targets: Sequence[str], url: str, connection: Any, rid: str,
                fetch: Callable[..., list[Delivery]]) -> Iterator[tuple[int, list[Delivery]]]:
        """``(target index, deliveries)`` in the order the fetches finish."""
        if self.client is not None:
            from distributed import as_completed

            futures = self.client.compute([dask.delayed(fetch, pure=False)(
                m, url, connection, rid, dask_key_name=f"{rid}-fetch-{m}") for m in targets])
            self.futures += futures
            index = {f.key: i for i, f in enumerate(futures)}
            for f in as_completed(futures):
                yield index[f.key], f.result()
            return
        local = {self.pool.submit(fetch, m, url, connection, rid): i
                 for i, m in enumerate(targets)}
        for f in concurrent.futures.as_completed(local):
            yield local[f], f.result()

    def start(self, tasks: list[Any]) -> Any:
        """Start one market's tasks; :meth:`result` waits for them."""
        if self.client is not None:
            futures = self.client.compute(tasks)
            self.futures += futures
            return futures
        return self.graphs.submit(dask.compute, *tasks, scheduler=self.scheduler)

    def result(self, job: Any) -> list[Any]:
        if self.client is not None:
            return list(self.client.gather(job))
        return list(job.result())


def _fetch(market: str, store_url: str, connection: Any, fetch_id: str,
           retries: int = 2, **window: Any) -> list[Delivery]:
    """Fetch one target into the raw zone; ``window`` (``start``, ``poll``) goes to the
    source (an incremental catch-up's, :mod:`quantlib.pipeline.catchup`)."""
    raw = RawZone(store_url)
    with _io_bound():
        return _fetch_retried(market, raw, connection, fetch_id, retries, **window)


def _fetch_retried(market: str, raw: RawZone, connection: Any, fetch_id: str,
                   retries: int, **window: Any) -> list[Delivery]:
    from quantlib.sources import fetch_fx, fetch_market

    for attempt in range(retries + 1):
        try:
            if market == FX:
                return fetch_fx(raw=raw, connection=connection, fetch_id=fetch_id, **window)
            return fetch_market(market, raw=raw, connection=connection, fetch_id=fetch_id,
                                workers=8, **window)
        except TransientSourceError:
            if attempt >= retries:
                raise
            time.sleep(min(2.0 ** attempt, 5.0))
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def _io_bound() -> Iterator[None]:
    """On a ``distributed`` worker, give the task's thread slot back while it waits on
    the vendor (``secede``/``rejoin``): every market's fetch runs at once even on
    1-thread workers, as on the threaded scheduler. Elsewhere a no-op."""
    try:
        from distributed import get_worker, rejoin, secede

        get_worker()
    except (ImportError, ValueError):
        yield
        return
    secede()
    try:
        yield
    finally:
        rejoin()


def _reference(store_url: str, deliveries: list[Delivery], known_assets: tuple[str, ...]
               ) -> tuple[ValidationOutcome, Any, dict[str, float]]:
    """Standardize and validate the tables delivered whole; return the outcome, the
    unvalidated assets/actions (the price partitions' validation context) and the
    seconds per stage."""
    from quantlib.standardize import standardize
    from quantlib.validate import validate

    t0 = time.perf_counter()
    batch = standardize(deliveries, RawZone(store_url))
    t1 = time.perf_counter()
    try:
        outcome = validate(batch, max_bad_row_fraction=1.0, known_assets=known_assets,
                           deliveries=deliveries)
    except BatchRejectedError as err:  # pragma: no cover - the limit is 1.0
        outcome = err.outcome  # type: ignore[attr-defined]
    context = batch.replace(**{n: no_rows(f) for n, f in batch.frames().items()
                               if n not in ("assets", "corporate_actions")})
    return outcome, context, {"standardize": t1 - t0, "validate": time.perf_counter() - t1}


def _combine(outcomes: list[ValidationOutcome], extra: pd.DataFrame, limit: float
             ) -> ValidationOutcome:
    """One outcome; per-market counts summed over the parts, the limit applied once."""
    merged = merge_outcomes(outcomes)
    r = merged.report
    markets: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        for m, s in o.report.get("markets", {}).items():
            acc = markets.setdefault(m, {"rows_in": 0, "bad_rows": 0})
            acc["rows_in"] += int(s["rows_in"])
            acc["bad_rows"] += int(s["bad_rows"])
    for m, n in extra["market"].value_counts().items():
        markets.setdefault(str(m), {"rows_in": 0, "bad_rows": 0})["bad_rows"] += int(n)
    for s in markets.values():
        s["bad_fraction"] = s["bad_rows"] / s["rows_in"] if s["rows_in"] else 0.0
        s["over_threshold"] = bool(s["rows_in"] and s["bad_fraction"] > limit)
    r["markets"], r["max_bad_row_fraction"] = markets, limit
    r["rejected_markets"] = sorted(m for m, s in markets.items() if s["over_threshold"])
    if len(extra):
        merged.quarantine = pd.concat([merged.quarantine, extra], ignore_index=True)
        r["bad_rows"] += len(extra)
        r["quarantined_rows"] += len(extra)
        r["rows_out"]["prices"] = r["rows_out"].get("prices", 0) - len(extra)
        r["rows_out_total"] -= len(extra)
        for key, value in (("by_check", "unexplained_jump"), ("by_source", None),
                           ("by_market", None)):
            col = {"by_source": "source", "by_market": "market"}.get(key)
            counts = extra[col].value_counts() if col else pd.Series({value: len(extra)})
            for k, v in counts.items():
                r[key][str(k)] = r[key].get(str(k), 0) + int(v)
    from quantlib.validate.report import summarize

    merged.summary = summarize(merged)
    return merged


def _plan_market(market: str, parts: list[PartitionResult], ids: np.ndarray,
                 actions: pd.DataFrame, dropped: pd.DataFrame, spill_fs: Any,
                 chunk_dates: int, key: str) -> xr.Dataset | None:
    """The market's panel as a dask-backed Dataset, one task per time chunk."""
    parts = [p for p in parts if p.first_date is not None]
    if not parts or len(ids) == 0:
        return None
    parts.sort(key=lambda p: p.first_date)
    first = min(p.first_date for p in parts)
    last = max(p.last_date for p in parts)
    dates = market_dates(market, np.array([first, last], dtype="datetime64[ns]")).to_numpy()
    gone = set(zip(dropped["asset_id"], dropped["date"], strict=True))
    id_index = pd.Index(ids)
    seed = np.full(len(ids), np.nan)
    done = 0   # partitions folded into ``seed``
    # one graph node each, not a copy in every chunk task
    shared = [_literal(v, f"{key}-{market}-{n}") for n, v in
              (("fs", spill_fs), ("ids", ids), ("actions", actions))]
    blocks: dict[str, list[Any]] = {v: [] for v in (*PRICE_VARS, "split", "dividend",
                                                   "returns", "known_at")}
    for j, r0 in enumerate(range(0, len(dates), chunk_dates)):
        d = dates[r0:r0 + chunk_dates]
        lo, hi = pd.Timestamp(d[0]), pd.Timestamp(d[-1])
        while done < len(parts) and parts[done].last_date < lo:
            lc = parts[done].last_clean
            if gone:
                keep = [(a, t) not in gone for a, t in zip(lc["asset_id"], lc["date"],
                                                           strict=True)]
                lc = lc[np.array(keep, dtype=bool)]
            pos = id_index.get_indexer(lc["asset_id"].astype(str))
            seed[pos[pos >= 0]] = lc["close"].to_numpy(dtype="float64")[pos >= 0]
            done += 1
        paths = [p.path for p in parts if p.first_date <= hi and p.last_date >= lo]
        seed_paths = [p.path for p in parts[done:] if p.first_date < lo]
        before = dates[r0 - 1] if r0 else None
        res = dask.delayed(chunk_grids, pure=False)(
            shared[0], paths, seed_paths, d, shared[1], seed.copy(), shared[2], before,
            dropped[(dropped["date"] >= lo) & (dropped["date"] <= hi)],
            dask_key_name=f"{key}-{market}-chunk-{j}")
        for var, out in blocks.items():
            dtype = "int64" if var == "known_at" else "float64"
            out.append(da.from_delayed(dask.delayed(operator.getitem)(res, var),
                                       shape=(len(d), len(ids)), dtype=dtype))
    data = {v: (("date", "asset"), da.concatenate(b, axis=0)) for v, b in blocks.items()}
    ds = xr.Dataset(data, coords={"date": dates, "asset": np.asarray(ids, dtype=str)})
    ds["known_at"].attrs["description"] = "ns since 1970-01-01 UTC; -2**63 = no bar (NaT)"
    ds.attrs["market"] = market
    return ds


def partitioned_build(curated: CuratedStore, targets: Sequence[str], connection: Any,
                      result: RefreshResult, *, client: Any = None,
                      scheduler: str = "threads", max_bad_row_fraction: float | None = None,
                      known_assets: tuple[str, ...] = (), tag: str | None = None,
                      partition_rows: int = PARTITION_ROWS,
                      chunk_dates: int = CHUNK_DATES,
                      one_frame_below: int = 0) -> list[list[Delivery]] | None:
    """Build the store's first version from the vendors' whole history (see the module
    docstring); fills ``result`` like :func:`quantlib.pipeline.refresh`.

    With ``one_frame_below``, a build whose price deliveries hold fewer bars than that
    stops after the fetch and returns the deliveries per target (the caller builds
    them one market per frame); otherwise it returns ``None``.

    Raises
    ------
    BatchRejectedError
        A market's bad rows (all partitions together) are over the limit; nothing was
        committed, the manifest rows say ``rejected`` and the report was written.
    """
    url, rid = curated.url, result.refresh_id
    with spill_run(curated, result, "build") as spill:
        def tasks(m: str, deliveries: list[Delivery]) -> list[Any]:
            return _market_tasks(url, rid, m, deliveries, known_assets, spill,
                                 partition_rows)

        fetched, done = _fetch_and_fan_out(targets, url, connection, rid, tasks,
                                           result, client, scheduler, one_frame_below)
        if done is None:
            return fetched
        _build(curated, targets, fetched, done, result, client=client,
               limit=bad_row_limit(max_bad_row_fraction), tag=tag, spill=spill,
               chunk_dates=chunk_dates)
    return None


def bad_row_limit(max_bad_row_fraction: float | None) -> float:
    """The bad-row fraction a partitioned run rejects a market above: the argument,
    else the configured ``validation.max_bad_row_fraction``."""
    if max_bad_row_fraction is not None:
        return float(max_bad_row_fraction)
    return float(load_config()["validation"]["max_bad_row_fraction"])


@contextmanager
def spill_run(curated: CuratedStore, result: RefreshResult, what: str) -> Iterator[Any]:
    """The run's spill folder (``tmp/builds/<refresh id>``) under a heartbeat: the
    spills of killed runs are removed first (``result.note`` says so) and this run's
    when it ends, however it ends. ``what`` names the run kind in the note."""
    rid = result.refresh_id
    spill = curated.location.child("tmp", "builds", rid)
    stale = remove_stale_spills(curated.location.child("tmp", "builds"), keep=rid)
    if stale:
        result.note = f"removed the spill of {len(stale)} killed {what}(s): {', '.join(stale)}"
    try:
        with Heartbeat(spill):
            yield spill
    finally:
        fs, path = spill.open_fs()
        if fs.exists(path):
            fs.rm(path, recursive=True)


def combined_outcome(url: str, targets: Sequence[str], fetched: list[list[Delivery]],
                     done: list[list[Any]], result: RefreshResult, *, limit: float,
                     seed: Callable[[str, list[PartitionResult]], PartitionResult | None]
                     | None = None
                     ) -> tuple[ValidationOutcome, dict[str, list[PartitionResult]],
                                dict[str, pd.DataFrame], list[Delivery], Any]:
    """The markets' task results (``done``: each market's reference task output, then
    its partitions') joined: boundary jumps per market (after ``seed(market, parts)``,
    a pseudo-partition before the first, when given), the bad-row limit and the stage
    counts. Returns the outcome, the partitions per market in date order, the bars the
    jump check dropped per market, the deliveries and their raw zone.

    Raises
    ------
    BatchRejectedError
        A market is over ``limit``: the deliveries are recorded ``rejected`` and the
        report written first (``err.result`` is ``result``).
    """
    rid = result.refresh_id
    max_jump = float(load_config()["validation"]["max_unexplained_jump"])
    ref_out = [d[0] for d in done]
    part_out: list[PartitionResult] = [p for d in done for p in d[1:]
                                       if isinstance(p, PartitionResult)]
    # the statements' read and check tasks (quantlib.pipeline.statements), if any
    statement_out = [p for d in done for p in d[1:] if not isinstance(p, PartitionResult)]
    contexts = {m: r[1] for m, r in zip(targets, ref_out, strict=True)}
    by_market: dict[str, list[PartitionResult]] = {m: [] for m in targets}
    for p in part_out:
        by_market[p.market].append(p)
    extra, drops = [], {}
    for m in targets:
        parts = by_market[m] = sorted(by_market[m], key=_first)
        first = seed(m, parts) if seed is not None and parts else None
        q, drops[m] = boundary_jumps([first, *parts] if first is not None else parts,
                                     contexts[m].corporate_actions, max_jump, m)
        extra.append(q)
    outcome = _combine([r[0] for r in ref_out] + [p.outcome for p in part_out]
                       + [p.outcome for p in statement_out],
                       pd.concat(extra, ignore_index=True), limit)
    deliveries = [d for ds in fetched for d in ds]
    result.rows["fetch"] = sum(int(d.rows or 0) for d in deliveries)
    _stats(result, outcome, part_out, [r[2] for r in ref_out] + [p.seconds for p in
                                                                 statement_out])
    raw = RawZone(url)
    if outcome.report["rejected_markets"]:
        raw.record(deliveries, status="rejected")
        result.report_paths = write_report(outcome, url, rid)
        from quantlib.validate.core import _rejection

        err = _rejection(outcome, limit)
        err.result = result  # type: ignore[attr-defined]
        raise err
    return outcome, by_market, drops, deliveries, raw


def _build(curated: CuratedStore, targets: Sequence[str], fetched: list[list[Delivery]],
           done: list[list[Any]], result: RefreshResult, *, client: Any, limit: float,
           tag: str | None, spill: Any, chunk_dates: int) -> None:
    """Plan and commit the panels from each market's task results (``done``: the
    reference task's output, then the partitions')."""
    url, rid = curated.url, result.refresh_id
    outcome, by_market, drops, deliveries, raw = combined_outcome(
        url, targets, fetched, done, result, limit=limit)
    frames = {name: canonical(name, f) for name, f in outcome.clean.frames().items()
              if name != "prices"}
    # the statements, by parts (the reference tasks had none to give)
    checks = [p for d in done for p in d[1:] if isinstance(p, StatementCheck)]
    fs = spill.filesystem()
    statements = statement_parts(checks, fs, list(targets))
    n_statements = sum(c.rows["validate"] for c in checks)
    if statements or checks:
        frames.pop("statements")
    assets = frames.get("assets", empty_frame("assets"))
    market_of = assets.drop_duplicates("asset_id", keep="last").set_index("asset_id")["market"]
    panels = {}
    for m in targets:
        ids = np.array(sorted(market_of.index[market_of.to_numpy() == m].astype(str)))
        acts = frames["corporate_actions"]
        panel = _plan_market(m, by_market[m], ids, acts[acts["asset_id"].isin(ids)],
                             drops[m], fs, chunk_dates, rid)
        if panel is not None:
            panels[m] = panel
    t1 = time.perf_counter()
    if not len(frames.get("fx", ())):
        frames.pop("fx", None)
    result.snapshot_id = curated.commit(frames, message=f"{rid}: {', '.join(targets)}",
                                        tag=tag, parent=curated.tip(), panels=panels,
                                        client=client,
                                        statement_parts=statements if checks else None)
    result.seconds["commit"] = time.perf_counter() - t1
    tags = curated.snapshots().set_index("snapshot_id")["tags"]
    result.tag = (tags[result.snapshot_id] or [None])[0]
    result.rows["commit"] = sum(len(f) for f in frames.values()) + n_statements + \
        result.rows["validate"]
    raw.record(deliveries, status="published")
    result.report_paths = write_report(outcome, url, rid)


def _market_tasks(url: str, rid: str, m: str, deliveries: list[Delivery],
                  known_assets: tuple[str, ...], spill: Any, partition_rows: int
                  ) -> list[Any]:
    """The market's ``reference`` task, one task per price partition, then its
    statements' read and check tasks (:mod:`quantlib.pipeline.statements`)."""
    kind = ["price" if m != FX and is_price_delivery(d) else
            "statements" if is_statement_delivery(d) else "reference" for d in deliveries]
    price = [d for d, k in zip(deliveries, kind, strict=True) if k == "price"]
    statements = [d for d, k in zip(deliveries, kind, strict=True) if k == "statements"]
    known = _literal(known_assets, f"{rid}-known-{m}")
    ref = dask.delayed(_reference, pure=False, nout=3)(
        url, _literal([d for d, k in zip(deliveries, kind, strict=True) if k == "reference"],
                      f"{rid}-reference-deliveries-{m}"), known,
        dask_key_name=f"{rid}-reference-{m}")
    parts = [dask.delayed(run_partition, pure=False)(
        m, i, url, _literal(group, f"{rid}-deliveries-{m}-{i}"), ref[1], spill.url, known,
        dask_key_name=f"{rid}-partition-{m}-{i}")
        for i, group in enumerate(price_partitions(price, partition_rows))]
    if not statements:
        return [ref, *parts]
    buckets = n_buckets(statements, STATEMENT_ROWS)
    reads = [dask.delayed(read_statements, pure=False)(
        m, i, url, _literal(group, f"{rid}-statement-deliveries-{m}-{i}"), buckets,
        spill.url, dask_key_name=f"{rid}-statements-read-{m}-{i}")
        for i, group in enumerate(statement_groups(statements, STATEMENT_ROWS))]
    checks = [dask.delayed(check_statements, pure=False)(
        m, b, reads, ref[1], spill.url, known, dask_key_name=f"{rid}-statements-check-{m}-{b}")
        for b in range(buckets)]
    return [ref, *parts, *reads, *checks]


def _literal(value: Any, name: str) -> Any:
    """``value`` as one graph node that dask does not walk into (a list of thousands of
    :class:`~quantlib.raw.Delivery` dataclasses costs seconds to traverse and tokenize
    per task otherwise)."""
    return dask.delayed(value, traverse=False, name=name)


def _first(p: PartitionResult) -> Any:
    return p.first_date if p.first_date is not None else pd.Timestamp.max


def _stats(result: RefreshResult, outcome: ValidationOutcome,
           parts: list[PartitionResult], ref_seconds: list[dict[str, float]]) -> None:
    """Rows and seconds per stage (task seconds summed, like the one-frame build's)."""
    for stage in ("standardize", "validate"):
        result.seconds[stage] = sum(p.seconds.get(stage, 0.0) for p in parts) + \
            sum(s.get(stage, 0.0) for s in ref_seconds)
    result.summary = outcome.summary
    result.quarantine = market_counts(outcome.quarantine)
    report = outcome.report
    result.rows["standardize"] = int(report["rows_in_total"])
    result.rows["validate"] = int(report["rows_out_total"])
    result.rows["partitions"] = len(parts)
    for p in parts:
        pm = result.per_market.setdefault(p.market, {"rows": {}, "seconds": {}})
        for k, v in p.rows.items():
            pm["rows"][k] = pm["rows"].get(k, 0) + v
        for k, s in p.seconds.items():
            pm["seconds"][k] = pm["seconds"].get(k, 0.0) + s
