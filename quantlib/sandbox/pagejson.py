"""An API page's JSON encoded from its columns, without a Python object per row.

The bytes are those ``json.dumps(page, separators=(",", ":"), allow_nan=False)`` writes
for the page as dicts (``{"data": [{key: value, ...}, ...], "page", "next_page",
"total_rows"}``), byte for byte:

1. each column becomes an Arrow string array of JSON tokens: integers cast by Arrow;
   floats cast by Arrow, whose shortest round-trip digits are Python's ``repr`` in
   fixed notation (``.0`` added to whole numbers), and the few values where the two
   notations differ (outside [1e-4, 1e16), or where Arrow chose an exponent) written by
   ``repr``; text quoted as it is when it holds only plain ASCII (no quote, backslash or
   control character), else through ``json.dumps`` once per distinct value; nulls ``null``;
2. one ``binary_join_element_wise`` joins each row's keys and tokens into ``,{...}``;
3. the page is the joined rows' data buffer (less the first comma) in the envelope.

A column it cannot encode the same way (a NaN or infinity, which ``json.dumps`` refuses;
a type other than integer, float, bool or text) makes :func:`encode_page` return None,
and the caller encodes the dicts as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["encode_page", "json_tokens"]

#: text json.dumps writes as it is (ensure_ascii): printable ASCII and DEL, but " and \
_PLAIN = r"^[\x20\x21\x23-\x5b\x5d-\x7f]*$"


def json_tokens(col: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """Each value of ``col`` as the JSON ``json.dumps`` writes for it (None when a
    value or the type cannot be encoded the same way).

    Examples
    --------
    >>> json_tokens(pa.array([1.0, 0.1, 2.5e-07, None, 12.34])).to_pylist()
    ['1.0', '0.1', '2.5e-07', 'null', '12.34']
    >>> json_tokens(pa.array(["KR7005930003", 'a"b', None])).to_pylist()
    ['"KR7005930003"', '"a\\\\"b"', 'null']
    >>> json_tokens(pa.array([float("nan")])) is None
    True
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    kind = col.type
    if pa.types.is_dictionary(kind):
        words = json_tokens(col.dictionary)
        return None if words is None else pc.fill_null(words.take(col.indices), "null")
    if pa.types.is_integer(kind):
        out = pc.cast(col, pa.string())
    elif pa.types.is_floating(kind):
        out = _float_tokens(col)
    elif pa.types.is_boolean(kind):
        out = pc.if_else(col, "true", "false")
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        out = _text_tokens(col)
    elif pa.types.is_null(kind):
        out = pa.array(["null"] * len(col), pa.string())
    else:
        return None
    if out is None:
        return None
    return pc.fill_null(out, "null") if col.null_count else out


def _float_tokens(col: pa.Array) -> pa.Array | None:
    x = col.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        return None
    out = pc.cast(pa.array(x), pa.string())
    ax = np.abs(x)
    odd = ((ax != 0) & ((ax < 1e-4) | (ax >= 1e16))) | \
        pc.match_substring(out, "e").to_numpy(zero_copy_only=False)
    whole = (x == np.trunc(x)) & ~odd     # Arrow writes them without a point: 12 -> 12.0
    if whole.any():
        mask = pa.array(whole)
        out = pc.replace_with_mask(out, mask, pc.binary_join_element_wise(
            out.filter(mask), ".0", ""))
    if odd.any():
        out = pc.replace_with_mask(out, pa.array(odd), pa.array(
            [repr(v) for v in x[odd].tolist()], pa.string()))
    if col.null_count:
        out = pc.if_else(col.is_null(), pa.scalar(None, pa.string()), out)
    return out


def _text_tokens(col: pa.Array) -> pa.Array:
    if len(col) == 0 or pc.all(pc.match_substring_regex(col, _PLAIN)).as_py() is not False:
        return pc.binary_join_element_wise('"', col, '"', "")
    coded = pc.dictionary_encode(col)
    words = pa.array([json.dumps(v) for v in coded.dictionary.to_pylist()], pa.string())
    return words.take(coded.indices)


def encode_page(columns: Mapping[str, pa.Array | pa.ChunkedArray], *, page: Any,
                next_page: Any, total_rows: Any) -> bytes | None:
    """The JSON of ``{"data": rows, "page", "next_page", "total_rows"}`` where row ``i``
    of ``rows`` is ``{key: columns[key][i], ...}``; None when a column cannot be
    encoded (see the module doc).

    Examples
    --------
    >>> cols = {"isin": pa.array(["A", "B"]), "c": pa.array([10.0, 10.25]),
    ...         "v": pa.array([3, None])}
    >>> encode_page(cols, page=1, next_page=None, total_rows=2)
    b'{"data":[{"isin":"A","c":10.0,"v":3},{"isin":"B","c":10.25,"v":null}],"page":1,"next_page":null,"total_rows":2}'
    """
    tail = json.dumps({"page": page, "next_page": next_page, "total_rows": total_rows},
                      separators=(",", ":"), allow_nan=False).encode()
    n = len(next(iter(columns.values()))) if columns else 0
    if n == 0:
        return b'{"data":[],' + tail[1:]
    tokens = _tokens_by_type(columns)
    if tokens is None:
        return None
    parts: list[Any] = []
    for i, key in enumerate(columns):
        parts += [("," if i else ",{") + json.dumps(key) + ":", tokens[key]]
    rows = pc.binary_join_element_wise(*parts, "}", "")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)
    lo, hi = int(offsets[rows.offset]), int(offsets[rows.offset + len(rows)])
    body = memoryview(rows.buffers()[2])[lo + 1:hi]
    return b"".join((b'{"data":[', body, b"],", tail[1:]))


def _tokens_by_type(columns: Mapping[str, pa.Array | pa.ChunkedArray]
                    ) -> dict[str, pa.Array] | None:
    """:func:`json_tokens` of every column; the columns of one type are encoded as one
    array (a page's four prices: one cast, not four)."""
    groups: dict[pa.DataType, list[str]] = {}
    arrays: dict[str, pa.Array] = {}
    for key, col in columns.items():
        arrays[key] = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        groups.setdefault(arrays[key].type, []).append(key)
    out: dict[str, pa.Array] = {}
    for kind, keys in groups.items():
        if len(keys) == 1 or pa.types.is_dictionary(kind):
            for key in keys:
                words = json_tokens(arrays[key])
                if words is None:
                    return None
                out[key] = words
            continue
        words = json_tokens(pa.concat_arrays([arrays[k] for k in keys]))
        if words is None:
            return None
        at = 0
        for key in keys:
            out[key] = words.slice(at, len(arrays[key]))
            at += len(arrays[key])
    return out
