"""Reader ``kr-ftp-csv``: the Korean vendor's FTP files (cp949, Korean headers, YYYYMMDD).

Files (docs/architecture.md, "KR over FTP"): ``kr/master.csv`` -> assets,
``kr/tickers.csv`` -> symbols, ``kr/prices/YYYYMMDD.csv`` -> prices,
``kr/corporate_actions.csv`` -> corporate_actions. Prices are integer KRW.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from quantlib.calendars import market as market_info
from quantlib.errors import StandardizeError
from quantlib.raw import Delivery
from quantlib.standardize.batch import CanonicalBatch, conform
from quantlib.standardize.common import (
    listed_known_at,
    price_known_at,
    read_csv_many,
    to_date,
    to_float,
    unparsed,
)

__all__ = ["read_kr", "read_kr_many", "KR_COLUMNS", "KR_ACTION_KINDS"]

ENCODING = "cp949"
KR_COLUMNS: dict[str, list[str]] = {
    "master": ["표준코드", "단축코드", "종목명", "업종", "상장일", "상장폐지일"],
    "tickers": ["표준코드", "단축코드", "적용시작일", "적용종료일"],
    "prices": ["일자", "표준코드", "단축코드", "종목명", "시가", "고가", "저가", "종가", "거래량"],
    "corporate_actions": ["표준코드", "권리락일", "구분", "값", "공시일시"],
}
KR_ACTION_KINDS = {"액면분할": "split", "현금배당": "dividend"}
_YMD = "%Y%m%d"
_PARSED = {  # canonical field -> vendor column, for values that must parse
    "master": {"listed": "상장일", "delisted": "상장폐지일"},
    "tickers": {"valid_from": "적용시작일", "valid_to": "적용종료일"},
    "prices": {"date": "일자", "open": "시가", "high": "고가", "low": "저가", "close": "종가",
               "volume": "거래량"},
    "corporate_actions": {"ex_date": "권리락일", "value": "값", "known_at": "공시일시"},
}


def _kind_of(file: str) -> str:
    name = file.rstrip("/").rsplit("/", 1)[-1]
    if "/prices/" in f"/{file}":
        return "prices"
    stem = name.removesuffix(".csv")
    if stem in KR_COLUMNS:
        return stem
    return ""


def read_kr(data: bytes, d: Delivery) -> CanonicalBatch:
    """Standardize one KR FTP file.

    Examples
    --------
    >>> from quantlib.raw import Delivery
    >>> text = "일자,표준코드,단축코드,종목명,시가,고가,저가,종가,거래량\\n"
    >>> text += "20240304,KR7005930003,005930,삼성전자,100,110,90,105,1000\\n"
    >>> d = Delivery("ftp-kr", "KR", "kr/prices/20240304.csv", "kr-ftp-csv", "0" * 64,
    ...              0, 1, pd.Timestamp("2024-03-04", tz="UTC"), "f", "raw/00/0")
    >>> p = read_kr(text.encode("cp949"), d).prices
    >>> p[["asset_id", "close", "row"]].values.tolist()
    [['KR7005930003', 105.0, 1]]
    >>> str(p["known_at"].iloc[0])
    '2024-03-04 06:45:00+00:00'
    """
    return read_kr_many([(data, d)])


def read_kr_many(items: Sequence[tuple[bytes, Delivery]]) -> CanonicalBatch:
    """Standardize many KR FTP files at once (one parse per file kind)."""
    groups: dict[str, list[tuple[bytes, Delivery]]] = {}
    for data, d in items:
        kind = _kind_of(d.file)
        if not kind:
            raise StandardizeError("KR file must be master, tickers, prices/* or corporate_actions",
                                   found=d.file, fix="register a reader for this file",
                                   source=d.source, market=d.market, file=d.file)
        groups.setdefault(kind, []).append((data, d))
    frames, bad = {}, []
    for kind, group in groups.items():
        f = read_csv_many(group, encoding=ENCODING, sep=",", expected=KR_COLUMNS[kind])
        name = {"master": "assets", "tickers": "symbols"}.get(kind, kind)
        frames[name] = _PARSERS[kind](f)
        bad.append(unparsed(name, f, frames[name], _PARSED[kind]))
    return CanonicalBatch(**frames, unparsed=pd.concat(bad, ignore_index=True))


def _assets(f: pd.DataFrame) -> pd.DataFrame:
    m = market_info("KR")
    listed = to_date(f["상장일"], _YMD)
    out = pd.DataFrame({
        "asset_id": f["표준코드"], "market": m.code, "mic": m.mic, "currency": m.currency,
        "sector": f["업종"], "name": f["종목명"], "listed": listed,
        "delisted": to_date(f["상장폐지일"], _YMD), "known_at": listed_known_at(listed),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("assets", out)


def _symbols(f: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "asset_id": f["표준코드"], "symbol": f["단축코드"],
        "valid_from": to_date(f["적용시작일"], _YMD), "valid_to": to_date(f["적용종료일"], _YMD),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("symbols", out)


def _prices(f: pd.DataFrame) -> pd.DataFrame:
    dates = to_date(f["일자"], _YMD)
    out = pd.DataFrame({
        "asset_id": f["표준코드"], "date": dates, "open": to_float(f["시가"]),
        "high": to_float(f["고가"]), "low": to_float(f["저가"]), "close": to_float(f["종가"]),
        "volume": to_float(f["거래량"]), "known_at": price_known_at("KR", dates),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("prices", out)


def _actions(f: pd.DataFrame) -> pd.DataFrame:
    announced = pd.to_datetime(f["공시일시"], format="%Y%m%d%H%M%S", errors="coerce")
    known = pd.Series(pd.DatetimeIndex(announced).tz_localize("Asia/Seoul").tz_convert("UTC"),
                      index=f.index)
    out = pd.DataFrame({
        "asset_id": f["표준코드"], "ex_date": to_date(f["권리락일"], _YMD),
        "kind": f["구분"].map(lambda k: KR_ACTION_KINDS.get(k, k)), "value": to_float(f["값"]),
        "known_at": known, "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("corporate_actions", out)


_PARSERS = {"master": _assets, "tickers": _symbols, "prices": _prices,
            "corporate_actions": _actions}
