"""The curated store: one Icechunk repository, one atomic tagged commit per refresh.

Layout inside the repository (see docs/architecture.md, "Store layout")::

    prices/<market>/   (date, asset): open high low close volume split dividend returns known_at
    fx/                (date, currency): rate known_at
    assets/ symbols/ corporate_actions/ statements/   long tables, one 1-D array per column

How a commit works, step by step:

1. open a writable session on branch ``main`` (it starts from the latest commit, so
   any group this refresh does not rewrite keeps its previous content). A caller that
   built its frames from a version it read passes that version as ``parent``; if
   ``main`` has moved since, the commit stops here with
   :class:`~quantlib.errors.WriteConflictError`;
2. write the long tables; statements are append-only: the session's base rows + the
   new rows not already present (key ``asset_id, field, period_end, known_at``);
3. pivot prices per market and write ``prices/<market>`` (and ``fx/``);
4. under the commit lock (:func:`quantlib.store.cas.commit_lock`), ``session.commit``
   - the only step that makes anything visible. Icechunk refuses it when another writer
   committed since step 1 (``WriteConflictError``: nothing of this write is visible).
   A process killed before it leaves the previous version exactly as it was;
5. tag the new snapshot (still under the lock) and export its statements to
   ``tables/statements/<snapshot_id>.parquet`` for SQL (a delta commit exports only
   the rows it appended, ``<snapshot_id>.delta.parquet``).

Writers that merge their data over the latest version use :meth:`CuratedStore.commit_rebased`:
read the tip, build the frames on it, commit with ``parent=tip``; on a conflict re-read
and rebuild on the new tip, a bounded number of times. No writer silently replaces
another's commit.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from quantlib.errors import SnapshotNotFoundError, StoreError, WriteConflictError
from quantlib.store import assetgrid, dategrid, parquet
from quantlib.store.blocks import BlockBars, plan_blocks, write_blocks
from quantlib.store.cas import commit_lock
from quantlib.store.chunkread import dask_panel, native_chunk_dir
from quantlib.store.increment import DeltaActions, write_fx_delta, write_prices_delta
from quantlib.store.location import StoreLocation, resolve_location
from quantlib.store.panels import (
    fx_to_panel,
    panel_to_fx,
    panel_to_prices,
    prices_to_panels,
)
from quantlib.store.schema import FRAME_NAMES, LONG_TABLES, STATEMENT_KEY, empty_frame
from quantlib.store.tables import (
    append_table,
    read_table_group,
    rows_from,
    rows_holding,
    write_table,
    write_table_parts,
)

__all__ = ["CuratedStore", "WRITE_DELAY_ENV", "STORED_ROWS_ATTR", "stored_actions_after"]

#: Test hook: seconds to sleep after each group written during a commit (announcing
#: ``quantlib-store: wrote <group>`` on stderr), so a test can kill the process in the
#: middle of a write. Never set in production.
WRITE_DELAY_ENV = "QUANTLIB_STORE_WRITE_DELAY_S"
#: ``frame.attrs`` key of a reference table given to a delta commit: its first ``n``
#: rows are the stored table as of the commit's parent, so only the rest is appended
#: (:func:`quantlib.pipeline.incremental.upsert_appending`).
STORED_ROWS_ATTR = "stored_rows"
_VAR_ORDER = ("open", "high", "low", "close", "volume", "split", "dividend", "returns", "rate",
              "known_at")
# fixed chunk shape (not capped by the panel's shape), chosen for daily appends and
# reads: an append rewrites the last date chunk only (<= 128 rows); a 20-year column
# is ~40 chunks
_PANEL_CHUNK_DATES = 128
_PANEL_CHUNK_ASSETS = 512


def _pause(written: str) -> None:
    delay = os.environ.get(WRITE_DELAY_ENV)
    if delay:
        print(f"quantlib-store: wrote {written}", file=sys.stderr, flush=True)
        time.sleep(float(delay))


class CuratedStore:
    """The versioned curated store at ``<url>/curated``.

    Parameters
    ----------
    url : str, optional
        Store URL: a local folder or ``s3://bucket/prefix``. ``None`` uses
        ``quantlib.config.load_config().store_url``.

    Examples
    --------
    >>> import tempfile
    >>> st = CuratedStore(tempfile.mkdtemp())
    >>> fx = pd.DataFrame({"date": pd.to_datetime(["2024-01-02"]), "currency": ["KRW"],
    ...                    "rate": [0.00077], "known_at": pd.to_datetime(["2024-01-02 22:00"], utc=True)})
    >>> snap = st.commit({"fx": fx}, message="first", tag="v1")
    >>> st.resolve("v1") == snap
    True
    >>> float(st.open_fx()["rate"].sel(currency="KRW").values[0])
    0.00077
    """

    def __init__(self, url: str | os.PathLike[str] | None = None) -> None:
        self.location: StoreLocation = resolve_location(url)
        self._repo: icechunk.Repository | None = None
        self.last_delta: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"CuratedStore({self.location.url!r})"

    @property
    def url(self) -> str:
        """The store's root URL."""
        return self.location.url

    @property
    def repo(self) -> icechunk.Repository:
        """The Icechunk repository (opened, or created on first use)."""
        if self._repo is None:
            try:
                self._repo = _open_or_create(self.location.icechunk_storage())
            except icechunk.IcechunkError as exc:
                raise StoreError("curated store must be openable", found=str(exc),
                                 fix="check the store URL, S3 endpoint and credentials",
                                 file=self.location.join("curated")) from exc
        return self._repo

    # -- versions -------------------------------------------------------------------
    def snapshots(self) -> pd.DataFrame:
        """Data versions on ``main``, newest first.

        Returns
        -------
        pandas.DataFrame
            Columns ``snapshot_id``, ``tags`` (list of str), ``written_at`` (UTC),
            ``message``. The repository's empty initial commit is not listed.
        """
        tags: dict[str, list[str]] = {}
        for tag in sorted(self.repo.list_tags()):
            tags.setdefault(self.repo.lookup_tag(tag), []).append(tag)
        rows = [{"snapshot_id": info.id, "tags": tags.get(info.id, []),
                 "written_at": pd.Timestamp(info.written_at).tz_convert("UTC"),
                 "message": info.message}
                for info in self.repo.ancestry(branch="main") if info.parent_id is not None]
        frame = pd.DataFrame(rows, columns=["snapshot_id", "tags", "written_at", "message"])
        frame["written_at"] = pd.to_datetime(frame["written_at"], utc=True)
        return frame

    def resolve(self, snapshot: str | None = None) -> str:
        """Snapshot id of a tag, a snapshot id, or (``None``) the latest commit on main.

        Raises
        ------
        SnapshotNotFoundError
            If the tag or id does not exist, or the store has no data version yet.
        """
        if snapshot is None:
            tip = self.repo.lookup_branch("main")
            if self.repo.lookup_snapshot(tip).parent_id is None:
                raise SnapshotNotFoundError(
                    "store must hold at least one data version", found="no commits",
                    fix="run `quantlib data refresh` first", file=self.location.url)
            return tip
        if snapshot in self.repo.list_tags():
            return self.repo.lookup_tag(snapshot)
        try:
            return self.repo.lookup_snapshot(snapshot).id
        except (icechunk.IcechunkError, ValueError) as exc:
            raise SnapshotNotFoundError(
                "snapshot must be an existing tag or snapshot id", found=repr(snapshot),
                fix="list versions with `quantlib data status`", snapshot=snapshot,
                file=self.location.url) from exc

    def _session(self, snapshot: str | None) -> icechunk.Session:
        return self.repo.readonly_session(snapshot_id=self.resolve(snapshot))

    def _root(self, snapshot: str | None) -> zarr.Group:
        return zarr.open_group(self._session(snapshot).store, mode="r")

    # -- reading ----------------------------------------------------------------------
    def markets(self, snapshot: str | None = None) -> list[str]:
        """Markets that have a price panel in a version."""
        root = self._root(snapshot)
        if "prices" not in root:
            return []
        return sorted(cast(zarr.Group, root["prices"]).group_keys())

    def open_prices(self, market: str, snapshot: str | None = None) -> xr.Dataset:
        """Lazy (dask-backed) price panel of one market, dims ``(date, asset)``.

        Raises
        ------
        StoreError
            If the version holds no panel for ``market``.
        """
        session = self._session(snapshot)
        root = zarr.open_group(session.store, mode="r")
        if "prices" not in root or market not in cast(zarr.Group, root["prices"]):
            raise StoreError(f"store must hold a prices panel for market {market}",
                             found=f"markets {self.markets(snapshot)}",
                             fix="refresh that market first", market=market,
                             snapshot=snapshot or session.snapshot_id)
        return self._open_group(session, f"prices/{market}")

    def open_fx(self, snapshot: str | None = None) -> xr.Dataset:
        """Lazy FX panel, dims ``(date, currency)``, variable ``rate`` (base per unit)."""
        session = self._session(snapshot)
        if "fx" not in zarr.open_group(session.store, mode="r"):
            raise StoreError("store must hold an fx panel", found="no fx group",
                             fix="refresh with FX first",
                             snapshot=snapshot or session.snapshot_id)
        return self._open_group(session, "fx")

    def _open_group(self, session: icechunk.Session, group: str) -> xr.Dataset:
        ds = xr.open_zarr(session.store, group=group, consolidated=False, chunks={},
                          zarr_format=3)
        # 2-D variables read by quantlib.store.chunkread (chunk files read and decoded
        # concurrently), one dask task per column block
        ds = dask_panel(session.store, group, ds, str(session.snapshot_id),
                        native_chunk_dir(self.location))
        ordered = [v for v in _VAR_ORDER if v in ds.data_vars]
        ds = ds[ordered + sorted(str(v) for v in ds.data_vars if v not in ordered)]
        ds.attrs["snapshot_id"] = session.snapshot_id
        return ds

    def read_table(self, name: str, snapshot: str | None = None) -> pd.DataFrame:
        """A canonical frame of a version (long tables as stored; ``prices`` and ``fx``
        unpivoted from their panels). A table never written comes back empty with the
        canonical columns.

        Raises
        ------
        StoreError
            For an unknown table name.
        """
        if name not in FRAME_NAMES:
            raise StoreError(f"table must be one of {', '.join(FRAME_NAMES)}",
                             found=repr(name), fix="use a canonical frame name", field=name)
        session = self._session(snapshot)
        root = zarr.open_group(session.store, mode="r")
        if name in LONG_TABLES:
            return read_table_group(root, name) if name in root else empty_frame(name)
        if name == "fx":
            return panel_to_fx(self._open_group(session, "fx").load()) if "fx" in root \
                else empty_frame("fx")
        if "prices" not in root:
            return empty_frame("prices")
        parts = [panel_to_prices(self._open_group(session, f"prices/{m}").load())
                 for m in sorted(cast(zarr.Group, root["prices"]).group_keys())]
        return pd.concat(parts, ignore_index=True) if parts else empty_frame("prices")

    # -- writing ------------------------------------------------------------------------
    def _default_tag(self) -> str:
        base = "refresh-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        existing = self.repo.list_tags()
        tag, n = base, 1
        while tag in existing:
            tag, n = f"{base}-{n}", n + 1
        return tag

    def tip(self) -> str:
        """Snapshot id at the tip of ``main``, as stored now (the repository's empty
        initial commit for a store without data)."""
        return self.repo.lookup_branch("main")

    def is_initial(self, snapshot_id: str) -> bool:
        """Whether ``snapshot_id`` is the repository's empty initial commit."""
        return self.repo.lookup_snapshot(snapshot_id).parent_id is None

    def _base(self, snapshot_id: str) -> zarr.Group | None:
        if self.is_initial(snapshot_id):
            return None
        return zarr.open_group(self.repo.readonly_session(snapshot_id=snapshot_id).store,
                               mode="r")

    def commit(self, frames: Mapping[str, pd.DataFrame], *, message: str,
               tag: str | None = None, parent: str | None = None,
               delta: bool = False, panels: Mapping[str, xr.Dataset] | None = None,
               client: Any = None, price_parts: Sequence[Callable[[], pd.DataFrame]] = (),
               price_blocks: Mapping[str, BlockBars] | None = None,
               statement_parts: Sequence[Callable[[], pd.DataFrame]] | None = None
               ) -> str:
        """Write a whole refresh as ONE atomic, tagged commit; return its snapshot id.

        Parameters
        ----------
        frames : mapping of str to DataFrame
            Canonical frames by name (``assets``, ``symbols``, ``prices``,
            ``corporate_actions``, ``fx``, ``statements``). A name left out keeps its
            previous content; a market absent from ``prices`` keeps its previous panel.
        message : str
            Commit message.
        tag : str, optional
            Tag for the new snapshot (default ``refresh-YYYYMMDDTHHMMSSZ``).
        parent : str, optional
            The snapshot id (:meth:`tip`) the frames were built from. The commit is
            refused if ``main`` is no longer there.
        delta : bool
            The frames are a delta over the version on ``main``
            (:mod:`quantlib.store.increment`): ``prices`` holds only new or corrected
            bars, merged into the stored panels by region (append along ``date``,
            region writes for corrections); ``fx`` only new or corrected rates;
            ``statements`` only rows to append; ``assets``/``symbols``/
            ``corporate_actions``, when given, the full tables of the new version
            (one marked ``attrs[STORED_ROWS_ATTR] = n`` is appended after its first
            ``n`` rows). ``self.last_delta`` then holds the write counts. A delta that
            changes nothing commits nothing: the parent's snapshot id is returned.
        panels : mapping of str to Dataset, optional
            Whole market price panels (``prices/<market>``), usually dask-backed (the
            partitioned build, :mod:`quantlib.pipeline.build`): written chunk by chunk
            by icechunk's dask integration (forked sessions merged into this one) on
            ``client`` (a ``distributed.Client``) or dask's threaded scheduler, in the
            same commit as ``frames``.
        client : distributed.Client, optional
            Where the dask-backed ``panels`` are computed.
        price_parts : sequence of callables, optional
            With ``delta``: more delta bars, one frame per call (a partitioned
            catch-up's partitions, :mod:`quantlib.pipeline.catchup`), merged into the
            panels one after the other in this same session (only one part in memory
            at a time), after ``frames["prices"]``.
        price_blocks : mapping of str to BlockBars, optional
            With ``delta``: per market, delta bars that dask tasks read by date range
            (a partitioned catch-up's spills): the panel is rewritten from its first
            affected row in whole chunks of a full build's date grid
            (:mod:`quantlib.store.blocks`; tasks on ``client`` or dask's threaded
            scheduler), new dates appended in whole blocks. A panel that path cannot
            express gets the bars' ``parts`` merged by region instead.
        statement_parts : sequence of callables, optional
            Without ``delta``, on a version with no statements: the statements table,
            one frame per call (canonical columns, key-unique), written part by part in
            this order (:func:`~quantlib.store.tables.write_table_parts`; only one
            part in memory at a time: the partitioned build,
            :mod:`quantlib.pipeline.statements`) instead of ``frames["statements"]``.

        Raises
        ------
        WriteConflictError
            ``main`` moved away from ``parent``, or another writer committed while this
            one was writing. Nothing is committed then; rebuild on the new tip.
        StoreError
            Unknown frame names, a tag that already exists, prices for an asset not in
            the assets table, or a failed write. Nothing is committed then.
        """
        unknown = sorted(set(frames) - set(FRAME_NAMES))
        if unknown:
            raise StoreError(f"frames must be named {', '.join(FRAME_NAMES)}",
                             found=", ".join(unknown), fix="rename or drop those frames")
        self._check_new_tag(tag)
        session = self.repo.writable_session("main")
        if parent is not None and session.snapshot_id != parent:
            raise self._conflict(parent, session.snapshot_id)
        try:
            base = self._base(session.snapshot_id)
            rows = self._write_delta(session, frames, base, price_parts, price_blocks or {},
                                     client) if delta else \
                self._write_all(session, frames, base, statement_parts)
            if panels:
                rows["panel_cells"] = _write_lazy_panels(session, panels, client)
            if delta and not session.has_uncommitted_changes:
                return session.snapshot_id   # the delta changes nothing: no version
            with commit_lock(self.location):
                self._check_new_tag(tag)
                name = tag or self._default_tag()
                snapshot_id = session.commit(message, metadata={"tag": name, "rows": rows})
                self._create_tag(name, snapshot_id, default=tag is None)
        except icechunk.ConflictError as exc:
            raise self._conflict(session.snapshot_id, self.tip()) from exc
        except icechunk.IcechunkError as exc:
            raise StoreError("commit to the curated store must succeed", found=str(exc),
                             fix="check the store and rerun the refresh; the previous "
                             "version is intact", file=self.location.join("curated")) from exc
        if not delta:   # by parts: the table is never read whole
            parquet.export_statements(self, snapshot_id)
        elif rows.get("statements"):   # only the appended rows (parquet.statements_files)
            root = self._root(snapshot_id)
            n = int(cast(Any, root["statements"].attrs["rows"]))
            fresh = read_table_group(root, "statements",
                                     rows=slice(n - int(rows["statements"]), n))
            parquet.write_table_file(self.location, "statements", f"{snapshot_id}.delta",
                                     fresh)
        return snapshot_id

    def _check_new_tag(self, tag: str | None) -> None:
        if tag is not None and tag in self.repo.list_tags():
            raise StoreError("tag must be new", found=f"tag {tag!r} exists",
                             fix="choose another tag or leave it to the default",
                             snapshot=tag)

    def _conflict(self, based_on: str, tip: str) -> WriteConflictError:
        return WriteConflictError(
            "a commit must be based on the latest version of main",
            found=f"it was built on {based_on} but another writer committed {tip} first",
            fix="nothing of this write was committed; rerun it (refresh and ingest "
            "rebase on the new version by themselves)", file=self.location.join("curated"))

    def _create_tag(self, tag: str, snapshot_id: str, *, default: bool) -> None:
        """Tag a new commit. On S3 (no commit lock) a default tag taken by a concurrent
        writer in the same second gets the next free suffix; an explicit one fails."""
        for n in range(50):
            name = f"{tag}-{n}" if n else tag
            try:
                self.repo.create_tag(name, snapshot_id)
                return
            except icechunk.IcechunkError as exc:
                if name not in self.repo.list_tags():
                    raise
                if not default:
                    raise StoreError("tag must be new", found=f"another writer created "
                                     f"{name!r} first; commit {snapshot_id} is on main "
                                     "untagged", fix="tag it with another name",
                                     snapshot=snapshot_id) from exc
        raise StoreError("a commit must get a free tag", found=f"{tag!r} and its suffixes "
                         "are taken", fix="pass an explicit tag", snapshot=snapshot_id)

    def commit_rebased(self, build: Callable[[str | None], Mapping[str, pd.DataFrame]], *,
                       message: str, tag: str | None = None, attempts: int = 5,
                       delta: bool = False,
                       price_parts: Sequence[Callable[[], pd.DataFrame]] = (),
                       price_blocks: Mapping[str, BlockBars] | None = None,
                       client: Any = None) -> tuple[str, int]:
        """Commit frames built on the latest version; rebuild and retry on a conflict.

        Parameters
        ----------
        build : callable
            ``build(base)`` returns the frames to commit, built on snapshot ``base``
            (``None`` for an empty store). Called again on the new tip after a conflict.
        message, tag, delta, price_parts, price_blocks, client
            As for :meth:`commit`.
        attempts : int
            Commits tried before giving up.

        Returns
        -------
        (str, int)
            The new snapshot id and how many times it was rebased (0: no conflict).

        Raises
        ------
        WriteConflictError
            Other writers won all ``attempts``; nothing of this write was committed.
        """
        for attempt in range(attempts):
            tip = self.tip()
            frames = build(None if self.is_initial(tip) else tip)
            try:
                return self.commit(frames, message=message, tag=tag, parent=tip,
                                   delta=delta, price_parts=price_parts,
                                   price_blocks=price_blocks, client=client), attempt
            except WriteConflictError as exc:
                last = exc
        raise WriteConflictError(
            last.what, found=f"{last.found}; gave up after {attempts} attempts",
            fix="nothing of this write was committed; rerun it when fewer writers are "
            "committing", file=self.location.join("curated"))

    def _write_all(self, session: icechunk.Session, frames: Mapping[str, pd.DataFrame],
                   previous: zarr.Group | None,
                   statement_parts: Sequence[Callable[[], pd.DataFrame]] | None = None
                   ) -> dict[str, int]:
        root = zarr.open_group(session.store, mode="a")
        rows: dict[str, int] = {}
        _write_reference_tables(root, frames, rows)
        if statement_parts is not None:
            if "statements" in frames or (previous is not None and "statements" in previous):
                raise StoreError("statements given by parts must be the version's only "
                                 "statements", found="statements in the frames or stored",
                                 fix="give the statements either as a frame or by parts, "
                                 "to a version without statements", field="statements")
            rows["statements"] = write_table_parts(
                root, "statements", (part() for part in statement_parts),
                empty_frame("statements"))
            _pause("statements")
        elif "statements" in frames:
            # in known_at order: the table's known_at row ranges stay tight, so a delta's
            # freshness check (_fresh_statements) reads the few row chunks its rows' known_at
            # can be in, not the whole history (the partitioned build's parts come in
            # known_at order too: quantlib.pipeline.statements)
            merged = _append_statements(previous, frames["statements"]) \
                .sort_values("known_at", kind="stable", ignore_index=True)
            write_table(root, "statements", merged)
            rows["statements"] = len(merged)
            _pause("statements")
        if "prices" in frames:
            assets = frames["assets"] if "assets" in frames else _stored(previous, "assets")
            actions = frames["corporate_actions"] if "corporate_actions" in frames else \
                _stored(previous, "corporate_actions")
            for market, ds in prices_to_panels(frames["prices"], assets, actions).items():
                _write_panel(session, f"prices/{market}", ds)
                _pause(f"prices/{market}")
            rows["prices"] = len(frames["prices"])
        if "fx" in frames:
            _write_panel(session, "fx", fx_to_panel(frames["fx"]))
            rows["fx"] = len(frames["fx"])
        return rows


    def _write_delta(self, session: icechunk.Session, frames: Mapping[str, pd.DataFrame],
                     previous: zarr.Group | None,
                     price_parts: Sequence[Callable[[], pd.DataFrame]] = (),
                     price_blocks: Mapping[str, BlockBars] | None = None, client: Any = None
                     ) -> dict[str, int]:
        """Write a delta (see :meth:`commit`); only the affected regions are written."""
        root = zarr.open_group(session.store, mode="a")
        rows: dict[str, int] = {}
        _write_reference_tables(root, frames, rows, append=True)
        new = frames.get("statements")
        if new is not None and len(new):
            fresh = _fresh_statements(previous, new)
            if len(fresh):
                append_table(root, "statements", fresh)
                _pause("statements")
            rows["statements"] = len(fresh)
        prices = frames.get("prices")
        parts = [*([lambda: prices] if prices is not None and len(prices) else []),
                 *price_parts]
        blocks = dict(price_blocks or {})
        if parts or blocks or "corporate_actions" in frames:
            assets = frames["assets"] if "assets" in frames else _stored(previous, "assets")
            actions = _delta_actions(previous, frames)
            plans, fallback = plan_blocks(root, blocks, assets, actions)
            parts += [part for m in fallback for part in blocks[m].parts]
            if parts or "corporate_actions" in frames:
                rows.update(_write_price_parts(session, parts, assets,
                                               _without_markets(actions, assets,
                                                                {p.market for p in plans})))
                _pause("prices")
            if plans:
                base = self.repo.readonly_session(snapshot_id=session.snapshot_id)
                for key, n in write_blocks(session, base, plans, client).items():
                    rows[key] = rows.get(key, 0) + n
                rows["prices"] = rows.get("prices", 0) + sum(blocks[p.market].rows
                                                             for p in plans)
                _pause("prices blocks")
        fx = frames.get("fx")
        # a catch-up (blocks) writes its FX dates in a full build's grid too
        if fx is not None and len(fx) and not write_fx_delta(session, fx, sealed=bool(blocks)):
            old = _stored_fx(previous)
            merged = fx if old.empty else pd.concat([old, fx], ignore_index=True) \
                .drop_duplicates(["date", "currency"], keep="last")
            _write_panel(session, "fx", fx_to_panel(merged))
        if fx is not None and len(fx):
            rows["fx"] = len(fx)
        self.last_delta = rows
        return rows


def _delta_actions(previous: zarr.Group | None, frames: Mapping[str, pd.DataFrame]
                   ) -> DeltaActions:
    """The corporate actions a delta's price regions need
    (:class:`~quantlib.store.increment.DeltaActions`): a delivered table as given (what
    changed: its appended rows when it is marked ``attrs[STORED_ROWS_ATTR]``, else its
    diff with the stored table); without one, the stored table read from the asked ex
    date on only (its ``ex_date`` row ranges), nothing changed."""
    actions = frames.get("corporate_actions")
    if actions is not None:
        kept = actions.attrs.get(STORED_ROWS_ATTR)
        if kept is not None:   # the stored rows + rows appended: no read, no diff
            return DeltaActions.of_table(actions, added=len(actions) - int(kept))
        return DeltaActions.of_table(actions, _stored(previous, "corporate_actions"))
    return DeltaActions(lambda after: stored_actions_after(previous, after),
                        empty_frame("corporate_actions"))


def stored_actions_after(root: zarr.Group | None, after: Any,
                         columns: list[str] | None = None) -> pd.DataFrame:
    """The stored corporate actions (``columns`` of them) with an ex date after
    ``after`` (``None``: all): reads only the row ranges whose ``ex_date`` span reaches
    past it (:func:`~quantlib.store.tables.rows_from`; the whole table when it keeps
    no such ranges)."""
    if root is None or "corporate_actions" not in root:
        frame = empty_frame("corporate_actions")
        return frame if columns is None else frame.loc[:, columns]
    slices = None if after is None else \
        rows_from(root, "corporate_actions", pd.Timestamp(after) + pd.Timedelta(1, "ns"),
                  "ex_date")
    cols = columns if columns is None or "ex_date" in columns else [*columns, "ex_date"]
    parts = [read_table_group(root, "corporate_actions", columns=cols, rows=rows)
             for rows in (slices if slices is not None else [slice(None)])] or \
        [read_table_group(root, "corporate_actions", columns=cols, rows=slice(0, 0))]
    got = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if after is not None:
        got = got[(got["ex_date"] > pd.Timestamp(after)).to_numpy()]
    return got.reset_index(drop=True) if columns is None else \
        got.loc[:, columns].reset_index(drop=True)


def _write_price_parts(session: icechunk.Session, parts: Sequence[Callable[[], pd.DataFrame]],
                       assets: pd.DataFrame, actions: DeltaActions) -> dict[str, int]:
    """Merge delta bars part by part (:func:`~quantlib.store.increment.write_prices_delta`
    each; the actions that changed are rewritten with the first part only, later parts
    see them as stored). Returns the summed write counts."""
    rows = {"prices": 0}
    later = DeltaActions(actions.after, actions.changed.iloc[:0])
    for i, part in enumerate(parts or [lambda: empty_frame("prices")]):
        bars = part()
        stats = write_prices_delta(session, bars, assets, actions if i == 0 else later,
                                   _write_panel)
        rows["prices"] += len(bars)
        for key, n in stats.items():
            rows[key] = rows.get(key, 0) + n
        if len(parts) > 1:
            _pause("prices part")
    return rows


def _without_markets(actions: DeltaActions, assets: pd.DataFrame, markets: set[str]
                     ) -> DeltaActions:
    """``actions`` whose changed rows leave out those of assets of ``markets``."""
    if not markets or actions.changed.empty:
        return actions
    market_of = assets.drop_duplicates("asset_id", keep="last").set_index("asset_id")["market"]
    of = market_of.reindex(actions.changed["asset_id"].astype(str)).to_numpy()
    keep = ~np.isin(of.astype(str), sorted(markets))
    return DeltaActions(actions.after, actions.changed[keep].reset_index(drop=True))


def _stored_fx(previous: zarr.Group | None) -> pd.DataFrame:
    if previous is None or "fx" not in previous:
        return pd.DataFrame()
    ds = xr.open_zarr(previous.store, group="fx", consolidated=False, zarr_format=3)
    return panel_to_fx(ds.load())


def _fresh_statements(previous: zarr.Group | None, new: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``new`` whose key is not stored yet: reads the stored key columns of only
    the row ranges whose ``known_at`` span holds one of the new rows' ``known_at``
    (:func:`~quantlib.store.tables.rows_holding`; a day's filings are newer than every
    stored row, so usually none), the whole key columns for a table without ranges."""
    new = new.drop_duplicates(STATEMENT_KEY).reset_index(drop=True)
    if previous is None or "statements" not in previous:
        return new
    slices = rows_holding(previous, "statements", new["known_at"])
    if slices == []:     # no stored row range can hold these known_at: all fresh
        return new
    parts = [read_table_group(previous, "statements", columns=STATEMENT_KEY, rows=rows)
             for rows in (slices if slices is not None else [slice(None)])]
    old = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if old.empty:
        return new
    key_new = pd.MultiIndex.from_frame(
        new[STATEMENT_KEY].astype({c: old[c].dtype for c in STATEMENT_KEY}))
    return new[~key_new.isin(pd.MultiIndex.from_frame(old))].reset_index(drop=True)


def _stored(previous: zarr.Group | None, name: str) -> pd.DataFrame:
    if previous is None or name not in previous:
        return empty_frame(name)
    return read_table_group(previous, name)


def _append_statements(previous: zarr.Group | None, new: pd.DataFrame) -> pd.DataFrame:
    """Previous statement rows + new rows whose key is not already stored."""
    old = _stored(previous, "statements")
    if old.empty:
        return new.drop_duplicates(STATEMENT_KEY).reset_index(drop=True)
    new = new.astype({c: old[c].dtype for c in old.columns if c in new.columns})
    key_old = pd.MultiIndex.from_frame(old[STATEMENT_KEY])
    key_new = pd.MultiIndex.from_frame(new[STATEMENT_KEY])
    fresh = new[~key_new.isin(key_old)].drop_duplicates(STATEMENT_KEY)
    return pd.concat([old, fresh], ignore_index=True)


def _panel_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Chunks of every variable, and the fill values new assets rely on
    (:func:`quantlib.store.assetgrid.fill_encoding`)."""
    fills = assetgrid.fill_encoding(ds)
    return {str(v): {"chunks": (_PANEL_CHUNK_DATES, _PANEL_CHUNK_ASSETS),
                     **fills.get(str(v), {})} for v in ds.data_vars}


def _write_panel(session: icechunk.Session, group: str, ds: xr.Dataset) -> None:
    encoding = _panel_encoding(ds)
    ds.to_zarr(session.store, group=group, mode="w", consolidated=False, zarr_format=3,
               encoding=encoding)
    dategrid.seal(zarr.open_group(session.store, path=group, mode="a"))


def _write_lazy_panels(session: icechunk.Session, panels: Mapping[str, xr.Dataset],
                       client: Any) -> int:
    """Write whole price panels (dask-backed, every variable chunked alike along
    ``date``): the arrays' metadata and coordinates first, then ONE task per date block
    of every market writes all variables of that block into a forked session; the forks
    are merged into ``session`` (icechunk's collaborative writes). One task per block
    rather than per variable and block (``icechunk.xarray.to_icechunk``): a block's
    inputs are computed once and far fewer sessions are pickled and merged."""
    import dask

    tasks: list[Any] = []
    for market, ds in panels.items():
        group = f"prices/{market}"
        encoding = _panel_encoding(ds)
        template = xr.Dataset({v: (ds[v].dims, _empty_dask(ds[v])) for v in ds.data_vars},
                              coords=ds.coords, attrs=ds.attrs)
        for v in ds.data_vars:
            template[v].attrs = ds[v].attrs
        template.to_zarr(session.store, group=group, mode="w", compute=False,
                         consolidated=False, zarr_format=3, encoding=encoding)
        # the date grid is set while the arrays are still empty, so the partly filled
        # last block is written once, exactly sized (sealing after the writes rewrote it)
        dategrid.seal(zarr.open_group(session.store, path=group, mode="a"))
        tasks.append((group, ds))
    fork = session.fork()
    writes = []
    for group, ds in tasks:
        names = [str(v) for v in ds.data_vars]
        start = 0
        for j, n in enumerate(ds.chunks["date"]):
            blocks = {v: ds[v].data.blocks[j] for v in names}
            writes.append(dask.delayed(_write_block, pure=False)(
                fork, group, start, blocks, dask_key_name=f"write-{group}-{j}-{id(ds)}"))
            start += n
    with dask.config.set(scheduler=client if client is not None else "threads"):
        forks = dask.compute(*writes) if writes else ()
    session.merge(*{id(f): f for f in forks}.values())
    for group, _ in tasks:
        dategrid.seal(zarr.open_group(session.store, path=group, mode="a"))
        _pause(group)
    return sum(int(ds["close"].size) for _, ds in tasks)


def _empty_dask(var: xr.DataArray) -> Any:
    """A lazy array shaped like ``var`` (never computed: its metadata is all we write)."""
    import dask.array as da

    return da.empty(var.shape, dtype=var.dtype, chunks=var.data.chunks)


def _write_block(fork: Any, group: str, start: int, blocks: Mapping[str, Any]) -> Any:
    """Write one date block of every variable of ``group`` into ``fork``; return it."""
    root = zarr.open_group(fork.store, path=group, mode="a")
    for var, values in blocks.items():
        cast(zarr.Array, root[var])[start:start + values.shape[0]] = values
    return fork


def _write_reference_tables(root: zarr.Group, frames: Mapping[str, pd.DataFrame],
                            rows: dict[str, int], *, append: bool = False) -> None:
    """Replace the tables delivered whole (assets, symbols, corporate actions; the
    actions are stored in ``ex_date`` order, so a reader of the recent ones reads only
    the last row ranges: :func:`stored_actions_after`). With
    ``append`` (a delta commit), a frame marked ``attrs[STORED_ROWS_ATTR] = n`` whose
    first ``n`` rows are the stored table (same row count) gets only its rows after
    ``n`` appended (the stored chunks are not rewritten)."""
    for name in ("assets", "symbols", "corporate_actions"):
        if name not in frames:
            continue
        frame, n = frames[name], frames[name].attrs.get(STORED_ROWS_ATTR)
        if append and n is not None and name in root and \
                int(cast(Any, root[name].attrs["rows"])) == n:
            append_table(root, name, frame.iloc[n:])
            rows[name] = len(frame) - n
        else:   # actions in ex date order: their ex_date row ranges stay narrow
            write_table(root, name, frame if name != "corporate_actions" else
                        frame.sort_values(["ex_date", "asset_id"], kind="stable")
                        .reset_index(drop=True))
            rows[name] = len(frame)
        _pause(name)


def _open_or_create(storage: icechunk.Storage, attempts: int = 5) -> icechunk.Repository:
    """Open the repository, creating it when absent; safe when several processes race.

    Two writers that find no repository both try to create it; the object store lets one
    win (a conditional write) and the other gets an error although the repository now
    exists. That one opens the winner's repository instead of failing.
    """
    for attempt in range(attempts):
        try:
            return icechunk.Repository.open_or_create(storage)
        except icechunk.IcechunkError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
            if icechunk.Repository.exists(storage):
                try:
                    return icechunk.Repository.open(storage)
                except icechunk.IcechunkError:
                    continue  # created but not complete yet: try again
    raise AssertionError("unreachable")  # pragma: no cover
