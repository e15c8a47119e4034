"""The partitioned build's statements: read by page group, checked by asset bucket,
written by parts.

A market's financial statements (API fundamentals pages) grow with its history and
width (~10 M rows at full size), so the partitioned build
(:mod:`quantlib.pipeline.build`) never holds them as one frame. Step by step:

1. **read**: one Dask task per group of consecutive statement deliveries (about
   ``statement_rows`` rows, :func:`statement_groups`), :func:`read_statements`:
   standardize them, reconcile their row counts with the manifest, and spill the rows
   to ``<spill>/<market>/statements/read-<group>-<bucket>.arrow``, split into
   *buckets* by a hash of ``asset_id``; each row carries ``seq`` = (group << 32) +
   its position, its place in the market's delivery order;
2. **check**: one task per bucket, :func:`check_statements`: the bucket's rows of
   every group, in ``seq`` order, validated with the market's assets as context. Every
   row of an asset is in one bucket, so every duplicate key (``asset_id, field,
   period_end, known_at``) is checked whole, exactly as in a whole-market batch:
   restatements (a later ``known_at``) are kept, exact copies dropped after the
   first, conflicting rows quarantined with their file, row and field. The clean rows
   are spilled to ``<spill>/<market>/statements/clean-<bucket>.arrow``, one record
   batch per calendar year of ``known_at`` (rows in ``seq`` order within it); the task
   returns the outcome (quarantine, counts) only;
3. **write**: :func:`statement_parts` gives the commit one frame per ``known_at`` year:
   that year's clean rows of every market and bucket, ordered by ``known_at``, then
   market (in the refresh's order), then ``seq``: the one-frame build's order (its
   statements in delivery order, sorted by ``known_at`` with a stable sort), so the
   stored table (written by parts, :func:`~quantlib.store.tables.write_table_parts`)
   equals the one-frame build's row for row, and its ``known_at`` row ranges are tight
   (a daily refresh's freshness check reads the last row chunks only:
   :func:`quantlib.store.curated._fresh_statements`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from quantlib.errors import BatchRejectedError
from quantlib.pipeline.partitions import release_heap
from quantlib.raw import Delivery, RawZone
from quantlib.standardize.api import frame_of
from quantlib.store.location import resolve_location
from quantlib.validate import ValidationOutcome

__all__ = ["STATEMENT_ROWS", "is_statement_delivery", "statement_groups", "n_buckets",
           "StatementRead", "StatementCheck", "read_statements", "check_statements",
           "statement_parts"]

#: rows per read group and per bucket (the unit one task holds)
STATEMENT_ROWS = 500_000
_SEQ = "seq"
_SHIFT = 32


def is_statement_delivery(d: Delivery) -> bool:
    """Whether a delivery holds financial statements (an API fundamentals page)."""
    return frame_of(d) == "statements"


def statement_groups(deliveries: list[Delivery], rows: int) -> list[list[Delivery]]:
    """Consecutive deliveries (their order kept: it is the stored rows' order) in
    groups of about ``rows`` rows (a delivery is never split).

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-02", tz="UTC")
    >>> ds = [Delivery("s", "US", f"api/v1/fundamentals?page={i}", "api-json", "a" * 64,
    ...                1, n, t, "f", "") for i, n in enumerate([3, 3, 3, 1])]
    >>> [[d.rows for d in g] for g in statement_groups(ds, 5)]
    [[3, 3], [3, 1]]
    """
    from quantlib.pipeline.partitions import delivery_groups

    return delivery_groups(deliveries, rows)


def n_buckets(deliveries: list[Delivery], rows: int) -> int:
    """Asset buckets for the check step: about ``rows`` rows each (at least one)."""
    total = sum(int(d.rows or 0) for d in deliveries)
    return max(1, -(-total // max(1, rows)))


def _bucket_of(asset_id: pd.Series, buckets: int) -> np.ndarray:
    """Each row's bucket: a fixed hash of its ``asset_id`` (missing ids hash alike)."""
    if buckets == 1:
        return np.zeros(len(asset_id), dtype=np.int64)
    h = pd.util.hash_pandas_object(asset_id.astype(object), index=False).to_numpy()
    return (h % np.uint64(buckets)).astype(np.int64)


@dataclass
class StatementRead:
    """What one read task returns (the rows are in ``paths``, one file per bucket)."""

    market: str
    index: int
    paths: dict[int, str]
    unparsed: dict[int, pd.DataFrame]
    outcome: ValidationOutcome
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class StatementCheck:
    """What one check task returns (the clean rows are in ``path``: record batch
    ``batches[g]`` holds those of read group ``g``)."""

    market: str
    bucket: int
    path: str
    batches: dict[int, int]
    outcome: ValidationOutcome
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _spill_fs(spill: str, *parts: str) -> tuple[Any, str]:
    fs, path = resolve_location(spill).open_fs(*parts)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    return fs, path


def _write_arrow(fs: Any, path: str, tables: list[pa.Table]) -> None:
    """Arrow IPC file, LZ4-compressed buffers, one record batch per table."""
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with fs.open(path, "wb") as f, pa.ipc.new_file(f, tables[0].schema, options=options) as w:
        for t in tables:
            w.write_table(t.combine_chunks(), max_chunksize=max(1, t.num_rows))


def read_statements(market: str, index: int, store_url: str, deliveries: list[Delivery],
                    buckets: int, spill: str) -> StatementRead:
    """Standardize one group of statement deliveries and spill its rows by asset
    bucket (step 1 of the module docstring)."""
    from quantlib.standardize import CanonicalBatch, standardize
    from quantlib.validate.report import _reconcile

    t0 = time.perf_counter()
    batch = standardize(deliveries, RawZone(store_url))
    rows = batch.statements.reset_index(drop=True)
    recon = _reconcile(batch, deliveries)
    t1 = time.perf_counter()
    frame = rows.assign(**{_SEQ: (np.int64(index) << _SHIFT)
                           + np.arange(len(rows), dtype=np.int64)})
    bucket = _bucket_of(rows["asset_id"], buckets)
    unparsed = batch.unparsed[batch.unparsed["frame"] == "statements"]
    where = pd.Series(bucket, index=pd.MultiIndex.from_frame(rows[["source", "file", "row"]]))
    u_bucket = where[~where.index.duplicated()].reindex(
        pd.MultiIndex.from_frame(unparsed[["source", "file", "row"]])).fillna(0).to_numpy()
    paths, bad = {}, {}
    for b in np.unique(bucket):
        fs, path = _spill_fs(spill, market, "statements", f"read-{index:06d}-{b:04d}.arrow")
        part = frame.loc[bucket == b]
        _write_arrow(fs, path, [pa.Table.from_pandas(part, preserve_index=False)])
        paths[int(b)] = path
        if len(unparsed):
            bad[int(b)] = unparsed.loc[u_bucket == b].reset_index(drop=True)
    outcome = ValidationOutcome(clean=CanonicalBatch(), quarantine=_no_quarantine())
    outcome.report = {"reconciliation": {"files": len(recon),
                                         "mismatches": [r for r in recon if not r["ok"]]}}
    del batch, rows, frame
    release_heap()
    return StatementRead(market, index, paths, bad, outcome,
                         rows={"fetch": sum(int(d.rows or 0) for d in deliveries)},
                         seconds={"standardize": time.perf_counter() - t0,
                                  "spill": time.perf_counter() - t1})


def _no_quarantine() -> pd.DataFrame:
    from quantlib.validate.core import _empty_quarantine

    return _empty_quarantine()


def _read_arrow(fs: Any, path: str, batch: int | None = None) -> pa.Table:
    with fs.open(path, "rb") as f:
        reader = pa.ipc.open_file(f)
        if batch is not None:
            return pa.Table.from_batches([reader.get_batch(batch)])
        return reader.read_all()


def check_statements(market: str, bucket: int, reads: list[StatementRead], context: Any,
                     spill: str, known_assets: tuple[str, ...] = ()) -> StatementCheck:
    """Validate one asset bucket of the market's statements and spill its clean rows
    (step 2 of the module docstring). ``context`` holds the market's standardized
    assets (a :class:`~quantlib.standardize.CanonicalBatch`, as the reference task
    returns it)."""
    from quantlib.standardize import CanonicalBatch
    from quantlib.standardize.batch import empty_frame, empty_unparsed
    from quantlib.validate import validate
    from quantlib.validate.core import _source_markets
    from quantlib.validate.report import build_report

    t0 = time.perf_counter()
    reads = sorted(reads, key=lambda r: r.index)
    fs = resolve_location(spill).filesystem()
    tables = [_read_arrow(fs, r.paths[bucket]) for r in reads if bucket in r.paths]
    frame = pa.concat_tables(tables).to_pandas() if tables else \
        empty_frame("statements").assign(**{_SEQ: np.zeros(0, np.int64)})
    seq = frame.pop(_SEQ).to_numpy(dtype=np.int64)
    frame = frame.astype(empty_frame("statements").dtypes.to_dict())
    bad = [r.unparsed[bucket] for r in reads if bucket in r.unparsed]
    unparsed = pd.concat(bad, ignore_index=True) if bad else empty_unparsed()
    t1 = time.perf_counter()
    full = CanonicalBatch(assets=context.assets, statements=frame, unparsed=unparsed)
    try:
        out = validate(full, max_bad_row_fraction=1.0, known_assets=known_assets)
    except BatchRejectedError as err:   # pragma: no cover - the limit is 1.0
        out = err.outcome  # type: ignore[attr-defined]
    q = out.quarantine[out.quarantine["frame"] == "statements"].reset_index(drop=True)
    clean = out.clean.statements
    kept = seq[out.kept["statements"]]
    only = CanonicalBatch(statements=frame, unparsed=unparsed)
    outcome = ValidationOutcome(clean=CanonicalBatch(), quarantine=q)   # rows: spilled
    asset_market = context.assets.dropna(subset=["asset_id"]) \
        .drop_duplicates("asset_id").set_index("asset_id")["market"]
    outcome.report = build_report(only, ValidationOutcome(CanonicalBatch(statements=clean), q),
                                  1.0, asset_market, _source_markets(), None)
    t2 = time.perf_counter()
    year = clean["known_at"].dt.year.fillna(0).to_numpy(dtype=np.int64)
    order = np.lexsort((kept, year))       # by known_at year, then delivery order
    group = year[order]
    table = pa.Table.from_pandas(clean.assign(**{_SEQ: kept}), preserve_index=False) \
        .take(pa.array(order))
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else \
        np.zeros(0, np.int64)
    bounds = [*starts.tolist(), len(group)]
    fs, path = _spill_fs(spill, market, "statements", f"clean-{bucket:04d}.arrow")
    pieces = [table.slice(a, b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    _write_arrow(fs, path, pieces or [table])
    batches = {int(group[a]): i for i, a in enumerate(starts.tolist())}
    result = StatementCheck(market, bucket, path, batches, outcome,
                            rows={"standardize": len(frame), "validate": len(clean)},
                            seconds={"read": t1 - t0, "validate": t2 - t1,
                                     "spill": time.perf_counter() - t2})
    del full, out, frame, clean, table, pieces
    release_heap()
    return result


def statement_parts(checks: list[StatementCheck], spill_fs: Any, markets: list[str]
                    ) -> list[Callable[[], pd.DataFrame]]:
    """The clean statements of every market as frames to write one after the other
    (step 3 of the module docstring): one per calendar year of ``known_at``, each
    reading only that year's record batch of every bucket's spill, its rows ordered by
    ``known_at``, market (their order in ``markets``), then ``seq``."""
    rank = {m: i for i, m in enumerate(markets)}
    checks = sorted(checks, key=lambda c: (rank[c.market], c.bucket))
    years = sorted({g for c in checks for g in c.batches})

    def part(y: int) -> pd.DataFrame:
        from quantlib.pipeline.merge import canonical

        having = [c for c in checks if y in c.batches]
        tables = [_read_arrow(spill_fs, c.path, c.batches[y]) for c in having]
        ranks = np.repeat([rank[c.market] for c in having], [t.num_rows for t in tables])
        table = pa.concat_tables(tables)
        known = np.asarray(table.column("known_at").to_numpy()).view("int64")
        order = np.lexsort((table.column(_SEQ).to_numpy(), ranks, known))
        frame = table.take(pa.array(order)).drop_columns([_SEQ]).to_pandas()
        return canonical("statements", frame)

    return [functools.partial(part, y) for y in years]
