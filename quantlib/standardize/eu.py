"""Reader ``eu-ftp-csv``: the European vendor's FTP files (utf-8, ``;``, decimal comma).

Files (docs/architecture.md, "EU over FTP"): ``eu/reference.csv`` -> assets,
``eu/tickers.csv`` -> symbols, ``eu/prices/prices_YYYYMM.csv`` -> prices,
``eu/corporate_actions.csv`` -> corporate_actions. Dates are ``DD.MM.YYYY``.
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

__all__ = ["read_eu", "read_eu_many", "EU_COLUMNS", "EU_ACTION_KINDS"]

EU_COLUMNS: dict[str, list[str]] = {
    "reference": ["ISIN", "Ticker", "Name", "Sector", "ListingDate", "DelistingDate"],
    "tickers": ["ISIN", "Ticker", "ValidFrom", "ValidTo"],
    "prices": ["ISIN", "Ticker", "Date", "Open", "High", "Low", "Close", "Volume"],
    "corporate_actions": ["ISIN", "ExDate", "Type", "Value", "AnnouncedAt"],
}
EU_ACTION_KINDS = {"SPLIT": "split", "DIVIDEND": "dividend"}
_DMY = "%d.%m.%Y"
_PARSED = {  # canonical field -> vendor column, for values that must parse
    "reference": {"listed": "ListingDate", "delisted": "DelistingDate"},
    "tickers": {"valid_from": "ValidFrom", "valid_to": "ValidTo"},
    "prices": {"date": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close",
               "volume": "Volume"},
    "corporate_actions": {"ex_date": "ExDate", "value": "Value", "known_at": "AnnouncedAt"},
}


def _kind_of(file: str) -> str:
    if "/prices/" in f"/{file}":
        return "prices"
    stem = file.rsplit("/", 1)[-1].removesuffix(".csv")
    return stem if stem in EU_COLUMNS else ""


def read_eu(data: bytes, d: Delivery) -> CanonicalBatch:
    """Standardize one EU FTP file.

    Examples
    --------
    >>> from quantlib.raw import Delivery
    >>> text = "ISIN;Ticker;Date;Open;High;Low;Close;Volume\\n"
    >>> text += "DE0007164600;SAP;04.03.2024;170,5;172,25;169;171,75;12000\\n"
    >>> d = Delivery("ftp-eu", "EU", "eu/prices/prices_202403.csv", "eu-ftp-csv", "0" * 64,
    ...              0, 1, pd.Timestamp("2024-04-01", tz="UTC"), "f", "raw/00/0")
    >>> p = read_eu(text.encode(), d).prices
    >>> p[["high", "close", "volume"]].values.tolist()
    [[172.25, 171.75, 12000.0]]
    >>> str(p["date"].iloc[0].date()), str(p["known_at"].iloc[0])
    ('2024-03-04', '2024-03-04 16:45:00+00:00')
    """
    return read_eu_many([(data, d)])


def read_eu_many(items: Sequence[tuple[bytes, Delivery]]) -> CanonicalBatch:
    """Standardize many EU FTP files at once (one parse per file kind)."""
    groups: dict[str, list[tuple[bytes, Delivery]]] = {}
    for data, d in items:
        kind = _kind_of(d.file)
        if not kind:
            raise StandardizeError("EU file must be reference, tickers, prices/* or "
                                   "corporate_actions", found=d.file,
                                   fix="register a reader for this file",
                                   source=d.source, market=d.market, file=d.file)
        groups.setdefault(kind, []).append((data, d))
    frames, bad = {}, []
    for kind, group in groups.items():
        f = read_csv_many(group, encoding="utf-8", sep=";", expected=EU_COLUMNS[kind])
        name = {"reference": "assets", "tickers": "symbols"}.get(kind, kind)
        frames[name] = _PARSERS[kind](f)
        bad.append(unparsed(name, f, frames[name], _PARSED[kind]))
    return CanonicalBatch(**frames, unparsed=pd.concat(bad, ignore_index=True))


def _assets(f: pd.DataFrame) -> pd.DataFrame:
    m = market_info("EU")
    listed = to_date(f["ListingDate"], _DMY)
    out = pd.DataFrame({
        "asset_id": f["ISIN"], "market": m.code, "mic": m.mic, "currency": m.currency,
        "sector": f["Sector"], "name": f["Name"], "listed": listed,
        "delisted": to_date(f["DelistingDate"], _DMY), "known_at": listed_known_at(listed),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("assets", out)


def _symbols(f: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "asset_id": f["ISIN"], "symbol": f["Ticker"],
        "valid_from": to_date(f["ValidFrom"], _DMY), "valid_to": to_date(f["ValidTo"], _DMY),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("symbols", out)


def _prices(f: pd.DataFrame) -> pd.DataFrame:
    dates = to_date(f["Date"], _DMY)
    out = pd.DataFrame({
        "asset_id": f["ISIN"], "date": dates, "open": to_float(f["Open"], ","),
        "high": to_float(f["High"], ","), "low": to_float(f["Low"], ","),
        "close": to_float(f["Close"], ","), "volume": to_float(f["Volume"], ","),
        "known_at": price_known_at("EU", dates),
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("prices", out)


def _actions(f: pd.DataFrame) -> pd.DataFrame:
    known = pd.to_datetime(f["AnnouncedAt"], utc=True, errors="coerce", format="ISO8601")
    out = pd.DataFrame({
        "asset_id": f["ISIN"], "ex_date": to_date(f["ExDate"], _DMY),
        "kind": f["Type"].map(lambda k: EU_ACTION_KINDS.get(k, k)),
        "value": to_float(f["Value"], ","), "known_at": known,
        "source": f["source"], "file": f["file"], "row": f["row"]})
    return conform("corporate_actions", out)


_PARSERS = {"reference": _assets, "tickers": _symbols, "prices": _prices,
            "corporate_actions": _actions}
