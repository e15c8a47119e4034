"""The partitioned build's statements (read by page group, checked by asset bucket,
written by parts) against one whole-market batch: the same clean rows in the same order
and the same quarantine, with restatements, duplicates and bad rows whose copies fall
in different page groups and buckets."""

from __future__ import annotations

import itertools
import json

import fsspec
import numpy as np
import pandas as pd
import pytest
import zarr

from quantlib.pipeline.merge import canonical
from quantlib.pipeline.statements import (
    check_statements,
    n_buckets,
    read_statements,
    statement_groups,
    statement_parts,
)
from quantlib.raw import RawZone
from quantlib.standardize import CanonicalBatch, standardize
from quantlib.store.tables import read_table_group, write_table, write_table_parts
from quantlib.validate import validate

MS = 86_400_000
KEY = ["source", "file", "row", "check", "field", "value", "reason", "asset_id", "market"]


def _row(isin: str, field: str, period: int, value: object, published: int) -> dict:
    return {"isin": isin, "field": field, "period_end_ms": 1_600_000_000_000 + period * MS,
            "value": value, "currency": "USD",
            "published_ms": 1_600_000_000_000 + published * MS,
            "updated_ms": 1_600_000_000_000 + published * MS}


def _pages() -> list[list[dict]]:
    """Six pages of a US fundamentals feed (assets ``US00000000A0`` .. ``US00000000H0``)."""
    rows = [_row(f"US00000000{a}0", f, p, 100.0 + p + k, p + 40)
            for k, a in enumerate("ABCDEFGH") for p in range(6)
            for f in ("revenue", "net_income")]
    pages = [rows[i:i + 16] for i in range(0, len(rows), 16)]
    # a restatement of A's first period, filed later, in the last page
    pages[-1].append(_row("US00000000A0", "revenue", 0, 999.0, 400))
    # an exact copy of a row of page 0 in page 3 (kept once: the first)
    pages[3].append(dict(pages[0][1]))
    # a conflicting copy (same key, other value) of a row of page 1 in page 4
    pages[4].append({**pages[1][2], "value": -5.0})
    # garbage in a value, an unknown asset
    pages[2][0] = {**pages[2][0], "value": "n/a"}
    pages[5].append(_row("US99999999Z0", "revenue", 1, 1.0, 50))
    return pages


@pytest.fixture
def delivered(tmp_path):
    raw = RawZone(str(tmp_path / "store"))
    deliveries = [raw.put(json.dumps({"data": page, "total_rows": None}).encode(),
                          source="api-us", market="US",
                          file=f"api/v1/fundamentals?market=US&page={i + 1}",
                          fetch_id="f", fmt="api-json", rows=len(page), record=False)
                  for i, page in enumerate(_pages())]
    assets = pd.DataFrame({"asset_id": [f"US00000000{a}0" for a in "ABCDEFGH"], "market": "US",
                           "mic": "XNYS", "currency": "USD", "sector": "Energy", "name": "x",
                           "listed": pd.Timestamp("2015-01-01"), "delisted": pd.NaT,
                           "known_at": pd.Timestamp("2015-01-01", tz="UTC"),
                           "source": "api-us", "file": "api/v1/securities", "row": 0})
    context = CanonicalBatch(assets=assets.astype(CanonicalBatch().assets.dtypes.to_dict()))
    return raw, deliveries, context


@pytest.mark.parametrize(("group_rows", "bucket_rows"), [(30, 30), (1000, 1000), (10, 7)])
def test_statements_by_parts_equal_one_batch(tmp_path, delivered, group_rows, bucket_rows):
    raw, deliveries, context = delivered
    whole = validate(CanonicalBatch(assets=context.assets,
                                    statements=standardize(deliveries, raw).statements,
                                    unparsed=standardize(deliveries, raw).unparsed),
                     max_bad_row_fraction=1.0)
    groups = statement_groups(deliveries, group_rows)
    buckets = n_buckets(deliveries, bucket_rows)
    spill = str(tmp_path / "spill")
    reads = [read_statements("US", i, raw.url, g, buckets, spill)
             for i, g in enumerate(groups)]
    checks = [check_statements("US", b, reads, context, spill) for b in range(buckets)]
    if group_rows < 100:   # the duplicates' copies are in other groups and buckets
        assert len(groups) >= 3 and buckets >= 4
    fs = fsspec.filesystem("file")
    parts = [p() for p in statement_parts(checks, fs, ["US"])]
    got = pd.concat(parts, ignore_index=True)
    # the one-frame build's order: delivery order sorted by known_at (stable)
    expected = canonical("statements", whole.clean.statements) \
        .sort_values("known_at", kind="stable", ignore_index=True)
    assert got["known_at"].is_monotonic_increasing
    pd.testing.assert_frame_equal(got, expected)
    # restatement kept beside the first filing; copies and bad rows gone
    a0 = got[(got["asset_id"] == "US00000000A0") & (got["field"] == "revenue")
             & (got["period_end"] == got["period_end"].min())]
    assert a0["value"].tolist() == [100.0, 999.0]
    assert len(got) == 8 * 6 * 2 + 1 - 1 - 1    # + restatement - garbage - conflicted original
    q = pd.concat([c.outcome.quarantine for c in checks], ignore_index=True)
    wq = whole.quarantine[whole.quarantine["frame"] == "statements"]
    assert sorted(map(tuple, q[KEY].astype(str).values)) == \
        sorted(map(tuple, wq[KEY].astype(str).values))
    assert set(q["check"]) == {"duplicate", "conflicting_duplicate", "missing_or_garbage",
                               "unknown_asset"}
    garbage = q[q["check"] == "missing_or_garbage"].iloc[0]
    assert (garbage["file"], int(garbage["row"]), garbage["field"], garbage["value"]) == \
        ("api/v1/fundamentals?market=US&page=3", 0, "value", "n/a")
    rows_in = sum(c.outcome.report["rows_in"]["statements"] for c in checks)
    bad = sum(c.outcome.report["bad_rows"] for c in checks)
    assert (rows_in, bad) == (whole.report["rows_in"]["statements"], whole.report["bad_rows"])
    assert all(not r.outcome.report["reconciliation"]["mismatches"] for r in reads)


def test_write_table_parts_equals_write_table():
    rng = np.random.default_rng(0)
    n = 150_000
    frame = pd.DataFrame({
        "asset_id": pd.Series(np.where(rng.random(n) < 0.01, None,
                                       rng.choice(["A", "B", "C"], n)), dtype="str"),
        "v": rng.random(n),
        "known_at": pd.to_datetime(rng.integers(0, 10**17, n), utc=True)})
    frame.loc[:70_000, "asset_id"] = "A"     # the first chunk has no missing id
    a = zarr.group(store=zarr.storage.MemoryStore())
    b = zarr.group(store=zarr.storage.MemoryStore())
    write_table(a, "t", frame)
    cuts = [0, 10, 70_001, 70_002, 140_000, n]
    n_rows = write_table_parts(b, "t", (frame.iloc[x:y] for x, y in itertools.pairwise(cuts)),
                               frame.iloc[:0])
    assert n_rows == n
    assert dict(a["t"].attrs) == dict(b["t"].attrs)
    assert sorted(a["t"].array_keys()) == sorted(b["t"].array_keys()) == \
        ["asset_id", "asset_id.isna", "known_at", "v"]
    for key in a["t"].array_keys():
        x, y = a["t"][key], b["t"][key]
        assert (x.shape, x.chunks, x.dtype, x.fill_value) == \
            (y.shape, y.chunks, y.dtype, y.fill_value)
        np.testing.assert_array_equal(x[:], y[:])
    pd.testing.assert_frame_equal(read_table_group(b, "t"), frame)
    empty = zarr.group(store=zarr.storage.MemoryStore())
    write_table_parts(empty, "t", iter([]), frame.iloc[:0])
    pd.testing.assert_frame_equal(read_table_group(empty, "t"), frame.iloc[:0])
