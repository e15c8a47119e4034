"""Long tables as zarr groups: one 1-D array per column along the dimension ``row``.

Each column keeps its exact pandas dtype (recorded in the group's ``dtypes``
attribute) so that a table read back equals the frame written:

- datetimes (naive or UTC, any unit) are stored as ``int64`` ticks of their unit, NaT
  as ``-2**63``;
- strings are stored as variable-length UTF-8 (numpy ``StringDType``); missing values
  are written as ``""`` with a boolean ``<column>.isna`` mask array beside them;
- numbers and booleans are stored as they are (nullable extension types via a mask).

Row ranges: the group attribute ``ranges`` holds, for each of :data:`RANGE_COLUMNS`
the table has (``known_at``; ``ex_date`` of the corporate actions), a list of
``[start, stop, lo, hi]``: rows ``start:stop`` hold ticks of that column (as stored)
between ``lo`` and ``hi``. :func:`write_table` records one range per
:data:`CHUNK_ROWS` rows, :func:`append_table` one per append (small adjacent ones are
merged so the list stays short; a merged range is looser, never wrong). A reader that
looks for given ``known_at`` values (the statements key check of a delta commit) reads
only the ranges that can hold them (:func:`rows_holding`), one that wants the rows from
a date on (the corporate actions with an ex date in a delta's window) only the ranges
that reach it (:func:`rows_from`), not the whole table; rows never move inside a table
(compaction retiles chunks only), so the ranges stay exact. How tight the ranges are
depends on the row order: a delta commit writes a corporate actions table whole in
``ex_date`` order, and statements arrive in ``known_at`` order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import pandas as pd
import zarr

from quantlib.errors import StoreError
from quantlib.store import dategrid

__all__ = ["write_table", "write_table_parts", "append_table", "read_table_group", "table_columns", "CHUNK_ROWS",
           "rows_holding", "rows_from", "RANGE_COLUMN", "RANGE_COLUMNS"]

_MASK_SUFFIX = ".isna"
_CHUNK_ROWS = 1 << 16
#: Rows per full chunk of a table column (appends add smaller chunks until compaction).
CHUNK_ROWS = _CHUNK_ROWS
#: The column whose per-row-range min/max every table with it keeps (group attribute
#: ``ranges``; :func:`rows_holding` looks it up by default).
RANGE_COLUMN = "known_at"
#: Every column whose per-row-range min/max a table with it keeps.
RANGE_COLUMNS = (RANGE_COLUMN, "ex_date")
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
    ranges = {col: [_range(ticks[a:a + _CHUNK_ROWS], a) for a in range(0, n, _CHUNK_ROWS)]
              for col, ticks in ((c, _encode(frame[c])[0]) for c in RANGE_COLUMNS
                                 if c in frame.columns)}
    if ranges:
        attrs["ranges"] = ranges
    group.attrs.update(attrs)


def write_table_parts(root: zarr.Group, name: str, parts: Iterable[pd.DataFrame],
                      empty: pd.DataFrame) -> int:
    """Write the frames ``parts`` yields, one after the other, as ONE table ``name``
    (replacing it), holding about one part at a time: the arrays, chunks and
    attributes are those :func:`write_table` writes for their concatenation (rows are
    written in whole chunks; a part's tail waits for the next). ``empty`` gives the
    columns and dtypes when no part has rows. Returns the row count.

    Examples
    --------
    >>> import zarr
    >>> root = zarr.group(store=zarr.storage.MemoryStore())
    >>> parts = [pd.DataFrame({"a": ["x", None], "v": [1.0, 2.0]}),
    ...          pd.DataFrame({"a": ["y"], "v": [3.0]})]
    >>> write_table_parts(root, "t", iter(parts), parts[0].iloc[:0])
    3
    >>> read_table_group(root, "t").equals(pd.concat(parts, ignore_index=True))
    True
    """
    if name in root:
        del root[name]
    group = root.create_group(name)
    writer = _PartWriter(group, empty)
    pending: list[pd.DataFrame] = []
    held = 0
    for frame in parts:
        if not len(frame):
            continue
        pending.append(frame)
        held += len(frame)
        if held >= _CHUNK_ROWS:
            block = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
            cut = held // _CHUNK_ROWS * _CHUNK_ROWS
            writer.write(block.iloc[:cut])
            pending, held = [block.iloc[cut:]], held - cut
    if held:
        writer.write(pd.concat(pending, ignore_index=True))
    writer.close()
    return writer.n


class _PartWriter:
    """The arrays of one table grown block by block (``write_table_parts``)."""

    def __init__(self, group: zarr.Group, empty: pd.DataFrame) -> None:
        self.group, self.n = group, 0
        self.columns = [str(c) for c in empty.columns]
        self.dtypes = {str(c): str(empty[c].dtype) for c in empty.columns}
        for col in self.columns:
            if "/" in col or col.endswith(_MASK_SUFFIX):
                raise StoreError("table column names must not contain '/' or end in "
                                 "'.isna'", found=repr(col), fix="rename the column",
                                 field=col)
        self.ranges: dict[str, list[list[int]]] = {
            c: [] for c in RANGE_COLUMNS if c in self.columns}
        self.empty = empty

    def write(self, block: pd.DataFrame) -> None:
        """Append ``block`` (starting on a chunk boundary) to every column."""
        n0, n = self.n, self.n + len(block)
        for col in self.columns:
            values, mask = _encode(block[col].astype(self.dtypes[col]))
            self._put(col, values, n0, n)
            key = col + _MASK_SUFFIX
            if mask is not None or key in self.group:
                self._put(key, mask if mask is not None else np.zeros(len(block), bool),
                          n0, n)
            if col in self.ranges:
                self.ranges[col] += [_range(values[a:a + _CHUNK_ROWS], n0 + a)
                                     for a in range(0, len(values), _CHUNK_ROWS)]
        self.n = n

    def _put(self, key: str, values: np.ndarray, n0: int, n: int) -> None:
        if key not in self.group:
            if n0 == 0:
                self.group.create_array(key, data=values, chunks=(_CHUNK_ROWS,),
                                        dimension_names=("row",))
                return
            # a mask first needed after some rows: those rows had no missing value
            self.group.create_array(key, shape=(n0,), dtype=bool, chunks=(_CHUNK_ROWS,),
                                    fill_value=False, dimension_names=("row",))
        arr = cast(zarr.Array, self.group[key])
        arr.resize((n,))
        arr[n0:n] = values

    def close(self) -> None:
        """Write the group's attributes (an empty table: its columns, as ``write_table``)."""
        if self.n == 0:
            for col in self.columns:
                values, _ = _encode(self.empty[col])
                self.group.create_array(col, data=values, chunks=(_CHUNK_ROWS,),
                                        dimension_names=("row",))
        attrs: dict[str, Any] = {"kind": "table", "columns": self.columns,
                                 "dtypes": self.dtypes, "rows": self.n}
        if self.ranges:
            attrs["ranges"] = self.ranges
        self.group.attrs.update(attrs)


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
    if len(frame):
        ranges = {col: _appended_ranges(group, attrs, col, frame, n0)
                  for col in RANGE_COLUMNS if col in attrs["columns"]}
        if ranges:
            update["ranges"] = ranges
    group.attrs.update(update)
    return n


def _appended_ranges(group: zarr.Group, attrs: dict[str, Any], col: str,
                     frame: pd.DataFrame, n0: int) -> list[list[int]]:
    """The row ranges of ``col`` once ``frame`` is appended after the ``n0`` stored rows
    (a table written before it kept ranges of ``col`` gets them from the stored column,
    once)."""
    ranges = attrs.get("ranges", {}).get(col)
    if ranges is None:
        stored = np.asarray(cast(zarr.Array, group[col])[:n0]) if n0 else np.zeros(0, "i8")
        ranges = [_range(stored[a:a + _CHUNK_ROWS], a) for a in range(0, n0, _CHUNK_ROWS)]
    ticks = _encode(frame[col].astype(attrs["dtypes"][col]))[0]
    return _merge_small([*ranges, _range(ticks, n0)])


def rows_holding(root: zarr.Group, name: str, values: pd.Series,
                 column: str = RANGE_COLUMN) -> list[slice] | None:
    """Row slices of table ``name`` that can hold a ``column`` value (one of
    :data:`RANGE_COLUMNS`) equal to one of ``values`` (by the table's row ranges;
    adjacent slices joined), or ``None`` when the table keeps no ranges of ``column``
    (written before them: read it whole).

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
    ranges = attrs.get("ranges", {}).get(column)
    if ranges is None:
        return None
    ticks = np.unique(_encode(values.astype(attrs["dtypes"][column]))[0])

    def holds(lo: int, hi: int) -> bool:
        i = int(np.searchsorted(ticks, lo))
        return i < len(ticks) and ticks[i] <= hi
    return _joined(ranges, holds)


def rows_from(root: zarr.Group, name: str, first: pd.Timestamp | np.datetime64,
              column: str) -> list[slice] | None:
    """Row slices of table ``name`` that can hold a ``column`` value (one of
    :data:`RANGE_COLUMNS`) on or after ``first`` (adjacent slices joined), or ``None``
    when the table keeps no ranges of ``column`` (read it whole).

    Examples
    --------
    >>> import zarr
    >>> root = zarr.group(store=zarr.storage.MemoryStore())
    >>> ex = pd.to_datetime(["2024-01-02", "2024-03-01"])
    >>> write_table(root, "a", pd.DataFrame({"asset_id": ["A", "B"], "ex_date": ex}))
    >>> _ = append_table(root, "a", pd.DataFrame({"asset_id": ["C"], "ex_date": ex[:1]}))
    >>> rows_from(root, "a", pd.Timestamp("2024-02-01"), "ex_date")
    [slice(0, 2, None)]
    >>> rows_from(root, "a", pd.Timestamp("2025-01-01"), "ex_date")
    []
    """
    attrs: dict[str, Any] = dict(cast(zarr.Group, root[name]).attrs)
    ranges = attrs.get("ranges", {}).get(column)
    if ranges is None:
        return None
    tick = int(_encode(pd.Series([first]).astype(attrs["dtypes"][column]))[0][0])
    return _joined(ranges, lambda lo, hi: hi >= tick)


def _joined(ranges: list[list[int]], keep: Any) -> list[slice]:
    """The row slices of the ranges ``[start, stop, lo, hi]`` with ``keep(lo, hi)``,
    adjacent ones joined."""
    out: list[slice] = []
    for start, stop, lo, hi in ranges:
        if not keep(lo, hi):
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
