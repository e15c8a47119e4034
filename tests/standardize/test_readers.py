"""Readers on small vendor files written per docs/architecture.md "Vendor formats"."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from quantlib.errors import StandardizeError
from quantlib.raw import RawZone
from quantlib.standardize import FRAME_COLUMNS, PROVENANCE, READERS, CanonicalBatch, standardize

KR_PRICES = ("일자,표준코드,단축코드,종목명,시가,고가,저가,종가,거래량\n"
             "20250303,KR7000000001,000001,가나전자,70000,71500,69000,71000,123456\n"
             "20250303,KR7000000002,000002,다라화학,5120,5200,5000,5010,99\n")
KR_MASTER = ("표준코드,단축코드,종목명,업종,상장일,상장폐지일\n"
             "KR7000000001,000001,가나전자,Information Technology,20010115,\n"
             "KR7000000002,000002,다라화학,Materials,20250210,20250930\n")
KR_TICKERS = ("표준코드,단축코드,적용시작일,적용종료일\n"
              "KR7000000001,000009,20010115,20250102\nKR7000000001,000001,20250102,\n")
KR_ACTIONS = ("표준코드,권리락일,구분,값,공시일시\n"
              "KR7000000001,20250305,액면분할,5,20250210093000\n"
              "KR7000000002,20251222,현금배당,350,20251201170500\n")
EU_PRICES = ("ISIN;Ticker;Date;Open;High;Low;Close;Volume\n"
             "DE0000000001;AAA;03.03.2025;40,10;41,00;39,95;40,55;12000\n"
             "DE0000000001;AAA;04.03.2025;40,55;40,60;38,00;38,20;15000\n")
EU_REF = ("ISIN;Ticker;Name;Sector;ListingDate;DelistingDate\n"
          "DE0000000001;AAA;Alpha AG;Industrials;01.02.2010;\n")
EU_ACTIONS = ("ISIN;ExDate;Type;Value;AnnouncedAt\n"
              "DE0000000001;15.05.2025;DIVIDEND;1,25;2025-04-20T10:15:00+02:00\n")

JP_PRICES = ("日付,銘柄コード,ISINコード,銘柄名,始値,高値,安値,終値,出来高\n"
             "2025/03/03,7203,JP3720300007,東京自動車,2650,2700,2601,2688,1500300\n"
             "2025/03/03,8301,JP3830100000,日本銀行,1020,1022,1001,1010,800\n")
JP_MASTER = ("ISINコード,銘柄コード,銘柄名,業種,上場日,上場廃止日\n"
             "JP3720300007,7203,東京自動車,Consumer Discretionary,1949/05/16,\n"
             "JP3830100000,8301,日本銀行,Financials,2025/02/10,2025/09/30\n")
JP_ACTIONS = ("ISINコード,権利落日,種別,値,公表日時\n"
              "JP3720300007,2025/03/27,株式分割,5,2025/02/10 15:00\n"
              "JP3830100000,2025/09/26,現金配当,25,2025/08/01 16:30\n")


def _deliver(raw, text, file, fmt, market, source, encoding="utf-8"):
    return raw.put(text.encode(encoding), source=source, market=market, file=file,
                   fetch_id="t", fmt=fmt)


@pytest.fixture
def raw(tmp_path):
    return RawZone(str(tmp_path))


def test_kr_files(raw):
    ds = [_deliver(raw, t, f, "kr-ftp-csv", "KR", "ftp-kr", "cp949") for t, f in [
        (KR_PRICES, "kr/prices/20250303.csv"), (KR_MASTER, "kr/master.csv"),
        (KR_TICKERS, "kr/tickers.csv"), (KR_ACTIONS, "kr/corporate_actions.csv")]]
    b = standardize(ds, raw)
    p = b.prices
    assert p[["asset_id", "open", "high", "low", "close", "volume", "row"]].values.tolist() == [
        ["KR7000000001", 70000.0, 71500.0, 69000.0, 71000.0, 123456.0, 1],
        ["KR7000000002", 5120.0, 5200.0, 5000.0, 5010.0, 99.0, 2]]
    assert p["date"].iloc[0] == pd.Timestamp("2025-03-03")
    # XKRX closes 15:30 KST = 06:30 UTC, plus the 15 minute vendor lag
    assert p["known_at"].iloc[0] == pd.Timestamp("2025-03-03 06:45", tz="UTC")
    a = b.assets
    assert a[["asset_id", "market", "mic", "currency", "name"]].values.tolist()[1] == [
        "KR7000000002", "KR", "XKRX", "KRW", "다라화학"]
    assert a["delisted"].isna().tolist() == [True, False]
    assert a["known_at"].iloc[1] == pd.Timestamp("2025-02-10", tz="UTC")
    s = b.symbols
    assert s["symbol"].tolist() == ["000009", "000001"]
    assert s["valid_to"].iloc[0] == pd.Timestamp("2025-01-02") and pd.isna(s["valid_to"].iloc[1])
    ca = b.corporate_actions
    assert ca[["kind", "value"]].values.tolist() == [["split", 5.0], ["dividend", 350.0]]
    assert ca["known_at"].iloc[0] == pd.Timestamp("2025-02-10 00:30", tz="UTC")   # KST - 9h


def test_eu_files(raw):
    ds = [_deliver(raw, t, f, "eu-ftp-csv", "EU", "ftp-eu") for t, f in [
        (EU_PRICES, "eu/prices/prices_202503.csv"), (EU_REF, "eu/reference.csv"),
        (EU_ACTIONS, "eu/corporate_actions.csv")]]
    b = standardize(ds, raw)
    assert b.prices[["open", "high", "low", "close", "volume"]].values.tolist()[0] == [
        40.10, 41.0, 39.95, 40.55, 12000.0]
    assert b.prices["date"].tolist() == [pd.Timestamp("2025-03-03"), pd.Timestamp("2025-03-04")]
    # XETR closes 17:30 CET = 16:30 UTC
    assert b.prices["known_at"].iloc[0] == pd.Timestamp("2025-03-03 16:45", tz="UTC")
    assert b.assets["listed"].iloc[0] == pd.Timestamp("2010-02-01")
    assert b.corporate_actions[["kind", "value"]].values.tolist() == [["dividend", 1.25]]
    assert b.corporate_actions["known_at"].iloc[0] == pd.Timestamp("2025-04-20 08:15", tz="UTC")


def _page(records, page=1, next_page=None):
    return json.dumps({"data": records, "page": page, "next_page": next_page,
                       "total_rows": len(records)})


def test_api_pages_concatenate_and_fx_inverts(raw):
    day = 1740960000000     # 2025-03-03 00:00 UTC
    p1 = _page([{"isin": "US0000000001", "ticker": "AAA", "t": day, "o": 10.0, "h": 11.0,
                 "l": 9.5, "c": 10.5, "v": 1000}], 1, 2)
    p2 = _page([{"isin": "US0000000002", "ticker": "BBB", "t": day, "o": 20.0, "h": 21.0,
                 "l": 19.5, "c": 20.5, "v": 2000}], 2, None)
    fx = _page([{"currency": "EUR", "t": day, "per_usd": 0.8},
                {"currency": "KRW", "t": day, "per_usd": 1250.0}])
    st = _page([{"isin": "US0000000001", "field": "revenue", "period_end_ms": 1735603200000,
                 "value": 1.5e9, "currency": "USD", "published_ms": 1741000000000}])
    ds = [_deliver(raw, p1, "api/v1/prices?market=US&page=1", "api-json", "US", "api-us"),
          _deliver(raw, p2, "api/v1/prices?market=US&page=2", "api-json", "US", "api-us"),
          _deliver(raw, fx, "api/v1/fx?page=1", "api-json", "FX", "api-fx"),
          _deliver(raw, st, "api/v1/fundamentals?market=US&page=1", "api-json", "US", "api-us")]
    b = standardize(ds, raw)
    assert b.prices["asset_id"].tolist() == ["US0000000001", "US0000000002"]
    assert b.prices["row"].tolist() == [0, 0]
    assert b.prices["file"].tolist()[1] == "api/v1/prices?market=US&page=2"
    # XNYS closes 16:00 EST = 21:00 UTC
    assert b.prices["known_at"].iloc[0] == pd.Timestamp("2025-03-03 21:15", tz="UTC")
    assert b.fx["rate"].tolist() == [1 / 0.8, 1 / 1250.0]
    assert b.fx["known_at"].iloc[0] == pd.Timestamp("2025-03-03 21:15", tz="UTC")
    assert b.statements[["field", "value"]].values.tolist() == [["revenue", 1.5e9]]
    assert b.statements["period_end"].iloc[0] == pd.Timestamp("2024-12-31")
    assert b.statements["known_at"].iloc[0] == pd.Timestamp(1741000000000, unit="ms", tz="UTC")


def test_renamed_column_names_file_and_columns(raw):
    text = EU_PRICES.replace("Close", "Schluss")
    d = _deliver(raw, text, "eu/prices/prices_202503.csv", "eu-ftp-csv", "EU", "ftp-eu")
    with pytest.raises(StandardizeError) as err:
        standardize([d], raw)
    assert str(err.value) == (
        "vendor file must have columns ['ISIN', 'Ticker', 'Date', 'Open', 'High', 'Low', "
        "'Close', 'Volume']; found ['ISIN', 'Ticker', 'Date', 'Open', 'High', 'Low', "
        "'Schluss', 'Volume'] (missing ['Close'], unexpected ['Schluss']) [source=ftp-eu, "
        "market=EU, file=eu/prices/prices_202503.csv, field=Close]. Fix: the vendor renamed "
        "or dropped a column: map the new name in the 'eu-ftp-csv' reader "
        "(quantlib.standardize) or ask the vendor to restore it")


def test_renamed_column_among_many_files_names_the_bad_one(raw):
    good = _deliver(raw, KR_PRICES, "kr/prices/20250303.csv", "kr-ftp-csv", "KR", "ftp-kr",
                    "cp949")
    bad = _deliver(raw, KR_PRICES.replace("종가", "종가_v2"), "kr/prices/20250304.csv",
                   "kr-ftp-csv", "KR", "ftp-kr", "cp949")
    with pytest.raises(StandardizeError, match=r"file=kr/prices/20250304.csv, field=종가\]"):
        standardize([good, bad], raw)


def test_garbage_values_become_nan_with_their_row(raw):
    text = KR_PRICES.replace(",71000,", ",n/a,")
    d = _deliver(raw, text, "kr/prices/20250303.csv", "kr-ftp-csv", "KR", "ftp-kr", "cp949")
    b = standardize([d], raw)
    p = b.prices
    assert p["close"].isna().tolist() == [True, False] and p["row"].tolist() == [1, 2]
    assert b.unparsed[["frame", "file", "row", "field", "text"]].values.tolist() == [
        ["prices", "kr/prices/20250303.csv", 1, "close", "n/a"]]


def test_wrong_encoding_and_unknown_format(raw):
    d = _deliver(raw, KR_PRICES, "kr/prices/20250303.csv", "kr-ftp-csv", "KR", "ftp-kr",
                 "utf-8")
    with pytest.raises(StandardizeError, match="vendor file must be encoded as cp949"):
        standardize([d], raw)
    x = raw.put(b"<xml/>", source="drop", market="US", file="a.xml", fetch_id="t", fmt="xml")
    with pytest.raises(StandardizeError, match="delivery format must be one of kr-ftp-csv"):
        standardize([x], raw)


SAMPLES = {
    "kr-ftp-csv": (KR_PRICES, "kr/prices/20250303.csv", "KR", "cp949"),
    "eu-ftp-csv": (EU_PRICES, "eu/prices/prices_202503.csv", "EU", "utf-8"),
    "jp-ftp-csv": (JP_PRICES, "jp/daily/20250303.csv", "JP", "shift_jis"),
    "api-json": (_page([{"isin": "US1", "ticker": "A", "t": 1740960000000, "o": 1.0,
                         "h": 1.0, "l": 1.0, "c": 1.0, "v": 1}]),
                 "api/v1/prices?market=US&page=1", "US", "utf-8"),
    "yahoo-csv": ("Date,Open,High,Low,Close,Volume,Adj Close\n2013-03-01,1,2,0.5,1.5,10,1.2\n",
                  "AAPL.csv", "US", "utf-8"),
}


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_reader_contract(raw, fmt):
    """Every registered reader returns canonical frames with provenance for its sample."""
    text, file, market, enc = SAMPLES[fmt]
    d = _deliver(raw, text, file, fmt, market, "contract", enc)
    entry = READERS[fmt]
    one = entry.load()(raw.get(d.sha256), d)
    many = entry.load_many()([(raw.get(d.sha256), d)])
    for b in (one, many):
        assert isinstance(b, CanonicalBatch)
        assert len(b.prices) == (2 if fmt.endswith("-ftp-csv") else 1)
        for name, frame in b.frames().items():
            want = dict(FRAME_COLUMNS[name], **PROVENANCE)
            assert frame.dtypes.astype(str).to_dict() == want, name
        first = 0 if fmt == "api-json" else 1    # JSON: index in page; CSV: 1-based row
        assert b.prices[["source", "file", "row"]].values.tolist()[0] == ["contract", file, first]


def test_jp_files_shift_jis_japanese_headers(raw):
    """The JP spec: Shift_JIS, Japanese headers, YYYY/MM/DD, JST timestamps, 20 min lag."""
    ds = [_deliver(raw, t, f, "jp-ftp-csv", "JP", "ftp-jp", "shift_jis") for t, f in [
        (JP_PRICES, "jp/daily/20250303.csv"), (JP_MASTER, "jp/meigara.csv"),
        (JP_ACTIONS, "jp/kenri.csv")]]
    b = standardize(ds, raw)
    p = b.prices
    assert p[["asset_id", "open", "high", "low", "close", "volume"]].values.tolist() == [
        ["JP3720300007", 2650.0, 2700.0, 2601.0, 2688.0, 1500300.0],
        ["JP3830100000", 1020.0, 1022.0, 1001.0, 1010.0, 800.0]]
    # XTKS closes 15:30 JST (since 2024-11-05) = 06:30 UTC, plus JP's 20 minute vendor lag
    assert p["known_at"].iloc[0] == pd.Timestamp("2025-03-03 06:50", tz="UTC")
    a = b.assets
    assert a[["market", "mic", "currency", "name"]].values.tolist()[1] == [
        "JP", "XTKS", "JPY", "日本銀行"]
    assert a["listed"].iloc[0] == pd.Timestamp("1949-05-16")
    assert a["delisted"].iloc[1] == pd.Timestamp("2025-09-30")
    ca = b.corporate_actions
    assert ca[["kind", "value"]].values.tolist() == [["split", 5.0], ["dividend", 25.0]]
    # 15:00 JST on 2025-02-10 is 06:00 UTC
    assert ca["known_at"].iloc[0] == pd.Timestamp("2025-02-10 06:00", tz="UTC")
    assert b.unparsed.empty
    with pytest.raises(StandardizeError, match="vendor file must be encoded as shift_jis"):
        standardize([_deliver(raw, JP_MASTER, "jp/meigara.csv", "jp-ftp-csv", "JP", "ftp-jp",
                              "utf-8")], raw)


def test_ragged_and_quoted_rows_fall_back_to_pandas(raw):
    ragged = EU_PRICES + "DE0000000001;AAA;05.03.2025;38,20;39,00;38,00;38,50\n"
    quoted = EU_PRICES.replace("DE0000000001;AAA;04", 'DE0000000001;"AAA";04')
    d1 = _deliver(raw, ragged, "eu/prices/prices_202503.csv", "eu-ftp-csv", "EU", "ftp-eu")
    d2 = _deliver(raw, quoted, "eu/prices/prices_202504.csv", "eu-ftp-csv", "EU", "ftp-eu")
    b = standardize([d1, d2], raw)
    p = b.prices
    assert p[["file", "row"]].values.tolist() == [
        ["eu/prices/prices_202503.csv", 1], ["eu/prices/prices_202503.csv", 2],
        ["eu/prices/prices_202503.csv", 3], ["eu/prices/prices_202504.csv", 1],
        ["eu/prices/prices_202504.csv", 2]]
    assert p["volume"].isna().tolist() == [False, False, True, False, False]
    assert p["close"].tolist()[3:] == [40.55, 38.20]
