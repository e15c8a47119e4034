"""Defects the vendor itself delivers (file and sidecar agree): they pass the transfer
checks and are caught by standardize (renamed column) or validate (garbage, duplicates)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from quantlib.errors import BatchRejectedError, StandardizeError
from quantlib.raw import RawZone
from quantlib.sources import SOURCES, run_sources
from quantlib.standardize import standardize
from quantlib.validate import validate

FILE = "kr/prices/20250602.csv"


@pytest.fixture
def vendor_file(sandbox):
    """Rewrite one KR price file (and its sidecar) on the server; restore afterwards."""
    path = sandbox.root / FILE
    side = sandbox.root / (FILE + ".sha256")
    original, original_side = path.read_bytes(), side.read_bytes()

    def write(lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode("cp949")
        path.write_bytes(data)
        side.write_text(f"{hashlib.sha256(data).hexdigest()} {len(lines) - 1}\n")

    yield original.decode("cp949").splitlines(), write
    path.write_bytes(original)
    side.write_bytes(original_side)


def _fetch(sandbox, tmp_path, retry):
    raw = RawZone(str(tmp_path))
    src = dataclasses.replace(SOURCES["ftp-kr"], files=("kr/master.csv",), folders=())
    one = dataclasses.replace(SOURCES["ftp-kr"], files=(FILE,), folders=())
    return raw, run_sources([src, one], raw=raw, connection=sandbox, fetch_id="f", retry=retry)


def test_garbage_and_duplicate_rows_are_quarantined_with_file_and_row(
        sandbox, vendor_file, fast_retry, tmp_path):
    lines, write = vendor_file
    cells = lines[3].split(",")
    cells[7] = "n/a"                       # close of data row 3
    lines[3] = ",".join(cells)
    write([*lines, lines[5]])              # data row 5 repeated as the last row
    raw, deliveries = _fetch(sandbox, tmp_path, fast_retry)
    out = validate(standardize(deliveries, raw), max_bad_row_fraction=0.5)
    q = out.quarantine.sort_values("row")
    last = len(lines)                      # the copy is data row len(lines)
    assert q[["file", "row", "field", "check"]].values.tolist() == [
        [FILE, 3, "close", "missing_or_garbage"], [FILE, last, "asset_id/date", "duplicate"]]
    garbage = q[q["check"] == "missing_or_garbage"].iloc[0]
    assert (garbage["value"], garbage["reason"]) == (
        "n/a", "value is not a number/date (garbage in the vendor file)")
    assert q.loc[q["check"] == "duplicate", "reason"].iloc[0] == \
        f"exact duplicate of {FILE} row 5 (kept that one)"
    assert len(out.clean.prices) == len(lines) - 2


def test_vendor_renamed_column_raises_with_file(sandbox, vendor_file, fast_retry, tmp_path):
    lines, write = vendor_file
    write([lines[0].replace("종가", "종가_v2"), *lines[1:]])
    raw, deliveries = _fetch(sandbox, tmp_path, fast_retry)
    with pytest.raises(StandardizeError, match=rf"missing \['종가'\], unexpected \['종가_v2'\]\) "
                                               rf"\[source=ftp-kr, market=KR, file={FILE}, "
                                               rf"field=종가\]"):
        standardize(deliveries, raw)


def test_mostly_garbage_file_rejects_the_batch(sandbox, vendor_file, fast_retry, tmp_path):
    lines, write = vendor_file
    bad = [lines[0]] + [",".join(c if k != 5 else "-1" for k, c in enumerate(x.split(",")))
                        for x in lines[1:]]
    write(bad)
    raw, deliveries = _fetch(sandbox, tmp_path, fast_retry)
    with pytest.raises(BatchRejectedError, match=rf"first: ftp-kr:{FILE} row 1 field high"):
        validate(standardize(deliveries, raw), max_bad_row_fraction=0.1)
