"""Long tables as zarr groups: one 1-D array per column along the dimension ``row``.

Each column keeps its exact pandas dtype (recorded in the group's ``dtypes``
attribute) so that a table read back equals the frame written:

- datetimes (naive or UTC, any unit) are stored as ``int64`` ticks of their unit, NaT
  as ``-2**63``;
- strings are stored as variable-length UTF-8 (numpy ``StringDType``); missing values
  are written as ``""`` with a boolean ``<column>.isna`` mask array beside them;
- numbers and booleans are stored as they are (nullable extension types via a mask).

Row ranges: the group attribute ``ranges`` holds, for the ``known_at`` column, a list of
``[start, stop, lo, hi]``: rows ``start:stop`` hold ``known_at`` ticks (as stored)
between ``lo`` and ``hi``. :func:`write_table` records one range per
:data:`CHUNK_ROWS` rows, :func:`append_table` one per append (small adjacent ones are
merged so the list stays short; a merged range is looser, never wrong). A reader that
looks for given ``known_at`` values (the statements key check of a delta commit) reads
only the ranges that can hold them (:func:`rows_holding`), not the whole table; rows
never move inside a table (compaction retiles chunks only), so the ranges stay exact.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import zarr

from quantlib.errors import StoreError
from quantlib.store import dategrid

__all__ = ["write_table", "append_table", "read_table_group", "table_columns", "CHUNK_ROWS",
           "rows_holding", "RANGE_COLUMN"]

_MASK_SUFFIX = ".isna"
_CHUNK_ROWS = 1 << 16
#: Rows per full chunk of a table column (appends add smaller chunks until compaction).
CHUNK_ROWS = _CHUNK_ROWS
#: The column whose per-row-range min/max a table keeps (group attribute ``ranges``).
RANGE_COLUMN = "known_at"
# appended (small) ranges kept apart before adjacent ones are merged
_MAX_SMALL_RANGES = 16


def _is_string_dtype(dtype: Any) -> bool:
    if isinstance(dtype, np.dtype):
        return dtype.kind == "O"
    return isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype))


def _encode(series: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """Column -> (values array, missing-mask array or None)."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return np.asarray(series.dt.tz_localize(None).to_numpy()).view("int64"), None
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        return np.asarray(series.to_numpy()).view("int64"), None
    if _is_string_dtype(dtype):
        mask = series.isna().to_numpy()
        filled = series.astype(object).where(~mask, "")
        values = np.array([str(v) for v in filled], dtype=np.dtypes.StringDType())
        return values, (mask if mask.any() else None)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        mask = series.isna().to_numpy()
        base = getattr(dtype, "numpy_dtype", np.dtype("float64"))
        return series.to_numpy(dtype=base, na_value=0), (mask if mask.any() else None)
    return series.to_numpy(), None


def _decode(values: np.ndarray, mask: np.ndarray | None, dtype_str: str) -> pd.Series:
    """Inverse of :func:`_encode` given the recorded pandas dtype string."""
    dtype = pd.api.types.pandas_dtype(dtype_str)
    if isinstance(dtype, pd.DatetimeTZDtype):
        naive = values.view(f"datetime64[{dtype.unit}]")
        return pd.Series(pd.DatetimeIndex(naive).tz_localize(str(dtype.tz)))
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        return pd.Series(values.view(dtype))
    if _is_string_dtype(dtype):
        obj = values.astype(object)
        if mask is not None:
            obj[mask] = None
        return pd.Series(obj, dtype=dtype)
    if mask is not None:
        out = pd.Series(values).astype(dtype)
        out[mask] = pd.NA
        return out
    if isinstance(dtype, np.dtype):
        return pd.Series(values.astype(dtype, copy=False))
    return pd.Series(values).astype(dtype)


def write_table(root: zarr.Group, name: str, frame: pd.DataFrame) -> None:
    """Write ``frame`` as the group ``name`` below ``root`` (replacing it).

    Examples
    --------
    >>> import zarr
    >>> root = zarr.group(store=zarr.storage.MemoryStore())
    >>> df = pd.DataFrame({"asset_id": ["A", None], "x": [1.5, 2.0]})
    >>> write_table(root, "t", df)
    >>> read_table_group(root, "t").equals(df)
    True
    """
    if name in root:
        del root[name]
    group = root.create_group(name)
    n = len(frame)
    dtypes: dict[str, str] = {}
    for col in frame.columns:
        key = str(col)
        if "/" in key or key.endswith(_MASK_SUFFIX):
            raise StoreError("table column names must not contain '/' or end in '.isna'",
                             found=repr(key), fix="rename the column", field=key)
        values, mask = _encode(frame[col])
        dtypes[key] = str(frame[col].dtype)
        chunks = (_CHUNK_ROWS,)  # fixed: appends fill the last chunk, no tiny chunks
        group.create_array(key, data=values, chunks=chunks, dimension_names=("row",))
        if mask is not None:
            group.create_array(key + _MASK_SUFFIX, data=mask, chunks=chunks,
                               dimension_names=("row",))
    attrs: dict[str, Any] = {"kind": "table", "columns": [str(c) for c in frame.columns],
                             "dtypes": dtypes, "rows": n}
    if RANGE_COLUMN in frame.columns:
        ticks = _encode(frame[RANGE_COLUMN])[0]
        attrs["ranges"] = {RANGE_COLUMN: [_range(ticks[a:a + _CHUNK_ROWS], a)
                                          for a in range(0, n, _CHUNK_ROWS)]}
    group.attrs.update(attrs)


def _range(ticks: np.ndarray, start: int) -> list[int]:
    """``[start, stop, lo, hi]`` of one row range (``ticks``: the stored int64 values)."""
    return [start, start + len(ticks), int(ticks.min()), int(ticks.max())]


def _merge_small(ranges: list[list[int]]) -> list[list[int]]:
    """Merge adjacent ranges (smallest pair first, never past :data:`CHUNK_ROWS` rows)
    until at most ``_MAX_SMALL_RANGES`` ranges are smaller than a chunk."""
    out = [list(r) for r in ranges]
    while sum(r[1] - r[0] < _CHUNK_ROWS for r in out) > _MAX_SMALL_RANGES:
        sizes = [(b[1] - a[0], i) for i, (a, b) in
                 enumerate(zip(out[:-1], out[1:], strict=True)) if b[1] - a[0] <= _CHUNK_ROWS]
        if not sizes:
            break
        i = min(sizes)[1]
        a, b = out[i], out.pop(i + 1)
        out[i] = [a[0], b[1], min(a[2], b[2]), max(a[3], b[3])]
    return out


def append_table(root: zarr.Group, name: str, frame: pd.DataFrame) -> int:
    """Append ``frame``'s rows to the stored table ``name`` (created if absent); only the
    tail chunks are written. Returns the table's new row count.

    Examples
    --------
    >>> import zarr
    >>> root = zarr.group(store=zarr.storage.MemoryStore())
    >>> write_table(root, "t", pd.DataFrame({"a": ["x"], "v": [1.0]}))
    >>> append_table(root, "t", pd.DataFrame({"a": [None], "v": [2.0]}))
    2
    >>> read_table_group(root, "t")["a"].isna().tolist()
    [False, True]
    """
    if name not in root:
        write_table(root, name, frame)
        return len(frame)
    group = cast(zarr.Group, root[name])
    attrs: dict[str, Any] = dict(group.attrs)
    n0 = int(attrs["rows"])
    n = n0 + len(frame)
    members = set(group.array_keys())
    for col in (str(c) for c in attrs["columns"]):
        values, mask = _encode(frame[col].astype(attrs["dtypes"][col]))
        # the appended rows get one chunk of their own (no stored chunk is rewritten;
        # compaction merges these chunks: quantlib.store.dategrid.compact_table)
        arr = dategrid.resize(cast(zarr.Array, group[col]), (n,), one_chunk=True)
        arr[n0:] = values
        key = col + _MASK_SUFFIX
        if mask is None and key not in members:
            continue
        if key not in members:
            group.create_array(key, shape=(n0,), dtype=bool, chunks=(_CHUNK_ROWS,),
                               fill_value=False, dimension_names=("row",))
        marr = dategrid.resize(cast(zarr.Array, group[key]), (n,), one_chunk=True)
        marr[n0:] = mask if mask is not None else np.zeros(len(frame), dtype=bool)
    update: dict[str, Any] = {"rows": n}
    ranges = attrs.get("ranges", {}).get(RANGE_COLUMN)
    if ranges is None and RANGE_COLUMN in attrs["columns"] and n0:
        # a table written before row ranges: its ranges from the stored column, once
        stored = np.asarray(cast(zarr.Array, group[RANGE_COLUMN])[:n0])
        ranges = [_range(stored[a:a + _CHUNK_ROWS], a) for a in range(0, n0, _CHUNK_ROWS)]
    if ranges is not None and len(frame):
        ticks = _encode(frame[RANGE_COLUMN].astype(attrs["dtypes"][RANGE_COLUMN]))[0]
        update["ranges"] = {RANGE_COLUMN: _merge_small([*ranges, _range(ticks, n0)])}
    group.attrs.update(update)
    return n


def rows_holding(root: zarr.Group, name: str, values: pd.Series) -> list[slice] | None:
    """Row slices of table ``name`` that can hold a :data:`RANGE_COLUMN` value equal to
    one of ``values`` (by the table's row ranges; adjacent slices joined), or ``None``
    when the table keeps no ranges (written before them: read it whole).

    Examples
    --------
    >>> import zarr
    >>> root = zarr.group(store=zarr.storage.MemoryStore())
    >>> t = pd.to_datetime(["2024-01-02", "2024-01-03"], utc=True)
    >>> write_table(root, "s", pd.DataFrame({"v": [1.0, 2.0], "known_at": t}))
    >>> _ = append_table(root, "s", pd.DataFrame({"v": [3.0], "known_at": t[1:] + pd.Timedelta("1D")}))
    >>> rows_holding(root, "s", pd.Series(t[1:] + pd.Timedelta("1D")))
    [slice(2, 3, None)]
    >>> rows_holding(root, "s", pd.Series(t[:1] - pd.Timedelta("1D")))
    []
    """
    attrs: dict[str, Any] = dict(cast(zarr.Group, root[name]).attrs)
    ranges = attrs.get("ranges", {}).get(RANGE_COLUMN)
    if ranges is None:
        return None
    ticks = np.unique(_encode(values.astype(attrs["dtypes"][RANGE_COLUMN]))[0])
    out: list[slice] = []
    for start, stop, lo, hi in ranges:
        i = int(np.searchsorted(ticks, lo))
        if i == len(ticks) or ticks[i] > hi:
            continue
        if out and out[-1].stop == start:
            out[-1] = slice(out[-1].start, stop)
        else:
            out.append(slice(start, stop))
    return out


def table_columns(root: zarr.Group, name: str) -> list[str]:
    """Column names of a stored table."""
    return [str(c) for c in cast(list, root[name].attrs["columns"])]


def read_table_group(root: zarr.Group, name: str, columns: list[str] | None = None,
                     rows: slice | None = None) -> pd.DataFrame:
    """Read a table written by :func:`write_table` back into a DataFrame (only
    ``columns`` and only the ``rows`` slice if given: e.g. the rows one append added)."""
    group = cast(zarr.Group, root[name])
    attrs: dict[str, Any] = dict(group.attrs)
    columns = [str(c) for c in attrs["columns"]] if columns is None else list(columns)
    dtypes = {str(k): str(v) for k, v in attrs["dtypes"].items()}
    members = set(group.array_keys())

    def load(key: str) -> np.ndarray:
        return np.asarray(cast(zarr.Array, group[key])[rows if rows is not None else slice(None)])

    data: dict[str, pd.Series] = {}
    for col in columns:
        mask = load(col + _MASK_SUFFIX) if col + _MASK_SUFFIX in members else None
        data[col] = _decode(load(col), mask, dtypes[col])
    frame = pd.DataFrame(data, columns=columns)
    if not columns:
        n = int(attrs.get("rows", 0))
        frame = pd.DataFrame(index=pd.RangeIndex(len(range(n)[rows or slice(None)])))
    return frame
