"""Vectorized formatting helpers shared by the file writers and the JSON API.

All functions take whole columns and return pandas ``str`` Series (or int64 arrays),
so thousands of vendor files are built without per-row Python loops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["codes_of", "str_take", "fmt_dates", "fmt_int", "fmt_decimal_comma", "epoch_ms",
           "symbol_at", "symbol_index", "with_none", "current_symbols"]


def _arrow_str(values: pd.Series | pd.Index | np.ndarray | list[str]) -> pa.Array:
    if isinstance(values, pd.Series | pd.Index) and isinstance(values.dtype, pd.StringDtype):
        arr = pa.array(values)
    else:
        arr = pa.array(np.asarray(values, dtype=object), type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def codes_of(values: pd.Series | pd.Index | np.ndarray | list[str],
             categories: pd.Series | pd.Index | np.ndarray | list[str]) -> np.ndarray:
    """Position of each value in ``categories`` (int32, ``-1`` if absent), via Arrow hashing.

    Examples
    --------
    >>> codes_of(pd.Series(["b", "z", "a"]), ["a", "b"]).tolist()
    [1, -1, 0]
    """
    idx = pc.index_in(_arrow_str(values), value_set=_arrow_str(categories))
    return idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)


def str_take(values: np.ndarray | list[str], codes: np.ndarray) -> pd.Series:
    """``values[codes]`` as a pandas ``str`` Series built in Arrow (no Python objects).

    Examples
    --------
    >>> str_take(np.array(["a", "b"], dtype=object), np.array([1, 1, 0])).tolist()
    ['b', 'b', 'a']
    """
    arr = _arrow_str(values).take(pa.array(np.asarray(codes, dtype=np.int64)))
    return pd.Series(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def fmt_dates(values: np.ndarray | pd.Series, fmt: str) -> pd.Series:
    """Format dates with ``strftime`` once per distinct date; NaT becomes ``""``.

    Examples
    --------
    >>> d = np.array(["2024-01-02", "NaT", "2024-01-02"], dtype="datetime64[ns]")
    >>> fmt_dates(d, "%Y%m%d").tolist()
    ['20240102', '', '20240102']
    """
    arr = np.asarray(values, dtype="datetime64[ns]")
    if not len(arr):
        return pd.Series(np.array([], dtype=object), dtype="str")
    uniq, inv = np.unique(arr, return_inverse=True)
    text = [("" if pd.isna(u) else pd.Timestamp(u).strftime(fmt)) for u in uniq]
    return _arrow_series(pa.array(text, type=pa.string()).take(pa.array(inv.ravel())))


def fmt_int(values: np.ndarray | pd.Series) -> pd.Series:
    """Integers as text (the values must already be whole numbers).

    Examples
    --------
    >>> fmt_int(np.array([12300.0, 7.0])).tolist()
    ['12300', '7']
    """
    ints = np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64)
    return _arrow_series(pa.array(ints).cast(pa.string()))


def _arrow_series(arr: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas ``str`` Series (no Python objects)."""
    return pd.Series(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def fmt_decimal_comma(values: np.ndarray | pd.Series, decimals: int = 2) -> pd.Series:
    """Non-negative numbers with a decimal comma and fixed decimals (``1234,50``).

    Examples
    --------
    >>> fmt_decimal_comma(np.array([1234.5, 0.07, 3.0])).tolist()
    ['1234,50', '0,07', '3,00']
    """
    scale = 10 ** decimals
    units = np.rint(np.asarray(values, dtype=np.float64) * scale).astype(np.int64)
    whole = pa.array(units // scale).cast(pa.string())
    frac = pc.utf8_lpad(pa.array(units % scale).cast(pa.string()), width=decimals, padding="0")
    return _arrow_series(pc.binary_join_element_wise(whole, frac, ","))


def epoch_ms(values: np.ndarray | pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Epoch milliseconds (int64) of naive-UTC or tz-aware datetimes; NaT -> ``-1``.

    Examples
    --------
    >>> epoch_ms(pd.DatetimeIndex(["1970-01-02"])).tolist()
    [86400000]
    """
    if isinstance(values, pd.Series):
        values = values.array
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert(None)
    ns = idx.as_unit("ns").asi8
    return np.where(idx.isna(), -1, ns // 1_000_000)


def symbol_index(symbols: pd.DataFrame, asset_id: pd.Series | np.ndarray,
                 dates: pd.Series | np.ndarray) -> np.ndarray:
    """Row position in ``symbols`` of the ticker valid for each ``(asset_id, date)``.

    ``-1`` where the asset has no ticker yet (or is unknown). Vectorized: one pass per
    ticker change, not per row.

    Examples
    --------
    >>> sym = pd.DataFrame({"asset_id": ["A", "A"], "symbol": ["OLD", "NEW"],
    ...                     "valid_from": pd.to_datetime(["2020-01-01", "2024-01-01"])})
    >>> symbol_index(sym, ["A", "A", "B"], pd.to_datetime(["2023-12-31", "2024-01-01",
    ...                                                    "2024-01-01"])).tolist()
    [0, 1, -1]
    """
    order = np.lexsort((symbols["valid_from"].to_numpy(), symbols["asset_id"].to_numpy(
        dtype=object)))
    ids = symbols["asset_id"].to_numpy(dtype=object)[order]
    vf = symbols["valid_from"].to_numpy().astype("datetime64[ns]")[order]
    uniq, start, count = np.unique(ids, return_index=True, return_counts=True)
    code = codes_of(asset_id, uniq).astype(np.int64)
    d = np.asarray(dates, dtype="datetime64[ns]")
    known = code >= 0
    first = np.where(known, start[code], 0)
    pos = np.where(known & (d >= vf[first]), first, -1)
    for k in range(1, int(count.max()) if len(count) else 0):
        nxt = np.where(known & (count[code] > k), first + k, first)
        pos = np.where((nxt != first) & (d >= vf[nxt]), nxt, pos)
    return np.where(pos >= 0, order[np.maximum(pos, 0)], -1)


def symbol_at(symbols: pd.DataFrame, asset_id: pd.Series | np.ndarray,
              dates: pd.Series | np.ndarray) -> np.ndarray:
    """The ticker valid for each ``(asset_id, date)`` pair (object array, None if none).

    Examples
    --------
    >>> sym = pd.DataFrame({"asset_id": ["A", "A"], "symbol": ["OLD", "NEW"],
    ...                     "valid_from": pd.to_datetime(["2020-01-01", "2024-01-01"]),
    ...                     "valid_to": pd.to_datetime(["2024-01-01", None])})
    >>> symbol_at(sym, np.array(["A", "A"]), pd.to_datetime(["2023-12-31", "2024-01-01"]))
    array(['OLD', 'NEW'], dtype=object)
    """
    idx = symbol_index(symbols, asset_id, dates)
    return with_none(symbols["symbol"].to_numpy(dtype=object))[idx]


def with_none(values: np.ndarray) -> np.ndarray:
    """An object array of ``values`` plus a trailing None (so index ``-1`` means missing).

    Examples
    --------
    >>> with_none(np.array(["a"], dtype=object))[[0, -1]].tolist()
    ['a', None]
    """
    return np.concatenate([np.asarray(values, dtype=object), np.array([None], dtype=object)])


def current_symbols(symbols: pd.DataFrame) -> pd.Series:
    """The latest ticker of every asset, indexed by asset_id.

    Examples
    --------
    >>> sym = pd.DataFrame({"asset_id": ["A", "A"], "symbol": ["OLD", "NEW"],
    ...                     "valid_from": pd.to_datetime(["2020-01-01", "2024-01-01"])})
    >>> current_symbols(sym).to_dict()
    {'A': 'NEW'}
    """
    last = symbols.sort_values(["asset_id", "valid_from"]).drop_duplicates("asset_id",
                                                                            keep="last")
    return last.set_index("asset_id")["symbol"]
