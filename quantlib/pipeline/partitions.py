"""Tasks of the partitioned full build: one per (market, time partition) of price bars.

:mod:`quantlib.pipeline.build` cuts a market's price deliveries (dated FTP files, API
price pages, in date order) into *partitions* of about ``partition_rows`` rows. Each
partition is one Dask task, :func:`run_partition`:

1. standardize only that partition's deliveries (never the market's whole history);
2. validate them with the market's assets and corporate actions as context (the same
   checks as a whole-market batch; the threshold is applied later to the market's
   totals) and keep the prices part of the outcome (quarantine rows, counts);
3. spill the clean bars to ``<spill>/<market>/<partition>.arrow`` (an Arrow IPC file,
   LZ4-compressed buffers, sorted by date, ``asset_id`` dictionary-encoded so a chunk
   task maps the few distinct ids to panel columns instead of hashing every bar's id)
   and return a small :class:`PartitionResult`: date range, each asset's first and last
   bar that the jump check sees ("rest" bars), each asset's last clean close.

The jump check of a partition's first bar per asset needs the previous partition's
last bar: :func:`boundary_jumps` checks exactly those bars from the summaries, in date
order, so the continuity check across partition boundaries is the one a whole-history
batch runs. :func:`chunk_grids` builds the panel rows of one time chunk from the spilled
bars (returns seeded with the last clean close before the chunk).
"""

from __future__ import annotations

import ctypes
import functools
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantlib.errors import BatchRejectedError, StoreError
from quantlib.raw import Delivery, RawZone
from quantlib.standardize.api import endpoint_of
from quantlib.store.blocks import BarArrays
from quantlib.store.panels import NAT_INT, PRICE_VARS, actions_grid, ns_values, previous_valid
from quantlib.validate import ValidationOutcome

__all__ = ["PartitionResult", "is_price_delivery", "price_partitions", "delivery_groups",
           "run_partition", "boundary_jumps", "chunk_grids", "read_spilled", "no_rows",
           "release_heap", "SPILL_COLUMNS"]

_DATED = re.compile(r"(\d{8}|\d{6})(?=\.[^.]+$)")
_PAGE = re.compile(r"[?&]page=(\d+)")
SPILL_COLUMNS = ["asset_id", "date", *PRICE_VARS, "known_at"]
_REST = ["asset_id", "date", "close", "source", "file", "row"]


def is_price_delivery(d: Delivery) -> bool:
    """Whether a delivery holds price bars: an API ``prices`` page or a dated FTP file.

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-02", tz="UTC")
    >>> def d(file):
    ...     return Delivery("s", "KR", file, "kr-ftp-csv", "a" * 64, 1, 1, t, "f", "")
    >>> [is_price_delivery(d(f)) for f in ("kr/prices/20240102.csv", "kr/master.csv",
    ...                                     "api/v1/prices?market=US&page=2")]
    [True, False, True]
    """
    if d.file.startswith("api/"):
        return endpoint_of(d.file)[0] == "prices"
    return _DATED.search(d.file) is not None


def _order(d: Delivery) -> tuple[str, str, int]:
    if d.file.startswith("api/"):
        m = _PAGE.search(d.file)
        return d.source, _PAGE.sub("", d.file), int(m.group(1)) if m else 0
    m = _DATED.search(d.file)
    return d.source, m.group(1) if m else d.file, 0


def price_partitions(deliveries: list[Delivery], partition_rows: int) -> list[list[Delivery]]:
    """Consecutive price deliveries (date order: dated names, API page numbers) in
    groups of about ``partition_rows`` rows (a delivery is never split)."""
    return delivery_groups(sorted(deliveries, key=_order), partition_rows)


def delivery_groups(deliveries: list[Delivery], rows_per_group: int) -> list[list[Delivery]]:
    """Consecutive deliveries, in the order given, in groups of about
    ``rows_per_group`` rows (a delivery is never split)."""
    parts: list[list[Delivery]] = []
    current: list[Delivery] = []
    rows = 0
    for d in deliveries:
        current.append(d)
        rows += int(d.rows or 0)
        if rows >= rows_per_group:
            parts.append(current)
            current, rows = [], 0
    if current:
        parts.append(current)
    return parts


@dataclass
class PartitionResult:
    """What one partition task returns (small; the bars are in ``path``)."""

    market: str
    index: int
    path: str
    first_date: Any
    last_date: Any
    first_rest: pd.DataFrame
    last_rest: pd.DataFrame
    last_clean: pd.DataFrame
    outcome: ValidationOutcome
    deliveries: list[Delivery]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def run_partition(market: str, index: int, store_url: str, deliveries: list[Delivery],
                  context: Any, spill: str, known_assets: tuple[str, ...] = ()
                  ) -> PartitionResult:
    """Standardize, validate and spill one partition (see the module docstring).

    ``context`` is the market's standardized ``assets`` and ``corporate_actions``
    (a :class:`~quantlib.standardize.CanonicalBatch`, unvalidated, as a whole-market
    batch would hold them).
    """
    from quantlib.standardize import standardize
    from quantlib.store.location import resolve_location
    from quantlib.validate import validate
    from quantlib.validate.report import build_report

    t0 = time.perf_counter()
    raw = RawZone(store_url)
    batch = standardize(deliveries, raw)
    t1 = time.perf_counter()
    prices = batch.prices.reset_index(drop=True)
    full = batch.replace(assets=context.assets, prices=prices)
    try:
        out = validate(full, max_bad_row_fraction=1.0, known_assets=known_assets,
                       stored_actions=context.corporate_actions)
    except BatchRejectedError as err:   # pragma: no cover - the limit is 1.0
        out = err.outcome  # type: ignore[attr-defined]
    q = out.quarantine[out.quarantine["frame"] == "prices"].reset_index(drop=True)
    only = batch.replace(assets=batch.assets.iloc[:0], prices=prices)
    clean = out.clean.replace(**{n: no_rows(f) for n, f in out.clean.frames().items()
                                 if n != "prices"})
    outcome = ValidationOutcome(clean=clean, quarantine=q)
    asset_market = context.assets.dropna(subset=["asset_id"]).drop_duplicates("asset_id") \
        .set_index("asset_id")["market"]
    outcome.report = build_report(only, outcome, 1.0, asset_market, {}, deliveries)
    rest = _rest_bars(prices, q)
    # sorted by date only (a numeric sort; the string sorts by asset cost ~1 us a bar
    # each): row groups of the spill then cover date ranges, and (asset, date) is unique
    bars = clean.prices.loc[:, SPILL_COLUMNS].sort_values("date", kind="stable")
    # the bars travel by the spill file only: the outcome sent back to the driver keeps
    # the counts (report) and the quarantine, never the partition's clean prices
    outcome.clean = clean.replace(prices=no_rows(clean.prices))
    fs, path = resolve_location(spill).open_fs(market, f"{index:06d}.arrow")
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    _write_spill(fs, path, bars)
    by_asset = rest.sort_values("date", kind="stable").groupby("asset_id", sort=False)
    last_clean = bars.groupby("asset_id", sort=False).tail(1).loc[:, ["asset_id", "date",
                                                                      "close"]]
    t2 = time.perf_counter()
    result = PartitionResult(
        market, index, path,
        bars["date"].min() if len(bars) else None, bars["date"].max() if len(bars) else None,
        _by_asset(by_asset.head(1)), _by_asset(by_asset.tail(1)), _by_asset(last_clean),
        outcome, deliveries,
        rows={"fetch": sum(int(d.rows or 0) for d in deliveries), "standardize": len(prices),
              "validate": len(bars)},
        seconds={"standardize": t1 - t0, "validate": t2 - t1})
    del batch, full, out, clean, prices, bars, rest, by_asset, only
    release_heap()
    return result


def no_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame with ``frame``'s columns and dtypes and no rows, that holds none of its
    memory (``frame.iloc[:0]`` is a view: kept in a task's result for the whole build,
    it would keep every row of the frame alive).

    Examples
    --------
    >>> f = pd.DataFrame({"a": ["x", "y"], "v": [1.0, 2.0]})
    >>> e = no_rows(f)
    >>> len(e), e.dtypes.equals(f.dtypes)
    (0, True)
    """
    return pd.DataFrame({c: pd.Series([], dtype=frame[c].dtype) for c in frame.columns},
                        columns=frame.columns)


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:   # not glibc: nothing to trim
        return None


def release_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``; a
    no-op elsewhere). A build task frees its working set when it ends, but glibc keeps
    freed pages of its per-thread arenas resident; with many threads (fetch workers,
    dask workers) the process's RSS then climbs task after task. Called at the end of
    each partition, chunk and statements task."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _write_spill(fs: Any, path: str, bars: pd.DataFrame) -> None:
    """Write a partition's bars (``SPILL_COLUMNS``, date order) as one Arrow IPC record
    batch: ``asset_id`` dictionary-encoded, buffers LZ4-compressed (no per-value
    encoding: writing and reading are little more than copies)."""
    table = pa.Table.from_pandas(bars, preserve_index=False).combine_chunks()
    table = table.set_column(0, "asset_id", pc.dictionary_encode(table["asset_id"]))
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with fs.open(path, "wb") as f, pa.ipc.new_file(f, table.schema, options=options) as w:
        w.write_table(table, max_chunksize=max(1, table.num_rows))


def _by_asset(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per asset (a few thousand), in asset order."""
    return rows.sort_values("asset_id", kind="stable").reset_index(drop=True)


def _rest_bars(prices: pd.DataFrame, q: pd.DataFrame) -> pd.DataFrame:
    """Bars the jump check compares with (all but those another check removed)."""
    other = q[(q["severity"] != "info") & (q["check"] != "unexplained_jump")]
    keep = prices["close"].notna().to_numpy() & prices["date"].notna().to_numpy()
    if len(other):   # only rows of the files named in ``other`` are looked up one by one
        near = np.flatnonzero(prices["file"].isin(set(other["file"])).to_numpy())
        bad = set(zip(other["source"], other["file"], other["row"].astype("int64"),
                      strict=True))
        sub = prices.iloc[near]
        keys = zip(sub["source"], sub["file"], sub["row"].astype("int64"), strict=True)
        keep[near] &= np.fromiter((k not in bad for k in keys), dtype=bool, count=len(near))
    p = prices.loc[keep]
    return p.loc[:, _REST]


def boundary_jumps(parts: list[PartitionResult], actions: pd.DataFrame, max_jump: float,
                   market: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Jump check of each partition's first bar per asset against the last bar before it
    (partitions in date order).

    Returns the quarantine rows (``QUARANTINE_COLUMNS``) and the ``asset_id, date`` of
    the bars they remove.
    """
    from quantlib.validate.core import QUARANTINE_COLUMNS

    explained = set(zip(actions["asset_id"], ns_values(actions["ex_date"]), strict=True)) \
        if len(actions) else set()
    last = pd.Series(dtype="float64")
    found, drops = [], []
    for part in parts:
        first = part.first_rest.set_index("asset_id")
        prev = last.reindex(first.index)
        move = first["close"] / prev.to_numpy() - 1
        hit = (move.abs() > max_jump).to_numpy().copy()
        dates = ns_values(first["date"])
        hit &= np.array([(a, d) not in explained for a, d in zip(first.index, dates,
                                                                  strict=True)], dtype=bool)
        if hit.any():
            bad = first.loc[hit].reset_index()
            drops.append(bad.loc[:, ["asset_id", "date"]])
            found.append(pd.DataFrame({
                "source": bad["source"], "file": bad["file"], "row": bad["row"],
                "market": market, "asset_id": bad["asset_id"], "field": "close",
                "value": bad["close"], "check": "unexplained_jump",
                "reason": [f"close moved {m:+.1%} from the previous bar with no split/"
                           f"dividend that day (limit {max_jump:.0%})" for m in move[hit]],
                "frame": "prices", "severity": "bad"}))
        tail = part.last_rest.set_index("asset_id")["close"]
        last = pd.concat([last[~last.index.isin(tail.index)], tail])
    if not found:
        empty = pd.DataFrame({c: pd.Series([], dtype="str") for c in QUARANTINE_COLUMNS})
        return empty, pd.DataFrame({"asset_id": pd.Series([], dtype="str"),
                                    "date": pd.Series([], dtype="datetime64[ns]")})
    out = pd.concat(found, ignore_index=True)
    dropped = pd.concat(drops, ignore_index=True)
    for c in QUARANTINE_COLUMNS:
        out[c] = out[c].astype("Int64") if c == "row" else out[c].astype("str")
    return out.loc[:, QUARANTINE_COLUMNS], dropped


def chunk_grids(spill_fs: Any, paths: list[str], seed_paths: list[str], dates: np.ndarray,
                ids: np.ndarray, seed: np.ndarray, actions: pd.DataFrame, before: Any,
                dropped: pd.DataFrame) -> dict[str, np.ndarray]:
    """Panel rows of one time chunk (``dates`` x ``ids``) from spilled bars.

    ``paths`` are the spill files that may hold bars of these dates, ``seed`` each
    asset's last clean close before the partitions in ``seed_paths`` (NaN: none), whose
    bars before the chunk complete it (partitions that straddle the chunk's start),
    ``before`` the panel date
    before the chunk (``None`` for the first chunk: actions dated earlier land on the
    first row, as in a whole build), ``dropped`` the ``asset_id, date`` of bars the
    boundary jump check removed.
    """
    lo, hi = np.datetime64(dates[0], "ns"), np.datetime64(dates[-1], "ns")
    id_index = pd.Index(ids)
    gone = _gone(dropped, id_index)
    seed = seed.copy()
    if seed_paths:
        early = _read_spill(spill_fs, seed_paths, None, lo, id_index, gone, strict=False)
        # each asset's last bar before the chunk (the latest date; among equal dates the
        # later file, as a stable sort by asset then date keeps them)
        order = np.lexsort((early.dates, early.col))
        col_s = early.col[order]
        last = order[np.r_[col_s[1:] != col_s[:-1], True]] if len(order) else order
        last = last[early.col[last] >= 0]
        seed[early.col[last]] = early.values["close"][last]
    bars = _read_spill(spill_fs, paths, lo, hi, id_index, gone, strict=True)
    shape = (len(dates), len(ids))
    row = np.searchsorted(dates, bars.dates)
    col = bars.col
    out: dict[str, np.ndarray] = {}
    for var in PRICE_VARS:
        grid = np.full(shape, np.nan)
        grid[row, col] = bars.values[var]
        out[var] = grid
    known = np.full(shape, NAT_INT, dtype="int64")
    known[row, col] = bars.known
    acts = actions if before is None or actions.empty else \
        actions[ns_values(actions["ex_date"]) > np.datetime64(before, "ns")]
    split, dividend = actions_grid(acts, pd.DatetimeIndex(dates), pd.Index(ids))
    prev = previous_valid(np.vstack([seed[None, :], out["close"]]))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["returns"] = split * (out["close"] + dividend) / prev - 1.0
    out["split"], out["dividend"], out["known_at"] = split, dividend, known
    del bars
    release_heap()
    return out


def read_spilled(fs: Any, paths: list[str], lo: Any, hi: Any, ids: pd.Index,
                 dropped: pd.DataFrame) -> BarArrays:
    """The spilled bars of ``paths`` dated ``lo..hi`` (inclusive) less those in
    ``dropped`` (``asset_id, date``); columns looked up in ``ids`` (an asset not in
    ``ids`` is an error). Of bars of the same (asset, date), a later path's come later.
    """
    return _read_spill(fs, paths, lo, hi, ids, _gone(dropped, ids), strict=True)


def _gone(dropped: pd.DataFrame, ids: pd.Index) -> pd.MultiIndex | None:
    """``(column, date)`` of the bars the boundary jump check removed (None: none)."""
    if not len(dropped):
        return None
    return pd.MultiIndex.from_arrays([ids.get_indexer(dropped["asset_id"].astype(str)),
                                      ns_values(dropped["date"])])


def _read_spill(fs: Any, paths: list[str], lo: Any, hi: Any, ids: pd.Index,
                gone: pd.MultiIndex | None, *, strict: bool) -> BarArrays:
    """The bars of ``paths`` dated ``lo..hi`` (``lo`` None: from the start; ``hi``
    inclusive, or exclusive when ``lo`` is None), less those in ``gone``. ``strict``:
    a bar whose asset is not in ``ids`` is an error (else its column is -1)."""
    parts = []
    for path in paths:
        with fs.open(path, "rb") as f:
            table = pa.ipc.open_file(f).read_all()
        if table.num_rows == 0:
            continue
        dates = table["date"].to_numpy().astype("datetime64[ns]", copy=False)
        if lo is None:
            a, b = 0, int(np.searchsorted(dates, hi, side="left"))
        else:
            a = int(np.searchsorted(dates, lo, side="left"))
            b = int(np.searchsorted(dates, hi, side="right"))
        if b > a:
            parts.append(table.slice(a, b - a))
    if not parts:
        return BarArrays(np.zeros(0, "datetime64[ns]"), np.zeros(0, np.int64),
                     {v: np.zeros(0) for v in PRICE_VARS}, np.zeros(0, np.int64))
    codes, dates, known = [], [], []
    values: dict[str, list[np.ndarray]] = {v: [] for v in PRICE_VARS}
    for t in parts:
        chunk = t.column("asset_id").combine_chunks()
        lookup = ids.get_indexer(chunk.dictionary.to_numpy(zero_copy_only=False).astype(str))
        col = lookup[chunk.indices.to_numpy(zero_copy_only=False)] if len(lookup) else \
            np.zeros(0, np.int64)
        if strict and (col < 0).any():
            first = chunk.indices[int(np.flatnonzero(col < 0)[0])].as_py()
            raise StoreError("every priced asset must be in the assets table",
                             found="no assets row", fix="commit the assets frame with the "
                             "prices", asset=str(chunk.dictionary[first].as_py()))
        codes.append(col)
        dates.append(t["date"].to_numpy().astype("datetime64[ns]", copy=False))
        at = pc.cast(t["known_at"], pa.timestamp("ns", tz="UTC"))
        known.append(pc.fill_null(pc.cast(at, pa.int64()), NAT_INT)
                     .to_numpy(zero_copy_only=False))
        for v in PRICE_VARS:
            values[v].append(t[v].to_numpy(zero_copy_only=False).astype("float64", copy=False))
    bars = BarArrays(np.concatenate(dates), np.concatenate(codes),
                 {v: np.concatenate(a) for v, a in values.items()}, np.concatenate(known))
    if gone is not None and len(bars.col):
        keep = ~pd.MultiIndex.from_arrays([bars.col, bars.dates]).isin(gone)
        bars = BarArrays(bars.dates[keep], bars.col[keep], {v: a[keep] for v, a in
                                                         bars.values.items()}, bars.known[keep])
    return bars
