"""The incremental refresh: fetch, standardize, validate and write only what is new.

Step by step (one Dask task per market, as for a full refresh):

1. **window**: from the stored panel's last date, the fetch window starts
   ``refresh.lookback_sessions`` sessions earlier (vendor corrections of recent bars
   are re-fetched); dated FTP files outside it are not even listed, API price pages
   are asked for ``start=`` that date (:func:`fetch_windows`);
2. **changed deliveries only**: FTP files whose sidecar hash is already in the raw zone
   are not downloaded; of what the vendor serves now, only *changed groups* are
   standardized (:func:`changed_deliveries`): a dated file that is new or changed,
   or every page/file of a non-dated table (master, tickers, actions, fundamentals)
   when any of them changed (a table is replaced as a whole, so it must be read whole);
3. **continuity**: validation gets each delivered asset's last stored close before its
   first new bar (:func:`previous_closes`, reading only the tail of the ``close``
   array) and the stored corporate actions, so the jump check sees the same previous
   bar as a full build would;
4. **one delta commit** (:func:`publish_delta`): the clean rows, upserted over the tip
   by :meth:`~quantlib.store.CuratedStore.commit_rebased` with ``delta=True`` (append
   along ``date``, region writes for corrections; the expected-parent check and the
   rebase-and-retry on a conflict are the same as a full refresh's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
import zarr

from quantlib import calendars
from quantlib.errors import SnapshotNotFoundError
from quantlib.pipeline.continuity import StoredTail
from quantlib.pipeline.merge import canonical
from quantlib.pipeline.result import RefreshResult
from quantlib.raw import Delivery, RawZone
from quantlib.raw.zone import POLLED_QUERY
from quantlib.standardize import CanonicalBatch, empty_frame
from quantlib.standardize.api import endpoint_of
from quantlib.store import CuratedStore
from quantlib.store.curated import STORED_ROWS_ATTR, stored_actions_after
from quantlib.store.increment import last_stored_date
from quantlib.store.tables import read_table_group
from quantlib.validate import ValidationOutcome
from quantlib.validate.checks import member_of

__all__ = ["fetch_windows", "changed_deliveries", "previous_closes", "publish_delta",
           "upsert_table", "upsert_appending", "drop_unchanged", "tag_of",
           "stored_action_dates", "stored_listings", "delta_frames", "upsert_keyed",
           "polled_rows", "ACTION_KEY"]

FX = "FX"
#: the key of a corporate action: a polled row replaces the stored rows of its key
ACTION_KEY = ("asset_id", "ex_date", "kind")
_NONE = {name: canonical(name, empty_frame(name)) for name in
         ("assets", "symbols", "corporate_actions")}


def fetch_windows(store: CuratedStore, markets: Sequence[str], lookback: int
                  ) -> dict[str, pd.Timestamp | None]:
    """First date each market's incremental fetch asks for (``None``: whole history).

    ``lookback`` sessions before the market's last stored date (FX: before the last
    stored FX date, counted on the union of the markets' sessions). Reads one element
    of each panel's ``date`` coordinate (:func:`~quantlib.store.increment.last_stored_date`).
    """
    out: dict[str, pd.Timestamp | None] = {m: None for m in markets}
    try:
        root = zarr.open_group(store.repo.readonly_session(snapshot_id=store.resolve()).store,
                               mode="r")
    except SnapshotNotFoundError:
        return out
    for m in markets:
        group = "fx" if m == FX else f"prices/{m}"
        last = last_stored_date(cast(zarr.Group, root[group])) if group in root else None
        cal = [c for c in markets if c != FX and c in calendars.MARKETS] if m == FX else [m]
        if last is None or not cal:
            continue
        days = calendars.global_sessions(cal, last - pd.Timedelta(days=3 * lookback + 10),
                                         last)
        days = days[days <= last]
        out[m] = pd.Timestamp(days[-(lookback + 1)] if len(days) > lookback else days[0]) \
            if len(days) else last
    return out


def tag_of(store: CuratedStore, snapshot_id: str) -> str | None:
    """The tag a refresh commit got (its metadata's tag, or the suffixed one a race gave
    it); looks up only the tags of that name, never the whole version history."""
    meta = store.repo.lookup_snapshot(snapshot_id).metadata or {}
    name = meta.get("tag")
    if not isinstance(name, str):
        return None
    for tag in sorted(t for t in store.repo.list_tags()
                      if t == name or t.startswith(name + "-")):
        if store.repo.lookup_tag(tag) == snapshot_id:
            return tag
    return None


def _group_of(d: Delivery) -> tuple[str, str]:
    """Deliveries replaced together: one dated file, or all pages of one query."""
    if d.file.startswith("api/"):
        endpoint, query = endpoint_of(d.file)
        query.pop("page", None)
        return d.source, endpoint + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))
    return d.source, d.file


def changed_deliveries(current: Sequence[Delivery], new: Sequence[Delivery]
                       ) -> list[Delivery]:
    """The deliveries of ``current`` in a group (see :func:`_group_of`) with a new member.

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-02", tz="UTC")
    >>> def d(file, sha):
    ...     return Delivery("api-us", "US", file, "api-json", sha * 64, 1, 1, t, "f", "")
    >>> cur = [d("api/v1/securities?market=US&page=1", "a"),
    ...        d("api/v1/securities?market=US&page=2", "b"),
    ...        d("api/v1/tickers?market=US&page=1", "c")]
    >>> [x.file for x in changed_deliveries(cur, [cur[1]])]
    ['api/v1/securities?market=US&page=1', 'api/v1/securities?market=US&page=2']
    """
    hot = {_group_of(d) for d in new}
    return [d for d in current if _group_of(d) in hot]


def previous_closes(store: CuratedStore, market: str, prices: pd.DataFrame
                    ) -> pd.DataFrame:
    """Each asset's last stored close before its first bar in ``prices``.

    Reads the stored ``date``/``asset`` coordinates and, backwards from each first-bar
    row, only as much of ``close`` as it takes to find a bar (never the whole panel;
    :meth:`~quantlib.pipeline.continuity.StoredTail.previous_closes`). Returns
    ``asset_id, date, close`` (assets without a stored bar before are left out).
    """
    tail = StoredTail.open(store, market) if len(prices) else None
    if tail is None:
        return pd.DataFrame({"asset_id": pd.Series([], dtype="str"),
                             "date": pd.Series([], dtype="datetime64[ns]"),
                             "close": pd.Series([], dtype="float64")})
    return tail.previous_closes(prices)


def stored_action_dates(store: CuratedStore, prices: pd.DataFrame) -> pd.DataFrame:
    """The stored corporate actions (``asset_id, ex_date``) that can explain a jump in
    ``prices``: those of its assets on or after its first date (the jump check matches
    an action's ex date to a bar's date). Reads two columns of only the stored row
    ranges whose ex dates reach the first date
    (:func:`~quantlib.store.curated.stored_actions_after`), not the whole table.
    """
    empty = pd.DataFrame({"asset_id": pd.Series([], dtype="str"),
                          "ex_date": pd.Series([], dtype="datetime64[ns]")})
    root = zarr.open_group(store.repo.readonly_session(snapshot_id=store.resolve()).store,
                           mode="r")
    if prices.empty or "corporate_actions" not in root:
        return empty
    first = pd.Timestamp(prices["date"].min())
    ca = stored_actions_after(root, first - pd.Timedelta(1, "ns"),
                              columns=["asset_id", "ex_date"])
    keep = member_of(ca["asset_id"], frozenset(prices["asset_id"].astype(str).unique()))
    return ca.loc[keep].reset_index(drop=True)


def stored_listings(store: CuratedStore, prices: pd.DataFrame) -> pd.DataFrame:
    """The stored listing facts (``asset_id, market, listed, delisted``) of the assets
    of ``prices``: the missing-session check's, for assets the batch does not deliver
    (a re-delivered master is read for its changed assets only,
    :mod:`quantlib.standardize.delta`). Reads four columns of the assets table (one row
    per asset, whatever the history)."""
    cols = ["asset_id", "market", "listed", "delisted"]
    root = zarr.open_group(store.repo.readonly_session(snapshot_id=store.resolve()).store,
                           mode="r")
    if prices.empty or "assets" not in root:
        return pd.DataFrame({c: [] for c in cols})
    a = read_table_group(root, "assets", columns=cols)
    keep = member_of(a["asset_id"], frozenset(prices["asset_id"].astype(str).unique()))
    return a.loc[keep].reset_index(drop=True)


def drop_unchanged(store: CuratedStore, market: str, batch: CanonicalBatch,
                   tail: StoredTail | None = None) -> tuple[CanonicalBatch, int]:
    """The batch without the bars (or FX rows) the store already holds with the same
    values and ``known_at``, and how many were dropped.

    A look-back window re-fetches recent bars to catch corrections; the ones that did
    not change must not make a new version. Reads only the stored cells of the
    delivered (asset, date) pairs (FX: (currency, date)) from ``tail`` (the panel as
    the task's continuity read it; opened at the tip when not given).
    """
    name = "fx" if market == FX else "prices"
    frame = batch.fx if market == FX else batch.prices
    if frame.empty:
        return batch, 0
    tail = tail if tail is not None else StoredTail.open(store, market)
    if tail is None:
        return batch, 0
    same = tail.unchanged(frame)
    dropped = int(same.sum())
    if not dropped:
        return batch, 0
    return batch.replace(**{name: frame[~same].reset_index(drop=True)}), dropped


def upsert_table(stored: pd.DataFrame, delivered: pd.DataFrame) -> pd.DataFrame:
    """The stored rows of assets the delivered table does not cover, then the delivered
    rows (a delivered table is complete for the assets it names)."""
    if stored.empty:
        return delivered
    kept = stored[~stored["asset_id"].isin(delivered["asset_id"].unique())]
    return pd.concat([kept, delivered], ignore_index=True)


def upsert_appending(stored: pd.DataFrame, delivered: pd.DataFrame) -> pd.DataFrame:
    """:func:`upsert_table` written as an append where it can be: when every stored row
    of the delivered assets is among the delivered rows (the vendor only added rows:
    a new action, a new asset), the result is the stored table followed by the
    delivered rows it lacks, marked ``attrs[STORED_ROWS_ATTR] = len(stored)`` so the
    delta commit appends them instead of rewriting the table (the same rows as
    :func:`upsert_table`, in another order). A stored row the delivery changed or
    dropped falls back to :func:`upsert_table` (rewritten whole, no mark).

    Examples
    --------
    >>> old = pd.DataFrame({"asset_id": ["A", "B"], "value": [1.0, 2.0]})
    >>> new = pd.DataFrame({"asset_id": ["B", "B", "C"], "value": [2.0, 3.0, 4.0]})
    >>> out = upsert_appending(old, new)
    >>> out["value"].tolist(), out.attrs[STORED_ROWS_ATTR]
    ([1.0, 2.0, 3.0, 4.0], 2)
    >>> STORED_ROWS_ATTR in upsert_appending(old, new[1:]).attrs   # B's 2.0 dropped
    False
    """
    if stored.empty:
        return delivered
    # (isin of an array of the unique ids: much faster than of a set on string columns)
    mine = stored[stored["asset_id"].isin(delivered["asset_id"].unique())]
    h_stored = pd.util.hash_pandas_object(mine, index=False).to_numpy()
    h_new = pd.util.hash_pandas_object(delivered, index=False).to_numpy()
    have = pd.Series(h_stored).value_counts()
    if (have > pd.Series(h_new).value_counts().reindex(have.index, fill_value=0)).any():
        return upsert_table(stored, delivered)
    # pair each stored row with a delivered row of the same hash (k-th with k-th), then
    # check the pairs cell by cell: a hash collision falls back too, never mis-merges
    nth_s = pd.Series(h_stored).groupby(h_stored).cumcount().to_numpy()
    nth_d = pd.Series(h_new).groupby(h_new).cumcount().to_numpy()
    pairs = pd.DataFrame({"h": h_stored, "k": nth_s, "i": np.arange(len(mine))}).merge(
        pd.DataFrame({"h": h_new, "k": nth_d, "j": np.arange(len(delivered))}),
        on=["h", "k"])
    same = mine.iloc[pairs["i"].to_numpy()].reset_index(drop=True).equals(
        delivered.iloc[pairs["j"].to_numpy()].reset_index(drop=True))
    if len(pairs) != len(mine) or not same:
        return upsert_table(stored, delivered)
    extra = delivered[np.isin(np.arange(len(delivered)), pairs["j"].to_numpy(),
                              invert=True)]
    out = pd.concat([stored, extra], ignore_index=True)
    out.attrs[STORED_ROWS_ATTR] = len(stored)
    return out


def upsert_keyed(stored: pd.DataFrame, delivered: pd.DataFrame,
                 key: Sequence[str] = ACTION_KEY) -> tuple[pd.DataFrame, bool]:
    """Polled rows (an ``updated_since`` page holds only what the vendor announced or
    changed since the last poll, not an asset's whole table) over ``stored``: the
    delivered rows of a key replace the stored rows of that key, delivered rows of a new
    key are added. Returns the table and whether it is ``stored`` followed by added rows
    (an append; the delivered rows of keys already stored were the same rows).

    Examples
    --------
    >>> old = pd.DataFrame({"asset_id": ["A", "B"], "ex_date": ["d1", "d1"],
    ...                     "kind": ["split"] * 2, "value": [2.0, 3.0]})
    >>> new = pd.DataFrame({"asset_id": ["B", "C"], "ex_date": ["d1", "d2"],
    ...                     "kind": ["split"] * 2, "value": [3.0, 4.0]})
    >>> out, appended = upsert_keyed(old, new)
    >>> out["value"].tolist(), appended            # B's row already stored: C added
    ([2.0, 3.0, 4.0], True)
    >>> out, appended = upsert_keyed(old, new.assign(value=[5.0, 4.0]))
    >>> out["value"].tolist(), appended            # B's action corrected
    ([2.0, 5.0, 4.0], False)
    """
    if stored.empty:
        return delivered.reset_index(drop=True), not len(delivered)
    cols = list(key)
    ks = pd.MultiIndex.from_frame(stored.loc[:, cols])
    kd = pd.MultiIndex.from_frame(delivered.loc[:, cols])
    hit_s = ks.isin(kd)
    new = ~kd.isin(ks)
    if hit_s.any():
        order = list(stored.columns)

        def rows(f: pd.DataFrame) -> pd.DataFrame:
            return f.loc[:, order].sort_values(order, kind="stable").reset_index(drop=True)

        if not rows(stored[hit_s]).equals(rows(delivered[~new])):   # a correction
            return pd.concat([stored[~hit_s], delivered], ignore_index=True), False
    return pd.concat([stored, delivered[new]], ignore_index=True), True


def polled_rows(frames: dict[str, pd.DataFrame]
                ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Split the reference tables' rows delivered by ``updated_since`` pages (by their
    ``file``) from the rest: ``(frames without them, polled rows per table)``."""
    out, polled = dict(frames), {}
    for name in ("assets", "symbols", "corporate_actions"):
        f = frames.get(name)
        if f is None or not len(f) or "file" not in f:
            continue
        hit = f["file"].astype(str).str.contains(POLLED_QUERY, regex=False).to_numpy()
        if hit.any():
            polled[name] = f[hit]
            out[name] = f[~hit]
    return out, polled


def delta_frames(store: CuratedStore, frames: dict[str, pd.DataFrame], base: str | None,
                 polled: dict[str, pd.DataFrame] | None = None) -> dict[str, pd.DataFrame]:
    """The frames of a delta commit built on version ``base`` from a day's clean
    canonical ``frames``: the reference tables upserted over the stored ones (as an
    append where the vendor only added rows, :func:`upsert_appending`; left out when
    unchanged), then each table's ``polled`` rows (from ``updated_since`` pages, keyed,
    :func:`upsert_keyed`), the other frames as delivered (empty ones left out)."""
    out: dict[str, pd.DataFrame] = {}
    polled = polled or {}
    for name in ("assets", "symbols", "corporate_actions"):
        whole = frames.get(name, _NONE[name])
        keyed = polled.get(name, _NONE[name])
        if not len(whole) and not len(keyed):
            continue
        table = canonical(name, store.read_table(name, base)) if base is not None else \
            (whole if len(whole) else keyed)[:0]
        mark: int | None = len(table)          # rows 0..mark-1 are the stored ones
        if len(whole):   # rows the stored table lacks appended, if it can be
            table = upsert_appending(table, whole)
            mark = table.attrs.get(STORED_ROWS_ATTR)
        if len(keyed):
            table, appended = upsert_keyed(table, keyed)
            mark = mark if appended else None
        if mark != len(table):   # else: unchanged
            table.attrs.pop(STORED_ROWS_ATTR, None)
            if mark is not None and mark > 0:
                table.attrs[STORED_ROWS_ATTR] = mark
            out[name] = table
    for name in ("prices", "fx", "statements"):
        if len(frames.get(name, ())):
            out[name] = frames[name]
    return out


def publish_delta(store: CuratedStore, raw: RawZone, outcome: ValidationOutcome,
                  deliveries: list, *, message: str, tag: str | None,
                  result: RefreshResult, price_parts: Sequence[Any] = (),
                  price_blocks: Any = None, client: Any = None) -> None:
    """Commit an incremental outcome as one delta commit; mark its manifest rows.

    ``price_parts`` (a partitioned catch-up, :mod:`quantlib.pipeline.catchup`): more
    delta bars, one frame per call, merged into the panels in the same commit
    (:meth:`~quantlib.store.CuratedStore.commit`); ``price_blocks`` (per market, bars
    that dask tasks read by date range, on ``client``) rewrite the panels from their
    first affected row in whole blocks of the date grid."""
    clean, polled = polled_rows(outcome.clean.frames())
    frames = {name: canonical(name, f) for name, f in clean.items()}
    keyed = {name: canonical(name, f) for name, f in polled.items()}
    based: dict[str, str | None] = {}

    def build(base: str | None) -> dict[str, Any]:
        based["on"] = base
        return delta_frames(store, frames, base, keyed)

    snapshot_id, result.rebases = store.commit_rebased(build, message=message, tag=tag,
                                                       delta=True, price_parts=price_parts,
                                                       price_blocks=price_blocks,
                                                       client=client)
    raw.record(deliveries, status="published")
    if snapshot_id == based.get("on"):   # every delivered row was stored already
        result.note = "nothing changed at the vendor: no new version committed"
    else:
        result.snapshot_id, result.tag = snapshot_id, tag_of(store, snapshot_id)
    written = dict(store.last_delta)
    result.rows["commit"] = sum(v for k, v in written.items()
                                if k in ("assets", "symbols", "corporate_actions",
                                         "statements", "prices", "fx"))
    for key in ("region_cells", "appended_dates", "rewrites", "block_chunks"):
        result.rows[key] = int(written.get(key, 0))
