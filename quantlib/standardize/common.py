"""Helpers the readers share: CSV loading with column checks, number/date parsing, known_at."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from quantlib.calendars import market as market_info
from quantlib.calendars import session_closes
from quantlib.errors import StandardizeError
from quantlib.raw import Delivery

__all__ = ["VENDOR_LAG", "unparsed", "read_csv_text", "read_csv_many", "decode", "check_columns", "to_float", "to_date",
           "repeat_text",
           "price_known_at", "midnight_utc", "listed_known_at", "epoch_ms_date", "epoch_ms_utc"]

VENDOR_LAG = pd.Timedelta(minutes=15)
"""The usual delay between a session's close and the vendor's delivery of its bars; each
market's own lag is ``vendor_lag_minutes`` in ``quantlib/markets.yaml``."""


def check_columns(found: Sequence[str], expected: Sequence[str], d: Delivery) -> None:
    """Raise StandardizeError unless every expected column is present.

    Examples
    --------
    >>> from quantlib.raw import Delivery
    >>> d = Delivery("ftp-eu", "EU", "eu/tickers.csv", "eu-ftp-csv", "0" * 64, 1, 1,
    ...              pd.Timestamp("2024-01-01", tz="UTC"), "f", "raw/00/0")
    >>> check_columns(["ISIN", "Tick"], ["ISIN", "Ticker"], d)
    Traceback (most recent call last):
    ...
    quantlib.errors.StandardizeError: vendor file must have columns ['ISIN', 'Ticker']; found ['ISIN', 'Tick'] (missing ['Ticker'], unexpected ['Tick']) [source=ftp-eu, market=EU, file=eu/tickers.csv, field=Ticker]. Fix: ...
    """
    missing = [c for c in expected if c not in found]
    if missing:
        extra = [c for c in found if c not in expected]
        raise StandardizeError(
            f"vendor file must have columns {list(expected)}",
            found=f"{list(found)} (missing {missing}, unexpected {extra})",
            fix=(f"the vendor renamed or dropped a column: map the new name in the "
                 f"'{d.fmt}' reader (quantlib.standardize) or ask the vendor to restore it"),
            source=d.source, market=d.market, file=d.file, field=missing[0])


def decode(data: bytes, d: Delivery, encoding: str) -> str:
    """Text of a delivery; StandardizeError naming the file if it does not decode."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise StandardizeError(f"vendor file must be encoded as {encoding}",
                               found=str(exc), fix="check the delivery's format/encoding",
                               source=d.source, market=d.market, file=d.file) from None


def _frame_of(text: str, sep: str) -> pd.DataFrame:
    """All-string frame of a CSV text: Arrow's reader (fast, trimmed), pandas as fallback."""
    header = text.split("\n", 1)[0].rstrip("\r").lstrip("\ufeff")
    names = [c.strip() for c in header.split(sep)]
    if len(set(names)) == len(names) and '"' not in header:
        try:
            table = pacsv.read_csv(
                io.BytesIO(text.encode("utf-8")),
                read_options=pacsv.ReadOptions(skip_rows=1, column_names=names),
                parse_options=pacsv.ParseOptions(delimiter=sep),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=False))
            table = pa.table({n: pc.utf8_trim_whitespace(table[n]) for n in names})
            return table.to_pandas()
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # ragged rows or odd quoting: let pandas have a go
    frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                        skip_blank_lines=True)
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    return frame.apply(lambda col: col.str.strip())


def read_csv_text(data: bytes, d: Delivery, *, encoding: str, sep: str,
                  expected: Sequence[str]) -> pd.DataFrame:
    """Parse a vendor CSV into string columns plus provenance (``row`` is 1-based).

    Raises StandardizeError if the bytes do not decode or a column is missing.
    """
    frame = _frame_of(decode(data, d, encoding), sep)
    check_columns(list(frame.columns), expected, d)
    frame = frame.loc[:, list(expected)]
    frame["row"] = np.arange(1, len(frame) + 1, dtype="int64")
    frame["source"] = d.source
    frame["file"] = d.file
    return frame


def read_csv_many(items: Sequence[tuple[bytes, Delivery]], *, encoding: str, sep: str,
                  expected: Sequence[str]) -> pd.DataFrame:
    """Parse many vendor CSVs of one layout at once (one ``read_csv`` call).

    Files whose header line is exactly the expected one are joined and parsed together;
    any other file goes through :func:`read_csv_text` (which checks its columns).

    Examples
    --------
    >>> from quantlib.raw import Delivery
    >>> def dv(f):
    ...     return Delivery("s", "EU", f, "eu-ftp-csv", "0" * 64, 0, None,
    ...                     pd.Timestamp("2024-01-01", tz="UTC"), "x", "raw/00/0")
    >>> items = [(b"a;b\\n1;2\\n3;4\\n", dv("one.csv")), (b"b;a\\n5;6\\n", dv("two.csv"))]
    >>> read_csv_many(items, encoding="utf-8", sep=";", expected=["a", "b"]).values.tolist()
    [['1', '2', 1, 's', 'one.csv'], ['3', '4', 2, 's', 'one.csv'], ['6', '5', 1, 's', 'two.csv']]
    """
    header = sep.join(expected)
    bodies: list[str] = []
    counts: list[int] = []
    fast: list[Delivery] = []
    slow: list[pd.DataFrame] = []
    for data, d in items:
        text = decode(data, d, encoding)
        first, _, body = text.partition("\n")
        if first.rstrip("\r").lstrip("\ufeff").strip() != header or "\"" in body:
            slow.append(read_csv_text(data, d, encoding=encoding, sep=sep, expected=expected))
            continue
        if "\n\n" in body or "\r" in body or body.startswith("\n"):
            lines = body.splitlines()
            n = len(lines) - sum(1 for line in lines if not line.strip())
        else:
            n = body.count("\n") + (0 if body.endswith("\n") or not body else 1)
        if n:
            bodies.append(body if body.endswith("\n") else body + "\n")
        counts.append(n)
        fast.append(d)
    parts = slow
    if fast:
        frame = _frame_of(header + "\n" + "".join(bodies), sep)
        if len(frame) != sum(counts):  # quoting or odd lines: parse file by file instead
            return pd.concat([read_csv_text(data, d, encoding=encoding, sep=sep,
                                            expected=expected) for data, d in items],
                             ignore_index=True)
        frame["row"] = np.concatenate([np.arange(1, n + 1, dtype="int64") for n in counts])
        frame["source"] = repeat_text([d.source for d in fast], counts)
        frame["file"] = repeat_text([d.file for d in fast], counts)
        parts = [frame, *slow]
    return pd.concat(parts, ignore_index=True)


def repeat_text(values: Sequence[str], counts: Sequence[int]) -> pd.api.extensions.ExtensionArray:
    """A ``str`` column holding ``values[i]`` ``counts[i]`` times in turn (a provenance
    column: one file name per row). Built by Arrow's ``take`` from the few distinct
    values, ~30x faster than a numpy string array converted row by row.

    Examples
    --------
    >>> list(repeat_text(["a.csv", "b.csv"], [2, 1]))
    ['a.csv', 'a.csv', 'b.csv']
    """
    index = np.repeat(np.arange(len(values), dtype=np.int64), np.asarray(counts, dtype=np.int64))
    return pd.array(pc.take(pa.array(list(values), pa.large_string()), index), dtype="str")


_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
#: what ``\s`` matches in RE2 (ASCII; not a no-break space, not a vertical tab)
_SPACE = " \t\n\f\r"


def to_float(s: pd.Series, decimal: str = ".") -> pd.Series:
    """Numbers from text; garbage becomes NaN (validate quarantines it).

    Text is cast by Arrow in one pass, which is ~50x faster than ``pd.to_numeric`` on
    string columns: a column that casts whole to finite numbers is done (no regex pass);
    otherwise the values that are not plain numbers (``_NUMBER``) are nulled first.

    Examples
    --------
    >>> to_float(pd.Series(["1234,56", "x", ""]), decimal=",").tolist()
    [1234.56, nan, nan]
    >>> to_float(pd.Series([" 7", "1e3", "-2.5", "n/a"])).tolist()
    [7.0, 1000.0, -2.5, nan]
    """
    if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
        return pd.to_numeric(s, errors="coerce").astype("float64")
    arr = pa.array(s.astype("str").array, type=pa.string())
    if decimal != ".":
        arr = pc.replace_substring(pc.replace_substring(arr, ".", ""), decimal, ".")
    try:  # a clean column: every value casts to a finite number, which _NUMBER admits
        values = pc.cast(pc.utf8_trim(arr, _SPACE), pa.float64()).to_numpy(
            zero_copy_only=False)
        if np.isfinite(values).all():
            return pd.Series(values, index=s.index, dtype="float64")
    except pa.ArrowInvalid:
        pass  # garbage somewhere: only the values _NUMBER admits are cast
    ok = pc.match_substring_regex(arr, _NUMBER)
    clean = pc.if_else(ok, pc.utf8_trim_whitespace(arr), pa.scalar(None, pa.string()))
    values = pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False)
    return pd.Series(values, index=s.index, dtype="float64")


def to_date(s: pd.Series, fmt: str) -> pd.Series:
    """Naive midnight dates from text; empty or garbage becomes NaT (parsed once per value).

    Examples
    --------
    >>> to_date(pd.Series(["20240102", "", "20240102"]), "%Y%m%d").tolist()
    [Timestamp('2024-01-02 00:00:00'), NaT, Timestamp('2024-01-02 00:00:00')]
    """
    codes, uniq = pd.factorize(s, use_na_sentinel=True)
    parsed = pd.to_datetime(pd.Series(uniq, dtype=object), format=fmt, errors="coerce")
    values = parsed.to_numpy(dtype="datetime64[ns]")
    out = np.where(codes >= 0, values[np.clip(codes, 0, None)] if len(values) else
                   np.datetime64("NaT", "ns"), np.datetime64("NaT", "ns"))
    return pd.Series(out, index=s.index, dtype="datetime64[ns]")


def price_known_at(market: str, dates: pd.Series) -> pd.Series:
    """When a bar became knowable: the session close (UTC) plus the market's vendor lag.

    Examples
    --------
    >>> price_known_at("KR", pd.Series(pd.to_datetime(["2024-03-04"]))).astype(str).tolist()
    ['2024-03-04 06:45:00+00:00']
    """
    uniq = pd.DatetimeIndex(dates.dropna().unique()).astype("datetime64[ns]")
    closes = pd.Series(session_closes(market, uniq) + market_info(market).vendor_lag, index=uniq,
                       dtype="datetime64[ns, UTC]")
    known = closes.reindex(pd.DatetimeIndex(dates).astype("datetime64[ns]"))
    return pd.Series(known.array, index=dates.index, dtype="datetime64[ns, UTC]")


def midnight_utc(market: str, dates: pd.Series) -> pd.Series:
    """Local midnight of each date in the market's time zone, as UTC (NaT stays NaT).

    Examples
    --------
    >>> midnight_utc("KR", pd.Series(pd.to_datetime(["2024-03-04"]))).astype(str).tolist()
    ['2024-03-03 15:00:00+00:00']
    """
    tz = market_info(market).tz
    return pd.Series(pd.DatetimeIndex(dates).tz_localize(tz, nonexistent="shift_forward",
                                                         ambiguous=False).tz_convert("UTC"),
                     index=dates.index).astype("datetime64[ns, UTC]")


def epoch_ms_utc(s: pd.Series) -> pd.Series:
    """UTC instants from epoch milliseconds (None -> NaT)."""
    return pd.to_datetime(pd.to_numeric(s, errors="coerce"), unit="ms", utc=True).astype(
        "datetime64[ns, UTC]")


def epoch_ms_date(s: pd.Series) -> pd.Series:
    """Naive dates from epoch milliseconds at 00:00 UTC (None -> NaT)."""
    return epoch_ms_utc(s).dt.tz_localize(None).astype("datetime64[ns]")


def listed_known_at(listed: pd.Series) -> pd.Series:
    """When an asset's master record became known: its listing date at midnight UTC.

    Examples
    --------
    >>> listed_known_at(pd.Series(pd.to_datetime(["2024-03-04"]))).astype(str).tolist()
    ['2024-03-04 00:00:00+00:00']
    """
    return listed.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")


def unparsed(frame: str, raw: pd.DataFrame, out: pd.DataFrame,
             fields: dict[str, str]) -> pd.DataFrame:
    """Vendor text that became NaN/NaT: ``fields`` maps canonical field -> vendor column.

    Examples
    --------
    >>> raw = pd.DataFrame({"Close": ["1,5", "n/a", ""], "source": "s", "file": "f",
    ...                     "row": [1, 2, 3]})
    >>> out = pd.DataFrame({"close": [1.5, float("nan"), float("nan")]})
    >>> unparsed("prices", raw, out, {"close": "Close"})[["row", "field", "text"]].values.tolist()
    [[2, 'close', 'n/a']]
    """
    from quantlib.standardize.batch import UNPARSED_COLUMNS, empty_unparsed

    parts = []
    for name, col in fields.items():
        # only values that came out missing are looked at as text (none, in a clean file)
        bad = out[name].isna().to_numpy() & raw[col].notna().to_numpy()
        if not bad.any():
            continue
        text = raw[col][bad].astype("str")
        given = (text.str.strip() != "").to_numpy()
        bad[bad] = given
        if bad.any():
            parts.append(pd.DataFrame({
                "frame": frame, "source": raw["source"].to_numpy()[bad],
                "file": raw["file"].to_numpy()[bad], "row": raw["row"].to_numpy()[bad],
                "field": name, "text": text.to_numpy()[given]}))
    if not parts:
        return empty_unparsed()
    return pd.concat(parts, ignore_index=True).loc[:, list(UNPARSED_COLUMNS)]
