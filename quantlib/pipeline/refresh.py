"""Refresh: vendors -> raw zone -> canonical -> validated -> ONE curated-store commit.

Step by step:

1. with ``sandbox=True``, start the vendor sandbox (configured size) in a child process
   (:mod:`quantlib.pipeline.sandboxproc`) and use its connection; it is stopped at the
   end whatever happens;
2. fan out one Dask task per market (and one for ``FX``): fetch into the raw zone,
   standardize, validate (:func:`quantlib.pipeline.tasks.run_market`). With a
   ``distributed.Client`` the tasks run on its workers with scheduler retries; without
   one, dask's threaded scheduler runs them with in-task retries;
3. merge the outcomes. If any market's batch was rejected: mark this run's manifest
   rows ``rejected``, write the validation report, raise :class:`BatchRejectedError`:
   nothing is committed;
4. otherwise upsert the clean frames over the previous version and commit them to the
   curated store as one tagged snapshot; mark manifest rows ``published``. A store
   that holds a version gets an incremental refresh (unless ``full=True``): step 2
   fetches from a look-back window before the last stored session and keeps only
   deliveries not yet published, and step 4 is a delta commit that writes only the
   affected regions (:mod:`quantlib.pipeline.incremental`). A first build or an
   incremental refresh whose deliveries exceed the one-frame bound runs partitioned
   by market x time chunk instead (:mod:`quantlib.pipeline.build`,
   :mod:`quantlib.pipeline.catchup`), still ONE commit;
5. write the validation report (quarantine, counts, JSON and Markdown).
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import numpy as np
import zarr
from tqdm.auto import tqdm

from quantlib.config import load_config
from quantlib.errors import BatchRejectedError, SnapshotNotFoundError
from quantlib.markets import DEFAULT_MARKETS
from quantlib.pipeline.incremental import fetch_windows, publish_delta, tag_of
from quantlib.pipeline.merge import canonical, market_counts, merge_outcomes, upsert_previous
from quantlib.pipeline.result import RefreshResult
from quantlib.pipeline.tasks import FX, MarketOutput, run_market, run_market_with_retries
from quantlib.raw import RawZone
from quantlib.store import CuratedStore
from quantlib.store.tables import read_table_group
from quantlib.validate import ValidationOutcome, write_report

__all__ = ["refresh", "new_refresh_id", "publish_outcome"]


def new_refresh_id(kind: str = "refresh") -> str:
    """A sortable, unique run id such as ``refresh-20260101T120000Z-1a2b3c``."""
    return f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _fan_out(markets: Sequence[str], store_url: str, connection: Any, fetch_id: str,
             client: Any, bar: Any, scheduler: str = "threads",
             starts: dict[str, Any] | None = None,
             fetched: dict[str, Any] | None = None, **kwargs: Any) -> list[MarketOutput]:
    starts, fetched = starts or {}, fetched or {}
    if client is not None:
        from distributed import as_completed

        futures = [client.submit(run_market, m, store_url, connection, fetch_id, retries=2,
                                 pure=False, key=f"{fetch_id}-{m}", start=starts.get(m),
                                 deliveries=fetched.get(m), **kwargs)
                   for m in markets]
        for _ in as_completed(futures):
            bar.update(1)
        return list(client.gather(futures))
    import dask
    from dask.callbacks import Callback

    class _Progress(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
            bar.update(1)

    tasks = [dask.delayed(run_market_with_retries, pure=False)(
        m, store_url, connection, fetch_id, start=starts.get(m),
        deliveries=dask.delayed(fetched.get(m), traverse=False, name=f"{fetch_id}-got-{m}"),
        **kwargs) for m in markets]
    workers = len(tasks) if scheduler == "threads" else min(len(tasks), os.cpu_count() or 1)
    with _Progress():
        return list(dask.compute(*tasks, scheduler=scheduler, num_workers=workers))


def _known_assets(store: CuratedStore) -> frozenset[str]:
    """The stored asset ids (the one column of the assets table), one set per refresh:
    every market's validation uses it as is (a frozenset is also a single literal in a
    dask graph, never walked per item)."""
    try:
        root = zarr.open_group(store.repo.readonly_session(snapshot_id=store.resolve()).store,
                               mode="r")
    except SnapshotNotFoundError:
        return frozenset()
    if "assets" not in root:
        return frozenset()
    ids = read_table_group(root, "assets", columns=["asset_id"])["asset_id"]
    return frozenset(np.asarray(ids.dropna().astype(str), dtype=object))


def _rejected_error(outputs: list[MarketOutput], report_md: str) -> BatchRejectedError:
    first = next(o for o in outputs if o.rejected)
    err = first.rejection
    markets = ", ".join(o.market for o in outputs if o.rejected)
    fix = (err.fix + "; " if err is not None and err.fix else "") + \
        f"nothing was published (rejected: {markets}); see {report_md}"
    return BatchRejectedError(err.what if err else "batch must pass validation",
                              found=err.found if err else None, fix=fix,
                              **(err.context if err else {}))


def publish_outcome(store: CuratedStore, raw: RawZone, outcome: ValidationOutcome,
                    deliveries: list, *, refresh_id: str, message: str,
                    tag: str | None = None, result: RefreshResult | None = None
                    ) -> tuple[str, str | None, int]:
    """Upsert a validated outcome over the latest version, commit, mark the manifest.

    The frames are merged over the version read and committed on that version only
    (:meth:`~quantlib.store.CuratedStore.commit_rebased`): if another writer commits
    first, they are merged again over its version and the commit retried (counted in
    ``result.rebases``); after 5 lost races it raises
    :class:`~quantlib.errors.WriteConflictError` and nothing is committed.

    Returns ``(snapshot_id, tag, rows committed)``.
    """
    frames = {name: canonical(name, f) for name, f in outcome.clean.frames().items()}
    committed: dict[str, dict[str, Any]] = {}

    def build(base: str | None) -> dict[str, Any]:
        committed["frames"] = upsert_previous(store, frames, base)
        return committed["frames"]

    snapshot_id, rebases = store.commit_rebased(build, message=message, tag=tag)
    if result is not None:
        result.rebases = rebases
    raw.record(deliveries, status="published")
    return snapshot_id, tag_of(store, snapshot_id), \
        sum(len(f) for f in committed["frames"].values())


def refresh(store: str | None = None, *, markets: Sequence[str] = DEFAULT_MARKETS,
            connection: Any = None, sandbox: bool = False, client: Any = None,
            progress: bool = False, max_bad_row_fraction: float | None = None,
            n_assets: int | None = None, years: float | None = None,
            tag: str | None = None, scheduler: str = "threads", full: bool = False,
            lookback_sessions: int | None = None, partitioned: bool | None = None,
            partition_rows: int | None = None) -> RefreshResult:
    """Fetch, validate and commit a new data version of ``markets`` (plus FX).

    Parameters
    ----------
    store : str, optional
        Store URL (default: configured store).
    markets : sequence of str
        Markets to refresh; FX is always refreshed with them.
    connection : object, optional
        Vendor connection (``ftp_host, ftp_port, ftp_user, ftp_password, http_url,
        api_key``); default: the environment or the sandbox state file.
    sandbox : bool
        Start the vendor sandbox (config ``sandbox.*``, or ``n_assets``/``years``) in a
        child process for this refresh and stop it afterwards.
    client : distributed.Client, optional
        Run the per-market tasks on this cluster (with task retries).
    progress : bool
        Show progress bars.
    max_bad_row_fraction : float, optional
        Per-market bad-row limit (default: config ``validation.max_bad_row_fraction``).
    n_assets, years : optional
        Sandbox size per market (only with ``sandbox=True``).
    tag : str, optional
        Tag of the new version (default ``refresh-YYYYMMDDTHHMMSSZ``).
    scheduler : {"threads", "processes"}
        Dask local scheduler when no ``client`` is given. ``"processes"`` runs the
        market tasks in a process pool (no shared GIL with the caller; each process pays
        the import cost once).
    full : bool
        Re-read the whole vendor history and rewrite the panels. By default a store
        that already holds a version gets an *incremental* refresh
        (:mod:`quantlib.pipeline.incremental`): only new or changed deliveries are
        standardized and validated, and only the affected regions are written.
    lookback_sessions : int, optional
        Sessions before the last stored one that an incremental refresh re-fetches
        (vendor corrections; default: config ``refresh.lookback_sessions``).
    partitioned : bool, optional
        ``True``: the first build of an empty store runs as market x time-partition Dask
        tasks (:mod:`quantlib.pipeline.build`: no market's history in one frame, panels
        written chunk by chunk, one commit), for universes whose history does not fit
        one process; an incremental refresh runs as a partitioned *catch-up*
        (:mod:`quantlib.pipeline.catchup`: the same tasks over what the vendors
        delivered since the last refresh, then one delta commit written partition by
        partition). ``False`` processes each market in one task and one frame (the
        path ``full=True`` on a store with data takes). ``None`` (default): the
        refresh fetches, then is partitioned when the vendors delivered more than
        :data:`quantlib.pipeline.build.ONE_FRAME_MAX_ROWS` price bars (changed ones,
        for an incremental refresh: a long catch-up), else runs one market per frame
        on the deliveries it fetched.
    partition_rows : int, optional
        Bars per price partition of a partitioned build or catch-up (default
        :data:`quantlib.pipeline.build.PARTITION_ROWS`).

    Returns
    -------
    RefreshResult

    Raises
    ------
    BatchRejectedError
        Some market's batch had too many bad rows: nothing was committed, the manifest
        rows of this run say ``rejected`` and the report was written.
    SourceError, StandardizeError, StoreError
        The vendor, a delivery or the store failed; nothing was committed.
    """
    t_start = time.perf_counter()
    curated = CuratedStore(store)
    curated.location.check_writable()
    refresh_id = new_refresh_id()
    targets = [*dict.fromkeys(markets), FX]
    result = RefreshResult(refresh_id, markets=targets)
    known = _known_assets(curated)
    incremental = not full and bool(known)
    result.mode = "incremental" if incremental else "full"
    lookback = int(lookback_sessions if lookback_sessions is not None
                   else load_config()["refresh"]["lookback_sessions"])
    starts = fetch_windows(curated, targets, lookback) if incremental else {}
    with ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(targets) + 1, desc="refresh", unit="step",
                                       disable=not progress))
        if sandbox:
            connection = _start_sandbox(stack, result, tuple(markets), n_assets, years)
        fetched = None
        if partitioned is not False and (incremental or curated.is_initial(curated.tip())):
            fetched = _partitioned(curated, targets, connection, result, client=client,
                                   scheduler=scheduler, tag=tag,
                                   max_bad_row_fraction=max_bad_row_fraction,
                                   partition_rows=partition_rows, auto=partitioned is None,
                                   catch_up={"starts": starts, "known_assets": known}
                                   if incremental else None)
            if fetched is None:
                result.seconds["total"] = time.perf_counter() - t_start
                bar.update(len(targets) + 1)
                return result
        t0 = time.perf_counter()
        outputs = _fan_out(targets, curated.url, connection, refresh_id, client, bar,
                           scheduler=scheduler, max_bad_row_fraction=max_bad_row_fraction,
                           known_assets=known, starts=starts,
                           incremental=incremental, fetched=fetched)
        result.seconds["fan_out"] = time.perf_counter() - t0
        try:
            _finish(curated, result, outputs, tag)
        finally:
            result.seconds["total"] = time.perf_counter() - t_start
        bar.update(1)
    return result


def _partitioned(curated: CuratedStore, targets: list[str], connection: Any,
                 result: RefreshResult, *, partition_rows: int | None, auto: bool,
                 catch_up: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any] | None:
    """The partitioned first build or, with ``catch_up`` (the incremental windows and
    known assets), the partitioned catch-up of a store that holds a version; with
    ``auto``, a small one returns its fetched deliveries per target instead (run one
    market per frame by the caller)."""
    from quantlib.pipeline import build
    from quantlib.pipeline.catchup import partitioned_catchup

    run: Any = build.partitioned_build if catch_up is None else \
        functools.partial(partitioned_catchup, **catch_up)
    fetched = run(curated, targets, connection, result,
                  partition_rows=partition_rows or build.PARTITION_ROWS,
                  one_frame_below=build.ONE_FRAME_MAX_ROWS if auto else 0, **kwargs)
    return None if fetched is None else dict(zip(targets, fetched, strict=True))


def _start_sandbox(stack: ExitStack, result: RefreshResult, markets: tuple[str, ...],
                   n_assets: int | None, years: float | None) -> Any:
    from quantlib.pipeline.sandboxproc import sandbox_process

    t0 = time.perf_counter()
    sb_cfg = load_config()["sandbox"]
    connection = stack.enter_context(sandbox_process(
        n_assets=int(n_assets or sb_cfg["n_assets"]), years=float(years or sb_cfg["years"]),
        seed=int(sb_cfg["seed"]), end=str(sb_cfg["end"]), markets=markets))
    result.seconds["sandbox"] = time.perf_counter() - t0
    return connection


def _finish(curated: CuratedStore, result: RefreshResult, outputs: list[MarketOutput],
            tag: str | None) -> None:
    """Merge, then either reject (report, raise) or commit, mark published and report."""
    _collect_stats(result, outputs)
    outcome = merge_outcomes(o.outcome for o in outputs)
    deliveries = [d for o in outputs for d in o.deliveries]
    result.summary = outcome.summary
    result.quarantine = market_counts(outcome.quarantine)
    raw = RawZone(curated.url)
    if any(o.rejected for o in outputs):
        raw.record(deliveries, status="rejected")
        result.report_paths = write_report(outcome, curated.url, result.refresh_id)
        err = _rejected_error(outputs, result.report_paths["markdown"])
        err.result = result  # type: ignore[attr-defined]
        raise err
    t0 = time.perf_counter()
    message = f"{result.refresh_id}: {', '.join(result.markets)}"
    if result.mode == "incremental" and outcome.clean.n_rows() == 0:
        raw.record(deliveries, status="published")
        result.note = "nothing new at the vendor: no new version committed"
    elif result.mode == "incremental":
        publish_delta(curated, raw, outcome, deliveries, message=message + " (incremental)",
                      tag=tag, result=result)
    else:
        result.snapshot_id, result.tag, result.rows["commit"] = publish_outcome(
            curated, raw, outcome, deliveries, refresh_id=result.refresh_id,
            message=message, tag=tag, result=result)
    result.seconds["commit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result.report_paths = write_report(outcome, curated.url, result.refresh_id)
    result.seconds["report"] = time.perf_counter() - t0


def _collect_stats(result: RefreshResult, outputs: list[MarketOutput]) -> None:
    for o in outputs:
        result.per_market[o.market] = {"rows": dict(o.rows), "seconds": dict(o.seconds)}
        for stage, n in o.rows.items():
            result.rows[stage] = result.rows.get(stage, 0) + n
        for stage, s in o.seconds.items():
            result.seconds[stage] = result.seconds.get(stage, 0.0) + s
