"""The vendor clock: prefix-stable generation and advancing a running sandbox."""

from __future__ import annotations

import ftplib
import io
import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

from quantlib.calendars import sessions
from quantlib.errors import SourceError
from quantlib.sandbox import generate, start_sandbox

E1, E2 = pd.Timestamp("2025-12-24"), pd.Timestamp("2026-01-09")
ARGS = {"n_assets": 25, "years": 1.5, "seed": 5}


@pytest.fixture(scope="module")
def two_ends():
    u1 = generate(end=str(E1.date()), **ARGS)
    u2 = generate(end=str(E2.date()), start=u1.start, **ARGS)
    return u1, u2


def _known_by(frame: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    cut = (end + pd.Timedelta(days=1)).tz_localize("UTC")
    return frame[frame["known_at"] < cut].reset_index(drop=True)


def _uncorrected(common: pd.DataFrame, later, e1: pd.Timestamp, earlier) -> pd.DataFrame:
    """``common`` (bars of ``later`` up to ``e1``) with the corrections published after
    ``e1`` put back to ``earlier``'s values; checks they did change."""
    fix = later.price_corrections
    fix = fix[fix["known_at"] >= (e1 + pd.Timedelta(days=1)).tz_localize("UTC")]
    keys = pd.MultiIndex.from_frame(common[["asset_id", "date"]])
    rows = keys.get_indexer(pd.MultiIndex.from_frame(fix[["asset_id", "date"]]))
    rows = rows[rows >= 0]
    out = common.copy()
    cols = ["open", "high", "low", "close", "volume"]
    assert (out.loc[rows, "close"].to_numpy() != earlier.prices.loc[rows, "close"].to_numpy()
            ).all()
    out.loc[rows, cols] = earlier.prices.loc[rows, cols].to_numpy()
    return out


def test_later_end_keeps_every_bar_fx_and_filing(two_ends):
    u1, u2 = two_ends
    assert u2.start == u1.start and len(u2.prices) > len(u1.prices)
    common = u2.prices[u2.prices["date"] <= E1].reset_index(drop=True)
    pd.testing.assert_frame_equal(_uncorrected(common, u2, E1, u1), u1.prices,
                                  check_exact=True)
    pd.testing.assert_frame_equal(u2.fx[u2.fx["date"] <= E1].reset_index(drop=True), u1.fx)
    pd.testing.assert_frame_equal(_known_by(u2.statements, E1), u1.statements)
    pd.testing.assert_frame_equal(_known_by(u2.corporate_actions, E1), u1.corporate_actions)
    new = u2.prices[u2.prices["date"] > E1]
    assert set(new["date"]) == set(sessions("KR", E1 + pd.Timedelta(days=1), E2)) | set(
        sessions("US", E1 + pd.Timedelta(days=1), E2)) | set(
        sessions("EU", E1 + pd.Timedelta(days=1), E2))


def test_later_end_keeps_the_master_up_to_what_happened_since(two_ends):
    u1, u2 = two_ends
    a2 = u2.assets[u2.assets["listed"] <= E1].reset_index(drop=True)
    gone_since = a2["delisted"] > E1
    a2.loc[gone_since, "delisted"] = pd.NaT          # not yet delisted at E1
    pd.testing.assert_frame_equal(a2, u1.assets)
    s2 = u2.symbols[u2.symbols["valid_from"] <= E1].reset_index(drop=True)
    s2.loc[s2["valid_to"] > E1, "valid_to"] = pd.NaT
    pd.testing.assert_frame_equal(s2, u1.symbols)


def test_moving_the_whole_window_keeps_the_common_sessions():
    """``--years`` fixed and a later ``--end`` (a fresh sandbox): the start moves too, and
    the sessions both serve are identical."""
    u1 = generate(n_assets=12, years=1, seed=2, end="2025-06-30", markets=("US", "KR"))
    u2 = generate(n_assets=12, years=1, seed=2, end="2025-09-30", markets=("US", "KR"))
    both = (u2.start, u1.end)
    p1 = u1.prices[u1.prices["date"].between(*both)].reset_index(drop=True)
    p2 = u2.prices[u2.prices["date"].between(*both)].reset_index(drop=True)
    assert len(p1) > 1000
    pd.testing.assert_frame_equal(p1, p2, check_exact=True)


def test_same_month_draws_whatever_the_start():
    u1 = generate(n_assets=12, years=3, seed=2, end="2025-03-31", markets=("EU",))
    u2 = generate(n_assets=12, years=3, seed=2, end="2025-03-31", markets=("EU",),
                  start="2025-01-15")
    p1 = u1.prices[u1.prices["date"] >= "2025-01-15"].reset_index(drop=True)
    pd.testing.assert_frame_equal(p1, u2.prices, check_exact=True)
    ca1 = u1.corporate_actions[u1.corporate_actions["ex_date"] >= "2025-01-15"]
    pd.testing.assert_frame_equal(ca1.reset_index(drop=True), u2.corporate_actions)


def _ftp_state(sb) -> dict[str, bytes]:
    """Every file (and sidecar) on the FTP server, fetched over FTP."""
    out: dict[str, bytes] = {}
    with ftplib.FTP() as ftp:
        ftp.connect(sb.ftp_host, sb.ftp_port, timeout=10)
        ftp.login(sb.ftp_user, sb.ftp_password)
        todo = ["/kr", "/eu", "/kr/prices", "/eu/prices"]
        for folder in todo:
            for name in ftp.nlst(folder):
                path = name if name.startswith("/") else f"{folder}/{name}"
                if path.rsplit("/", 1)[-1] == "prices":
                    continue
                buf = io.BytesIO()
                ftp.retrbinary(f"RETR {path}", buf.write)
                out[path.lstrip("/")] = buf.getvalue()
    return out


def _get(sb, path: str) -> dict:
    req = urllib.request.Request(sb.http_url + path, headers={"X-API-Key": sb.api_key})
    return json.load(urllib.request.urlopen(req, timeout=30))


def _all_rows(sb, path: str) -> list[dict]:
    rows, page = [], 1
    while page:
        sep = "&" if "?" in path else "?"
        answer = _get(sb, f"{path}{sep}page={page}&page_size=1000")
        rows += answer["data"]
        page = answer["next_page"]
    return rows


def test_advance_delivers_exactly_the_new_files_and_rows(tmp_path):
    with start_sandbox(n_assets=10, years=0.5, seed=3, end=str(E1.date()), root=tmp_path,
                       rate_limit=(1000.0, 1000.0), write_state=False) as sb:
        before = _ftp_state(sb)
        answer = sb.connection().advance(E2)
        after = _ftp_state(sb)
        assert answer["end"] == str(E2.date()) and answer["start"] == str(sb.universe.start.date())
        assert _get(sb, "/_sandbox/clock") == {"start": answer["start"], "end": answer["end"]}
        changed = {p for p in after if before.get(p) != after[p]}
        delivered = {f["path"] for f in answer["files"]}
        assert changed == delivered | {p + ".sha256" for p in delivered}
        new_days = sessions("KR", E1 + pd.Timedelta(days=1), E2)
        kr_new = {f"kr/prices/{d:%Y%m%d}.csv" for d in new_days}
        fix = sb.universe.price_corrections
        fix = fix[fix["known_at"] >= (E1 + pd.Timedelta(days=1)).tz_localize("UTC")]
        kr_fixed = {f"kr/prices/{d:%Y%m%d}.csv" for d in fix.loc[fix["asset_id"].str.startswith(
            "KR"), "date"]}
        eu_fixed = {f"eu/prices/prices_{d:%Y%m}.csv" for d in fix.loc[
            fix["asset_id"].str.startswith("DE"), "date"]}
        assert {p for p in delivered if p.startswith("kr/prices/")} == kr_new | kr_fixed
        assert {p for p in delivered if p.startswith("eu/prices/")} == {
            "eu/prices/prices_202512.csv", "eu/prices/prices_202601.csv"} | eu_fixed
        assert delivered - kr_new - kr_fixed - eu_fixed - {"eu/prices/prices_202512.csv",
                                     "eu/prices/prices_202601.csv"} <= {
            "kr/master.csv", "kr/tickers.csv", "kr/corporate_actions.csv", "eu/reference.csv",
            "eu/tickers.csv", "eu/corporate_actions.csv"}
        # the re-delivered December file: the same lines plus the new days' bars
        old, new = (x["eu/prices/prices_202512.csv"].decode().splitlines()
                    for x in (before, after))
        eu = sb.universe.market_frame("prices", "EU")
        late_dec = eu[(eu["date"] > E1) & (eu["date"] <= "2025-12-31")]
        n_fixed = len(fix[fix["asset_id"].str.startswith("DE") & (fix["date"] <= E1)])
        assert len(set(old) - set(new)) == n_fixed
        assert len(new) == len(old) + len(late_dec) > len(old)
        # the API: date ranges and updated_since give exactly the new US bars
        us = sb.universe.market_frame("prices", "US")
        us_fixed = us.set_index(["asset_id", "date"]).index.isin(pd.MultiIndex.from_frame(
            fix[["asset_id", "date"]]))
        us_new = us[(us["date"] > E1) | us_fixed]
        since = f"/v1/prices?market=US&updated_since={(E1 + pd.Timedelta(days=1)).date()}"
        got = pd.DataFrame(_all_rows(sb, since))
        ranged = pd.DataFrame(_all_rows(
            sb, f"/v1/prices?market=US&start={(E1 + pd.Timedelta(days=1)).date()}&end={E2.date()}"))
        for frame in (got, ranged):
            assert len(frame) == len(us_new) > 0
            assert (frame["isin"].to_numpy() == us_new["asset_id"].to_numpy()).all()
            assert np.array_equal(frame["c"].to_numpy(), us_new["close"].to_numpy())
        st = sb.universe.market_frame("statements", "KR")
        fresh = st[st["known_at"] >= (E1 + pd.Timedelta(days=1)).tz_localize("UTC")]
        rows = _all_rows(sb, f"/v1/fundamentals?market=KR&updated_since={E1.date()}T23:59:59")
        assert len(rows) == len(fresh)
        with pytest.raises(SourceError, match="the vendor clock only moves forward"):
            sb.connection().advance(E1)
        assert sb.connection().advance(E2)["files"] == []


def test_corrections_and_late_actions_are_dated_and_prefix_stable():
    e2 = pd.Timestamp("2025-12-31")
    args = {"n_assets": 80, "years": 2, "seed": 6, "start": "2024-01-02"}
    u2 = generate(end=str(e2.date()), **args)
    fix = u2.price_corrections
    slow = fix[fix["known_at"].dt.tz_localize(None) - fix["date"] >= pd.Timedelta(days=3)]
    e1 = slow["date"].iloc[len(slow) // 2] + pd.Timedelta(days=1)   # the clock in between
    u1 = generate(end=str(e1.date()), **args)
    pd.testing.assert_frame_equal(_known_by(fix, e1), u1.price_corrections)
    # the latest values are served; a bar corrected after e1 had its first values at e1
    latest = u2.prices.set_index(["asset_id", "date"]).loc[
        pd.MultiIndex.from_frame(fix[["asset_id", "date"]])]
    assert (latest["close"].to_numpy() == fix["close"].to_numpy()).all()
    assert (latest["known_at"].to_numpy() < fix["known_at"].to_numpy()).all()
    late = fix[(fix["known_at"] >= (e1 + pd.Timedelta(days=1)).tz_localize("UTC")) & (
        fix["date"] <= e1)]
    assert len(late) >= 1
    first = u1.prices.set_index(["asset_id", "date"]).loc[
        pd.MultiIndex.from_frame(late[["asset_id", "date"]])]
    change = np.abs(late["close"].to_numpy() / first["close"].to_numpy() - 1)
    assert change.min() > 0.002 and change.max() < 0.035
    assert ((fix["high"] >= fix["close"]) & (fix["low"] <= fix["close"])).all()
    late_by = fix["known_at"].dt.tz_localize(None) - fix["date"]
    assert late_by.min() >= pd.Timedelta(days=1) and late_by.max() <= pd.Timedelta(days=10)
    assert 0.0002 < len(fix) / len(u2.prices) < 0.001
    ca = u2.corporate_actions
    late_ca = ca[ca["known_at"].dt.tz_localize(None) > ca["ex_date"] + pd.Timedelta(days=1)]
    assert 1 <= len(late_ca) <= 0.1 * len(ca)
    assert (late_ca["known_at"].dt.tz_localize(None) - late_ca["ex_date"]).max() <= \
        pd.Timedelta(days=11)
    pd.testing.assert_frame_equal(_known_by(ca, e1), u1.corporate_actions)


def test_advance_redelivers_corrected_files_and_rows(tmp_path):
    args = {"n_assets": 40, "years": 1, "seed": 4, "markets": ("KR", "US"),
            "start": "2025-01-02"}
    ahead = generate(end="2025-12-31", **args).price_corrections
    kr = ahead[ahead["asset_id"].str.startswith("KR") & (ahead["date"] >= "2025-06-01")].iloc[0]
    us = ahead[ahead["asset_id"].str.startswith("US") & (ahead["known_at"] > kr["known_at"])
               ].iloc[0]
    e1 = kr["known_at"].tz_localize(None).normalize() - pd.Timedelta(days=1)
    assert kr["date"] <= e1
    with start_sandbox(end=str(e1.date()), root=tmp_path, rate_limit=(1000.0, 1000.0),
                       write_state=False, **args) as sb:
        conn = sb.connection()
        name = f"kr/prices/{kr['date']:%Y%m%d}.csv"
        before = (tmp_path / name).read_bytes()
        files = {f["path"] for f in conn.advance(e1 + pd.Timedelta(days=1))["files"]}
        assert name in files                                      # re-delivered
        after = pd.read_csv(tmp_path / name, encoding="cp949", dtype={"표준코드": str})
        row = after[after["표준코드"] == kr["asset_id"]]
        assert row["종가"].tolist() == [kr["close"]] and (tmp_path / name).read_bytes() != before
        us_day = us["known_at"].tz_localize(None).normalize()
        conn.advance(us_day + pd.Timedelta(days=1))
        since = (us["known_at"] - pd.Timedelta(minutes=1)).tz_localize(None).isoformat()
        rows = pd.DataFrame(_all_rows(sb, f"/v1/prices?market=US&updated_since={since}"))
        hit = rows[(rows["isin"] == us["asset_id"]) & (rows["t"] == int(
            us["date"].value // 1_000_000))]
        assert hit["c"].tolist() == [us["close"]]
        assert hit["updated_ms"].tolist() == [int(us["known_at"].value // 1_000_000)]
        # everything else in that answer is a bar first published since
        rest = rows.drop(hit.index)
        assert (rest["updated_ms"] >= int((us["known_at"] - pd.Timedelta(minutes=1)).value
                                          // 1_000_000)).all()
