"""validate() on the sandbox truth with injected defects: each check finds exactly the
broken rows, clean data passes untouched, the threshold rejects a bad batch."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from quantlib.errors import BatchRejectedError
from quantlib.standardize import conform
from quantlib.validate import QUARANTINE_COLUMNS, validate, write_report


def _bar(batch, market="KR", i=40):
    p = batch.prices
    ids = batch.assets.loc[batch.assets["market"] == market, "asset_id"]
    return p.index[p["asset_id"].isin(ids)][i]


def test_truth_is_clean(truth):
    out = validate(truth)
    assert out.report["bad_rows"] == 0 and out.quarantine.empty
    for name, frame in truth.frames().items():
        pd.testing.assert_frame_equal(out.clean.frames()[name], frame)
    assert out.report["rows_in_total"] == out.report["rows_out_total"] == truth.n_rows()
    assert list(out.quarantine.columns) == QUARANTINE_COLUMNS


def _broken(truth, changes):
    p = truth.prices.copy()
    for (i, col), value in changes.items():
        p.loc[i, col] = value
    return truth.replace(prices=p)


def test_row_checks_name_file_row_field(truth):
    i, j, k = _bar(truth, "KR", 40), _bar(truth, "US", 41), _bar(truth, "EU", 42)
    p0 = truth.prices
    b = _broken(truth, {(i, "close"): -5.0, (j, "high"): p0.loc[j, "low"] * 0.5,
                        (k, "volume"): float("nan")})
    out = validate(b, max_bad_row_fraction=0.5)
    q = out.quarantine.sort_values("row")
    got = q[["file", "row", "field", "check"]].values.tolist()
    want = sorted([["prices.csv", int(p0.loc[i, "row"]), "close", "positive"],
                   ["prices.csv", int(p0.loc[j, "row"]), "high", "high_below_open_close"],
                   ["prices.csv", int(p0.loc[k, "row"]), "volume", "missing_or_garbage"]],
                  key=lambda r: r[1])
    assert got == want
    assert q.set_index("check").loc["positive", "value"] == "-5.0"
    assert q.set_index("check").loc["positive", "asset_id"] == p0.loc[i, "asset_id"]
    assert len(out.clean.prices) == len(p0) - 3
    assert out.report["by_market"] == {"EU": 1, "KR": 1, "US": 1}


def test_exact_and_conflicting_duplicates(truth):
    p = truth.prices
    i, j = _bar(truth, "KR", 5), _bar(truth, "EU", 6)
    exact = p.loc[[i]].assign(row=9001, file="again.csv")
    clash = p.loc[[j]].assign(close=p.loc[j, "close"] + 1.0, row=9002, file="again.csv")
    b = truth.replace(prices=pd.concat([p, exact, clash], ignore_index=True))
    out = validate(b, max_bad_row_fraction=0.5)
    q = out.quarantine
    dup = q[q["check"] == "duplicate"]
    assert dup[["file", "row", "severity"]].values.tolist() == [["again.csv", 9001,
                                                                "duplicate"]]
    assert dup["reason"].iloc[0] == f"exact duplicate of prices.csv row {p.loc[i, 'row']} " \
                                    f"(kept that one)"
    clashes = q[q["check"] == "conflicting_duplicate"].sort_values("row")
    assert clashes["row"].tolist() == [int(p.loc[j, "row"]), 9002]
    assert len(out.clean.prices) == len(p) - 1          # one kept of the exact pair, none of j
    assert out.report["bad_rows"] == 2


def test_calendar_checks(truth):
    p = truth.prices
    i = _bar(truth, "US", 10)
    saturday = p.loc[[i]].assign(date=pd.Timestamp("2025-03-08"), row=7777)
    gone = _bar(truth, "EU", 30)
    b = truth.replace(prices=pd.concat([p.drop(index=gone), saturday], ignore_index=True))
    out = validate(b, max_bad_row_fraction=0.5)
    q = out.quarantine
    ns = q[q["check"] == "non_session"]
    assert ns[["row", "value"]].values.tolist() == [[7777, "2025-03-08"]]
    ms = q[q["check"] == "missing_session"]
    assert ms[["asset_id", "value", "severity"]].values.tolist() == [
        [p.loc[gone, "asset_id"], str(p.loc[gone, "date"].date()), "info"]]
    assert out.report["bad_rows"] == 1                  # a missing session is reported only


def test_unexplained_jump_and_explained_split(truth):
    p = truth.prices.copy()
    ids = truth.assets.loc[truth.assets["market"] == "KR", "asset_id"]
    one = p[p["asset_id"] == ids.iloc[0]].index
    i = one[100]
    p.loc[i, ["open", "high", "low", "close"]] *= 3
    b = truth.replace(prices=p)
    out = validate(b, max_bad_row_fraction=0.5)
    q = out.quarantine[out.quarantine["check"] == "unexplained_jump"]
    assert q["row"].tolist()[0] == int(p.loc[i, "row"])
    assert q["reason"].iloc[0].startswith("close moved +")
    # the same jump with a split on that day is explained
    ca = truth.corporate_actions
    split = conform("corporate_actions", pd.DataFrame({
        "asset_id": [p.loc[i, "asset_id"]], "ex_date": [p.loc[i, "date"]], "kind": ["split"],
        "value": [1 / 3], "known_at": [pd.Timestamp("2025-01-01", tz="UTC")],
        "source": ["x"], "file": ["x"], "row": [1]}))
    b2 = b.replace(corporate_actions=pd.concat([ca, split], ignore_index=True))
    q2 = validate(b2, max_bad_row_fraction=0.5).quarantine
    assert int(p.loc[i, "row"]) not in q2.loc[q2["check"] == "unexplained_jump", "row"].tolist()


def test_unknown_assets(truth):
    st = truth.statements.copy()
    st.loc[st.index[:2], ["asset_id", "source"]] = ["XX0000000000", "api-kr"]
    out = validate(truth.replace(statements=st), max_bad_row_fraction=0.5)
    q = out.quarantine
    assert q[["frame", "row", "check", "market"]].values.tolist() == [
        ["statements", 1, "unknown_asset", "KR"], ["statements", 2, "unknown_asset", "KR"]]
    out2 = validate(truth.replace(statements=st), known_assets=["XX0000000000"])
    assert out2.quarantine.empty


def test_threshold_rejects_batch_with_first_bad_rows(truth):
    p = truth.prices.copy()
    kr = p.index[p["asset_id"].str.startswith("KR")][:60]
    p.loc[kr, "close"] = float("nan")
    b = truth.replace(prices=p)
    with pytest.raises(BatchRejectedError) as err:
        validate(b, max_bad_row_fraction=0.01)
    msg = str(err.value)
    n_kr = int(err.value.outcome.report["markets"]["KR"]["rows_in"])
    assert msg.startswith(f"bad rows of market KR must be at most 1.00% of its rows; found 60 "
                          f"bad of {n_kr} rows")
    first = p.loc[kr[0]]
    assert f"first: truth-prices:prices.csv row {first['row']} field close " \
           f"(missing_or_garbage)" in msg
    assert f"[source=truth-prices, market=KR, file=prices.csv, row={first['row']}, " \
           f"field=close]" in msg
    assert "Fix: fix or re-deliver the named files, or raise the limit" in msg
    assert "--max-bad-fraction of `quantlib data refresh|ingest`" in msg
    assert "config validation.max_bad_row_fraction" in msg
    assert err.value.outcome.report["rejected_markets"] == ["KR"]
    # the same batch passes a looser limit, with those rows quarantined
    assert len(validate(b, max_bad_row_fraction=0.5).clean.prices) == len(p) - 60


def test_write_report(truth, tmp_path):
    p = truth.prices.copy()
    p.loc[p.index[3], "close"] = -1.0
    out = validate(truth.replace(prices=p), max_bad_row_fraction=0.5)
    paths = write_report(out, str(tmp_path), "r42")
    q = pd.read_parquet(tmp_path / "tables" / "quarantine" / "r42.parquet")
    assert q[["row", "field", "check"]].values.tolist() == [[4, "close", "positive"]]
    counts = pd.read_parquet(tmp_path / "tables" / "validation" / "r42.parquet")
    assert counts["count"].sum() == 1
    rep = json.loads((tmp_path / "reports" / "r42.json").read_text())
    assert rep["refresh_id"] == "r42" and rep["bad_rows"] == 1
    assert rep["rows_in"]["prices"] == len(p) and rep["rows_out"]["prices"] == len(p) - 1
    md = (tmp_path / "reports" / "r42.md").read_text()
    assert "| truth-prices | prices.csv | 4 | close | -1.0 | positive |" in md
    assert set(paths) == {"quarantine", "validation", "json", "markdown"}


def test_incremental_missing_sessions_start_after_the_stored_last_bar(truth):
    """An incremental batch: one asset's look-back bar re-delivered (a correction), the
    other assets' stored window not. With each asset's last stored bar (``last_bars``)
    only the sessions after it can be missing; the same batch checked as a full build
    reports every session of its range without a bar, as before."""
    from quantlib.calendars import sessions

    p = truth.prices
    w = sessions("KR", "2025-11-01", "2025-12-31")[-10:]
    on = p[p["date"].isin(w)]
    kr = truth.assets.loc[truth.assets["market"] == "KR", "asset_id"]
    full = on.groupby("asset_id").size()
    ids = [a for a in kr if full.get(a, 0) == len(w)][:4]
    assert len(ids) == 4
    a, b, c, d = ids
    keep = on["asset_id"].isin(ids) & (on["date"] >= w[6])          # the new sessions
    keep |= (on["asset_id"] == a) & (on["date"] == w[0])            # a's correction
    keep &= ~((on["asset_id"] == b) & (on["date"] == w[6]))         # b resumes on w[7]
    keep &= ~((on["asset_id"] == c) & (on["date"] == w[8]))         # c misses w[8]
    batch = truth.replace(prices=on[keep].reset_index(drop=True))
    stored = pd.Series([w[5], w[3], w[5], w[5]], index=ids)         # b last stored on w[3]

    def missing(out):
        q = out.quarantine[out.quarantine["check"] == "missing_session"]
        return sorted(map(tuple, q[["asset_id", "value"]].values.tolist()))

    day = [str(x.date()) for x in w]
    inc = validate(batch, last_bars=stored)
    assert missing(inc) == sorted([(b, day[4]), (b, day[5]), (b, day[6]), (c, day[8])])
    row = inc.quarantine[inc.quarantine["check"] == "missing_session"].iloc[0]
    assert (row["reason"], row["severity"], row["field"], row["frame"], row["market"],
            row["source"], row["file"]) == (
        "no bar on this session while the asset was listed", "info", "date", "prices",
        "KR", "truth-prices", "")
    assert pd.isna(row["row"]) and inc.report["bad_rows"] == 0
    # as a full build: every session of the batch's range an asset has no bar on
    want = [(x, day[i]) for x in ids for i in range(10)
            if not ((batch.prices["asset_id"] == x) & (batch.prices["date"] == w[i])).any()]
    assert missing(validate(batch)) == sorted(want)
    assert len(want) == 5 + 7 + 7 + 6          # a: w1-w5, b: w0-w6, c: w0-w5 and w8, d: w0-w5


def test_incremental_batch_without_master_still_checks_sessions(truth):
    """An incremental batch that did not re-deliver the master file (no assets rows): a
    bar dated on a Saturday is still quarantined as ``non_session``, its market taken
    from the source that delivered it (``ftp-kr``); the stored ids make the asset known.
    Before, such a batch skipped the calendar check and the bar reached the store."""
    p = truth.prices
    kr = truth.assets.loc[truth.assets["market"] == "KR", "asset_id"]
    one = p[p["asset_id"] == kr.iloc[0]].tail(3).assign(source="ftp-kr")
    saturday = one.iloc[[-1]].assign(date=pd.Timestamp("2025-03-08"), row=4242)
    bars = pd.concat([one, saturday], ignore_index=True)
    batch = truth.replace(prices=bars, assets=truth.assets.iloc[0:0],
                          symbols=truth.symbols.iloc[0:0],
                          corporate_actions=truth.corporate_actions.iloc[0:0],
                          statements=truth.statements.iloc[0:0])
    out = validate(batch, known_assets=frozenset(truth.assets["asset_id"]),
                   max_bad_row_fraction=0.5)
    ns = out.quarantine[out.quarantine["check"] == "non_session"]
    assert ns[["asset_id", "row", "value", "market"]].values.tolist() == [
        [kr.iloc[0], 4242, "2025-03-08", "KR"]]
    assert len(out.clean.prices) == 3


def test_missing_sessions_name_each_assets_first_delivering_source():
    from quantlib.validate.checks import missing_session_issues

    days = pd.to_datetime(["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"])
    assets = pd.DataFrame({"asset_id": ["A", "B", "C"], "market": "KR",
                           "listed": pd.to_datetime(["2024-03-04", "2024-03-05", "2024-03-04"]),
                           "delisted": pd.to_datetime([None, None, "2024-03-05"])})
    prices = pd.DataFrame({   # B first from ftp-kr, later from a file drop; Z unknown
        "asset_id": pd.array(["Z", "B", "A", "B", "A", "A", "C"], dtype="str"),
        "date": days[[0, 1, 0, 3, 0, 3, 0]],
        "source": pd.array(["x", "ftp-kr", "drop", "drop", "ftp-kr", "drop", "y"],
                           dtype="str")})
    got = missing_session_issues(prices, assets)
    assert got[["asset_id", "value", "source"]].values.tolist() == [
        ["A", "2024-03-05", "drop"], ["A", "2024-03-06", "drop"],
        ["B", "2024-03-06", "ftp-kr"], ["C", "2024-03-05", "y"]]
