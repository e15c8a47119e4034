"""Vendor files: encodings, headers, sidecars, and an exact round trip back to the truth."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from quantlib.calendars import sessions
from quantlib.sandbox import EU_HEADERS, KR_HEADERS, write_ftp_tree


@pytest.fixture(scope="module")
def tree(small_universe, tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    files = write_ftp_tree(small_universe, root)
    return root, files


def _truth_prices(u, prefix):
    px = u.prices[u.prices["asset_id"].str.startswith(prefix)]
    return px.sort_values(["date", "asset_id"], ignore_index=True)


def test_file_layout(small_universe, tree):
    root, files = tree
    paths = {f.path for f in files}
    u = small_universe
    kr_days = sessions("KR", u.start, u.end)
    assert {f"kr/prices/{d:%Y%m%d}.csv" for d in kr_days} <= paths
    eu_months = pd.DatetimeIndex(sessions("EU", u.start, u.end)).strftime("%Y%m").unique()
    assert {f"eu/prices/prices_{m}.csv" for m in eu_months} <= paths
    for p in ("kr/master.csv", "kr/tickers.csv", "kr/corporate_actions.csv",
              "eu/reference.csv", "eu/tickers.csv", "eu/corporate_actions.csv"):
        assert p in paths
    assert not any(p.startswith("us/") for p in paths)
    assert len(files) == len(kr_days) + len(eu_months) + 6


def test_sidecars_match_bytes_and_rows(tree):
    root, files = tree
    for f in files[:5] + files[-5:]:
        data = (root / f.path).read_bytes()
        digest, rows = (root / (f.path + ".sha256")).read_text().split()
        assert digest == hashlib.sha256(data).hexdigest() == f.sha256
        assert int(rows) == f.rows == data.count(b"\n") - 1


def test_kr_prices_are_cp949_with_korean_headers_and_round_trip(small_universe, tree):
    root, _ = tree
    raw = (root / "kr/prices" / "20250102.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp949")
    assert text.splitlines()[0] == KR_HEADERS["prices"] == \
        "일자,표준코드,단축코드,종목명,시가,고가,저가,종가,거래량"
    frames = [pd.read_csv(p, encoding="cp949", dtype={"단축코드": str, "일자": str})
              for p in sorted((root / "kr/prices").glob("*.csv"))]
    got = pd.concat(frames, ignore_index=True)
    truth = _truth_prices(small_universe, "KR")
    assert len(got) == len(truth)
    assert (got["표준코드"].to_numpy() == truth["asset_id"].to_numpy()).all()
    assert (pd.to_datetime(got["일자"], format="%Y%m%d").to_numpy() ==
            truth["date"].to_numpy()).all()
    for kr, col in (("시가", "open"), ("고가", "high"), ("저가", "low"), ("종가", "close"),
                    ("거래량", "volume")):
        assert (got[kr].astype(np.float64).to_numpy() == truth[col].to_numpy()).all(), col
    assert got["단축코드"].str.fullmatch(r"\d{6}").all()


def test_eu_prices_decimal_comma_round_trip(small_universe, tree):
    root, _ = tree
    first = sorted((root / "eu/prices").glob("*.csv"))[0].read_text("utf-8").splitlines()
    assert first[0] == EU_HEADERS["prices"]
    assert "," in first[1].split(";")[3] and "." in first[1].split(";")[2]
    frames = [pd.read_csv(p, sep=";", decimal=",", dtype={"Date": str})
              for p in sorted((root / "eu/prices").glob("*.csv"))]
    got = pd.concat(frames, ignore_index=True)
    truth = _truth_prices(small_universe, "DE")
    assert (got["ISIN"].to_numpy() == truth["asset_id"].to_numpy()).all()
    assert (pd.to_datetime(got["Date"], format="%d.%m.%Y").to_numpy() ==
            truth["date"].to_numpy()).all()
    for col in ("Open", "High", "Low", "Close", "Volume"):
        assert (got[col].astype(np.float64).to_numpy() ==
                truth[col.lower()].to_numpy()).all(), col


def test_kr_master_and_tickers(small_universe, tree):
    root, _ = tree
    master = pd.read_csv(root / "kr/master.csv", encoding="cp949", dtype=str,
                         keep_default_na=False)
    assert list(master.columns) == KR_HEADERS["assets"].split(",")
    truth = small_universe.market_assets("KR")
    assert (master["표준코드"].to_numpy() == truth["asset_id"].to_numpy()).all()
    assert (master["종목명"].to_numpy() == truth["name"].to_numpy()).all()
    delisted = pd.to_datetime(master["상장폐지일"].replace("", None), format="%Y%m%d")
    assert (delisted.isna().to_numpy() == truth["delisted"].isna().to_numpy()).all()
    tick = pd.read_csv(root / "kr/tickers.csv", encoding="cp949", dtype=str,
                       keep_default_na=False)
    sym = small_universe.symbols[small_universe.symbols["asset_id"].str.startswith("KR")]
    assert len(tick) == len(sym)
    assert (tick["단축코드"].to_numpy() == sym["symbol"].to_numpy()).all()


def test_corporate_actions_round_trip(small_universe, tree):
    root, _ = tree
    ca = small_universe.corporate_actions
    kr = pd.read_csv(root / "kr/corporate_actions.csv", encoding="cp949",
                     dtype={"공시일시": str})
    truth = ca[ca["asset_id"].str.startswith("KR")].reset_index(drop=True)
    known = pd.to_datetime(kr["공시일시"], format="%Y%m%d%H%M%S").dt.tz_localize(
        "Asia/Seoul").dt.tz_convert("UTC")
    assert (known.to_numpy() == truth["known_at"].to_numpy()).all()
    assert set(kr["구분"]) <= {"액면분할", "현금배당"}
    assert (kr["값"].astype(float).to_numpy() == truth["value"].to_numpy()).all()
    eu = pd.read_csv(root / "eu/corporate_actions.csv", sep=";", decimal=",")
    truth = ca[ca["asset_id"].str.startswith("DE")].reset_index(drop=True)
    assert (pd.to_datetime(eu["AnnouncedAt"], utc=True).to_numpy() ==
            truth["known_at"].to_numpy()).all()
    assert (eu["Value"].to_numpy() == truth["value"].to_numpy()).all()
    assert eu["AnnouncedAt"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00").all()


def test_on_file_callback_and_markets_without_ftp(tmp_path):
    from quantlib.sandbox import generate

    seen = []
    u = generate(n_assets=5, years=0.25, seed=2, markets=("US",))
    assert write_ftp_tree(u, tmp_path, on_file=seen.append) == [] == seen
    u = generate(n_assets=5, years=0.25, seed=2, markets=("EU",))
    files = write_ftp_tree(u, tmp_path, on_file=seen.append)
    assert seen == files and {f.path.split("/")[0] for f in files} == {"eu"}
