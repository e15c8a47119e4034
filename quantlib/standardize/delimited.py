"""Reader of every delimited (CSV) vendor format declared in ``quantlib/markets.yaml``.

A format (:class:`~quantlib.markets.DelimitedFormat`) fixes the encoding, separator,
decimal mark, date and timestamp formats, the file of each frame and the column map;
this one reader turns any of them into canonical frames. ``kr-ftp-csv`` (CP949, Korean
headers, ``YYYYMMDD``), ``eu-ftp-csv`` (``;``, decimal comma, ``DD.MM.YYYY``) and
``jp-ftp-csv`` (Shift_JIS, Japanese headers, ``YYYY/MM/DD``) are three specs of it.

Market facts (MIC, currency, time zone, vendor lag) come from the delivery's market in
the registry, so the same format could serve two markets.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from quantlib.errors import StandardizeError
from quantlib.markets import FORMATS, DelimitedFormat, market
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

__all__ = ["read_delimited", "read_delimited_many", "delimited_format"]

_DATES = ("listed", "delisted", "valid_from", "valid_to", "date", "ex_date")
_NUMBERS = ("open", "high", "low", "close", "volume", "value")


def delimited_format(d: Delivery) -> DelimitedFormat:
    """The registry's spec of a delivery's format (StandardizeError if it has none).

    Examples
    --------
    >>> d = Delivery("ftp-jp", "JP", "jp/meigara.csv", "jp-ftp-csv", "0" * 64, 0, 1,
    ...              pd.Timestamp("2024-03-04", tz="UTC"), "f", "raw/00/0")
    >>> delimited_format(d).encoding
    'shift_jis'
    """
    spec = FORMATS.get(d.fmt)
    if spec is None:
        raise StandardizeError(f"a delimited format must be one of {', '.join(FORMATS)}",
                               found=repr(d.fmt), fix="declare it under `formats:` in "
                               "quantlib/markets.yaml", source=d.source, market=d.market,
                               file=d.file, field="fmt")
    return spec


def read_delimited(data: bytes, d: Delivery) -> CanonicalBatch:
    """Standardize one delimited vendor file.

    Examples
    --------
    >>> text = "일자,표준코드,단축코드,종목명,시가,고가,저가,종가,거래량\\n"
    >>> text += "20240304,KR7005930003,005930,삼성전자,100,110,90,105,1000\\n"
    >>> d = Delivery("ftp-kr", "KR", "kr/prices/20240304.csv", "kr-ftp-csv", "0" * 64,
    ...              0, 1, pd.Timestamp("2024-03-04", tz="UTC"), "f", "raw/00/0")
    >>> p = read_delimited(text.encode("cp949"), d).prices
    >>> p[["asset_id", "close", "row"]].values.tolist()
    [['KR7005930003', 105.0, 1]]
    >>> str(p["known_at"].iloc[0])
    '2024-03-04 06:45:00+00:00'
    >>> text = "ISIN;Ticker;Date;Open;High;Low;Close;Volume\\n"
    >>> text += "DE0007164600;SAP;04.03.2024;170,5;172,25;169;171,75;12000\\n"
    >>> d = Delivery("ftp-eu", "EU", "eu/prices/prices_202403.csv", "eu-ftp-csv", "0" * 64,
    ...              0, 1, pd.Timestamp("2024-04-01", tz="UTC"), "f", "raw/00/0")
    >>> p = read_delimited(text.encode(), d).prices
    >>> p[["high", "close", "volume"]].values.tolist()
    [[172.25, 171.75, 12000.0]]
    >>> str(p["date"].iloc[0].date()), str(p["known_at"].iloc[0])
    ('2024-03-04', '2024-03-04 16:45:00+00:00')
    """
    return read_delimited_many([(data, d)])


def read_delimited_many(items: Sequence[tuple[bytes, Delivery]]) -> CanonicalBatch:
    """Standardize many delimited files at once (one parse per format, market and frame)."""
    groups: dict[tuple[str, str, str], list[tuple[bytes, Delivery]]] = {}
    for data, d in items:
        spec = delimited_format(d)
        frame = spec.frame_of(d.file)
        if not frame:
            raise StandardizeError(
                f"a {d.fmt} file must be one of {', '.join(spec.files.values())}",
                found=d.file, fix="register a reader for this file or fix the source's files",
                source=d.source, market=d.market, file=d.file)
        groups.setdefault((d.fmt, d.market, frame), []).append((data, d))
    parts: dict[str, list[pd.DataFrame]] = {}
    bad = []
    for (fmt, code, frame), group in groups.items():
        spec = FORMATS[fmt]
        f = read_csv_many(group, encoding=spec.encoding, sep=spec.separator,
                          expected=list(spec.columns[frame]))
        out = _parse(spec, frame, code, f)
        parts.setdefault(frame, []).append(out)
        parsed = {canon: col for col, canon in spec.columns[frame].items()
                  if canon in (*_DATES, *_NUMBERS, "known_at")}
        bad.append(unparsed(frame, f, out, parsed))
    frames = {k: v[0] if len(v) == 1 else pd.concat(v, ignore_index=True)
              for k, v in parts.items()}
    return CanonicalBatch(**frames, unparsed=pd.concat(bad, ignore_index=True))


def _parse(spec: DelimitedFormat, frame: str, code: str, f: pd.DataFrame) -> pd.DataFrame:
    """Canonical columns of one frame from the vendor's string columns."""
    col = {canon: f[vendor] for vendor, canon in spec.columns[frame].items()}
    out: dict[str, object] = {}
    for name, text in col.items():
        if name in _DATES:
            out[name] = to_date(text, spec.date_format)
        elif name in _NUMBERS:
            out[name] = to_float(text, spec.decimal)
        else:
            out[name] = text
    m = market(code)
    if frame == "assets":
        out.update(market=m.code, mic=m.mic, currency=m.currency,
                   known_at=listed_known_at(out["listed"]))  # type: ignore[arg-type]
    elif frame == "prices":
        out["known_at"] = price_known_at(code, out["date"])  # type: ignore[arg-type]
    elif frame == "corporate_actions":
        out["kind"] = col["kind"].map(lambda k: spec.action_kinds.get(k, k))
        out["known_at"] = _timestamps(col["known_at"], spec.timestamp_format, m.tz)
    out.update(source=f["source"], file=f["file"], row=f["row"])
    return conform(frame, pd.DataFrame(out))


def _timestamps(text: pd.Series, fmt: str, tz: str) -> pd.Series:
    """UTC instants from vendor text: ISO 8601 with offset, or local time in ``tz``.

    Examples
    --------
    >>> _timestamps(pd.Series(["2024/03/01 09:15"]), "%Y/%m/%d %H:%M", "Asia/Tokyo").tolist()
    [Timestamp('2024-03-01 00:15:00+0000', tz='UTC')]
    """
    if fmt == "ISO8601":
        return pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    local = pd.DatetimeIndex(pd.to_datetime(text, format=fmt, errors="coerce"))
    return pd.Series(local.tz_localize(tz, nonexistent="shift_forward", ambiguous=False)
                     .tz_convert("UTC"), index=text.index)
