"""Bad inputs x ``quantlib data ingest``: each ends in a what/found/fix error and exit code
(or a clear "nothing committed"), never a traceback or a silent new version."""

from __future__ import annotations

import pandas as pd
import pytest

from quantlib.cli import main
from quantlib.store import CuratedStore

HEADER = "Ticker,Date,Open,High,Low,Close,Volume,Adj Close\n"
ROWS = ("{t},2024-03-04,10,12,9.5,11,1000,11\n"
        "{t},2024-03-05,11,12,10.5,11.5,1200,11.5\n")


def _ingest(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["data", "ingest", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_empty_file(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    store = tmp_path / "store"
    rc, _, err = _ingest(capsys, str(tmp_path / "empty.csv"), "--store", str(store))
    assert rc == 4
    assert err.startswith("error: a file drop must hold a header row")
    assert "found an empty file (0 bytes)" in err and "file=empty.csv" in err
    assert "Fix: check the export" in err and "Traceback" not in err


def test_header_only_file_commits_nothing(tmp_path, capsys):
    (tmp_path / "header.csv").write_text(HEADER)
    store = tmp_path / "store"
    rc, out, _ = _ingest(capsys, str(tmp_path / "header.csv"), "--store", str(store))
    assert rc == 0
    assert "nothing committed" in out and "holds no data rows" in out
    assert CuratedStore(str(store)).snapshots().empty  # no new, empty version


@pytest.mark.parametrize("kind", ["file-in-the-way", "not-writable"])
def test_unwritable_store(tmp_path, capsys, kind):
    (tmp_path / "ok.csv").write_text(HEADER + ROWS.format(t="AAA"))
    if kind == "file-in-the-way":
        (tmp_path / "blocker").write_text("")
        store, found = tmp_path / "blocker" / "store", "found Not a directory"
    else:  # sysfs refuses new folders even to root
        store, found = "/sys/quantlib-test-store", "found Operation not permitted"
    rc, _, err = _ingest(capsys, str(tmp_path / "ok.csv"), "--store", str(store))
    assert rc == 5
    assert err.startswith("error: store must be a writable folder; " + found)
    assert "Fix: pass --store" in err


def test_path_like_ticker_is_quarantined(tmp_path, capsys):
    (tmp_path / "evil.csv").write_text(HEADER + ROWS.format(t="../../etc/passwd")
                                       + ROWS.format(t="AAA") + ROWS.format(t="BBB"))
    store = tmp_path / "store"
    rc, out, err = _ingest(capsys, str(tmp_path / "evil.csv"), "--store", str(store),
                           "--max-bad-fraction", "0.5")
    assert rc == 0, err
    st = CuratedStore(str(store))
    assert set(st.read_table("assets")["asset_id"]) == {"YAHOO:AAA", "YAHOO:BBB"}
    q = pd.read_parquet(next((store / "tables" / "quarantine").glob("*.parquet")))
    evil = q[q["asset_id"] == "YAHOO:../../etc/passwd"]
    assert set(evil["check"]) == {"asset_id_pattern", "symbol_pattern"}
    by_id = evil[evil["check"] == "asset_id_pattern"]
    assert len(by_id) == 4  # 2 bars + the asset + its symbol row
    assert by_id["reason"].str.startswith("asset_id must be an ISIN or NAMESPACE:SYMBOL").all()
    assert not (store / "etc").exists()


def test_max_bad_fraction_option_rejects(tmp_path, capsys):
    (tmp_path / "evil.csv").write_text(HEADER + ROWS.format(t="../../etc/passwd")
                                       + ROWS.format(t="AAA"))
    store = tmp_path / "store"
    rc, _, err = _ingest(capsys, str(tmp_path / "evil.csv"), "--store", str(store),
                         "--max-bad-fraction", "0.01")
    assert rc == 4 and "found 4 bad of 8 rows (50.00% > 1.00%)" in err
    assert "--max-bad-fraction" in err and "nothing was published" in err
    assert CuratedStore(str(store)).snapshots().empty
    rc, _, err = _ingest(capsys, str(tmp_path / "evil.csv"), "--store", str(store),
                         "--max-bad-fraction", "7")
    assert rc == 2 and "--max-bad-fraction" in err
