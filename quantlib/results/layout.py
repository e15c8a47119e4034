"""The results layout: one stored result's files, its meta document, the reader and writer.

This module is the only place that knows how a result is laid out. Under a results
URL (config ``results``; ``QUANTLIB_RESULTS`` wins)::

    objects/<result_id>/meta.json          the meta document (:data:`META_SCHEMA`)
    objects/<result_id>/returns.parquet    date x net, gross, turnover, costs (, benchmark)
    objects/<result_id>/weights.parquet    date x asset end-of-session weights
    objects/<result_id>/exposures.parquet  date x long, short, gross, net, n_holdings
    objects/<result_id>/<name>.parquet     optional tables (e.g. ``factor_ic.parquet``)
    index/published.json                   list of published results' meta, newest first

Writing (:func:`write_result`): the Parquet objects first, ``meta.json`` last, so a
folder with a ``meta.json`` is always complete. Reading (:func:`read_meta`,
:func:`read_index`, :func:`read_result`) upgrades every older layout to the current
one here, and only here:

- schema 1 (results stored before the data address, November 2026): no
  ``schema_version``, ``data``, ``data_fingerprint``, ``synthetic``, ``sample``,
  ``in_sample``, ``replaces``, ``data_start``;
- early dashboards' demo stores: ``id`` instead of ``result_id``, and an index wrapped
  as ``{"results": [...]}``.

Schema 2 (current) adds ``schema_version: 2`` and the fields above.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from quantlib.errors import StoreError
from quantlib.yamlfile import check_schema

if TYPE_CHECKING:  # quantlib.backtest (numba) loads when a result is built or read
    import fsspec

    from quantlib.backtest.result import Result

__all__ = ["SCHEMA_VERSION", "META_SCHEMA", "OBJECTS", "INDEX_PATH", "RESULT_FILES",
           "object_path", "check_id", "meta_of", "upgrade_meta", "parse_meta", "parse_index",
           "write_result", "read_result", "result_files", "result_from_files", "read_table"]

#: version of the meta document :func:`meta_of` writes (older ones: :func:`upgrade_meta`)
SCHEMA_VERSION = 2
OBJECTS = "objects"
INDEX_PATH = "index/published.json"
#: the files of a stored result, ``meta.json`` last (the order they are written in)
RESULT_FILES = ("returns.parquet", "weights.parquet", "exposures.parquet", "meta.json")

_STR = {"type": ["string", "null"]}
_OBJ = {"type": ["object", "null"]}
#: JSON schema of ``meta.json`` (schema 2); fields not listed here are kept as they are
META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "result_id", "strategy", "params", "metrics", "published"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "result_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
        "strategy": {"type": "string"}, "source_hash": _STR, "params": {"type": "object"},
        "snapshot": _STR, "data": _OBJ, "data_fingerprint": _STR,
        "synthetic": {"type": "boolean"}, "quantlib_version": _STR, "created_at": _STR,
        "start": _STR, "end": _STR, "data_start": _STR, "sample": _STR, "in_sample": _OBJ,
        "n_assets": {"type": ["integer", "null"]}, "metrics": {"type": "object"},
        "author": _STR, "published": {"type": "boolean"}, "published_at": _STR,
        "title": _STR, "description": _STR,
        "tags": {"type": "array", "items": {"type": "string"}},
        "allowed_params": _OBJ, "replaces": {"type": ["array", "null"]},
    },
}
#: fields schema 1 lacks, with the value an upgraded document gets
_ADDED_IN_2: dict[str, Any] = {"data": None, "data_fingerprint": None, "synthetic": False,
                               "sample": None, "in_sample": None, "replaces": None,
                               "data_start": None}
_PROVENANCE = ("strategy", "source_hash", "snapshot", "data", "data_fingerprint", "synthetic",
               "quantlib_version", "created_at", "sample")
_INFO = ("author", "published", "published_at", "title", "description", "tags",
         "allowed_params", "replaces", "in_sample")


def object_path(root: str, result_id: str, name: str = "") -> str:
    """Path of a stored result's folder (or of its file ``name``) below ``root``.

    Examples
    --------
    >>> object_path("/r", "abc", "meta.json")
    '/r/objects/abc/meta.json'
    """
    check_id(result_id)
    return posixpath.join(root.rstrip("/"), OBJECTS, result_id, *([name] if name else []))


def check_id(result_id: str) -> None:
    """Refuse a result id that is not letters, digits, ``-`` or ``_`` (a path in disguise).

    Examples
    --------
    >>> check_id("../etc")
    Traceback (most recent call last):
    ...
    quantlib.errors.StoreError: result id must be letters, digits, '-' or '_'; found '../etc'. Fix: use an id from the results list
    """
    if not result_id or not all(c.isalnum() or c in "-_" for c in result_id):
        raise StoreError("result id must be letters, digits, '-' or '_'",
                         found=repr(result_id), fix="use an id from the results list")


def meta_of(result: Result) -> dict[str, Any]:
    """The ``meta.json`` document of ``result`` (schema :data:`SCHEMA_VERSION`, JSON types).

    Examples
    --------
    >>> from quantlib.backtest.result import Result
    >>> idx = pd.date_range("2024-01-01", periods=2, name="date")
    >>> r = Result(pd.DataFrame({"net": [0.0, 0.1], "gross": [0.0, 0.1], "turnover": [1.0, 0],
    ...            "costs": [0.0, 0]}, index=idx), pd.DataFrame({"A": [1.0, 1.0]}, index=idx))
    >>> m = meta_of(r)
    >>> m["schema_version"], m["result_id"] == r.result_id, m["start"][:10]
    (2, True, '2024-01-01')
    """
    from quantlib.backtest.result import to_jsonable

    p, info, idx = result.provenance, result.info, result.returns.index
    doc = {
        "schema_version": SCHEMA_VERSION, "result_id": result.result_id,
        "strategy": p.get("strategy", "custom"), "source_hash": p.get("source_hash", ""),
        "params": result.params, "snapshot": p.get("snapshot"), "data": p.get("data"),
        "data_fingerprint": p.get("data_fingerprint"),
        "synthetic": bool(p.get("synthetic", False)),
        "quantlib_version": p.get("quantlib_version", ""), "created_at": p.get("created_at"),
        # the reported period starts at the first day with a position (metrics.summary)
        "start": _period_bound(result.metrics.get("start"), idx, 0),
        "end": _period_bound(result.metrics.get("end"), idx, -1),
        "data_start": idx[0].isoformat() if len(idx) else None,
        "sample": p.get("sample"), "in_sample": info.get("in_sample"),
        "n_assets": int(result.n_assets), "metrics": result.metrics,
        "author": info.get("author"), "published": bool(info.get("published", False)),
        "published_at": info.get("published_at"), "title": info.get("title"),
        "description": info.get("description"), "tags": list(info.get("tags", [])),
        "allowed_params": info.get("allowed_params"), "replaces": info.get("replaces"),
    }
    return dict(to_jsonable(doc))


def _period_bound(day: Any, idx: pd.Index, pos: int) -> str | None:
    if isinstance(day, str) and day:
        return pd.Timestamp(day).isoformat()
    return idx[pos].isoformat() if len(idx) else None


def upgrade_meta(doc: Mapping[str, Any], *, result_id: str | None = None,
                 source: str = "<meta>") -> dict[str, Any]:
    """A meta document of any stored version as the current schema, validated.

    ``result_id`` fills an id the document lacks (its folder's name).

    Raises
    ------
    StoreError
        If the document breaks :data:`META_SCHEMA` after the upgrade (names ``source``
        and the field), or comes from a newer quantlib.

    Examples
    --------
    >>> old = {"id": "abc", "strategy": "s", "params": {}, "metrics": {}, "published": True}
    >>> new = upgrade_meta(old)
    >>> new["schema_version"], new["result_id"], new["synthetic"], "id" in new
    (2, 'abc', False, False)
    """
    meta = dict(doc)
    version = meta.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreError(f"result meta must be schema {SCHEMA_VERSION} or older",
                         found=f"schema_version {version!r}",
                         fix="upgrade quantlib to read results written by a newer one",
                         file=source)
    legacy_id = meta.pop("id", None)
    meta["result_id"] = meta.get("result_id") or legacy_id or result_id
    if version < 2:
        for key, value in _ADDED_IN_2.items():
            meta.setdefault(key, value)
        meta["schema_version"] = 2
    meta.setdefault("published", False)
    meta.setdefault("tags", [])
    check_schema(meta, META_SCHEMA, source=source, what="result meta", error=StoreError,
                 fix="re-save the result with quantlib.results.save_result")
    return meta


def parse_meta(data: bytes, source: str, result_id: str | None = None) -> dict[str, Any]:
    """:func:`upgrade_meta` of the JSON bytes of a ``meta.json`` read from ``source``."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise StoreError("result meta must be JSON", found=str(exc),
                         fix="re-save the result", file=source) from exc
    if not isinstance(doc, dict):
        raise StoreError("result meta must be a JSON object", found=type(doc).__name__,
                         fix="re-save the result", file=source)
    return upgrade_meta(doc, result_id=result_id, source=source)


def parse_index(data: bytes | None, source: str) -> list[dict[str, Any]]:
    """The published index's entries (current schema) from its JSON bytes (``None``: empty).

    Examples
    --------
    >>> old = b'{"results": [{"id": "a1", "strategy": "s", "params": {}, "metrics": {}}]}'
    >>> [(m["result_id"], m["published"]) for m in parse_index(old, "index")]
    [('a1', True)]
    """
    if not data:
        return []
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise StoreError("published index must be JSON", found=str(exc),
                         fix="republish a result to rewrite it", file=source) from exc
    items = doc.get("results", []) if isinstance(doc, dict) else doc
    return [upgrade_meta({**m, "published": True}, source=source) for m in items]


def result_from_files(files: Mapping[str, bytes], source: str = "<result>") -> Result:
    """A :class:`Result` from its files' bytes (``{"meta.json": ..., "returns.parquet": ...}``).

    Raises
    ------
    StoreError
        If a required file is missing or ``meta.json`` breaks the schema.
    """
    from quantlib.backtest.result import Result

    missing = [n for n in RESULT_FILES if n not in files and n != "exposures.parquet"]
    if missing:
        raise StoreError("a saved result must hold meta.json, returns and weights",
                         found=f"missing {missing}", fix="check the URL or result id",
                         file=source)
    meta = parse_meta(files["meta.json"], f"{source}/meta.json")
    prov = {k: meta.get(k) for k in _PROVENANCE}
    for key in ("data", "data_fingerprint", "synthetic", "sample"):  # absent: not recorded
        if not prov[key]:
            del prov[key]
    info = {k: meta.get(k) for k in _INFO if meta.get(k) is not None}
    exposures = files.get("exposures.parquet")
    return Result(returns=_frame(files["returns.parquet"]),
                  weights=_frame(files["weights.parquet"]),
                  exposures=_frame(exposures) if exposures else None,
                  params=meta["params"], provenance=prov,
                  metrics={k: (float("nan") if v is None else v)
                           for k, v in meta["metrics"].items()}, info=info)


def result_files(result: Result) -> dict[str, bytes]:
    """The files of ``result`` as bytes, in :data:`RESULT_FILES` order (``meta.json`` last).

    Examples
    --------
    >>> from quantlib.backtest.result import Result
    >>> idx = pd.date_range("2024-01-01", periods=2, name="date")
    >>> r = Result(pd.DataFrame({"net": [0.0, 0.1], "gross": [0.0, 0.1], "turnover": [1.0, 0],
    ...            "costs": [0.0, 0]}, index=idx), pd.DataFrame({"A": [1.0, 1.0]}, index=idx))
    >>> files = result_files(r)
    >>> list(files), result_from_files(files).returns.equals(r.returns)
    (['returns.parquet', 'weights.parquet', 'exposures.parquet', 'meta.json'], True)
    """
    frames = {"returns.parquet": result.returns, "weights.parquet": result.weights,
              "exposures.parquet": result.exposures}
    out = {name: _parquet_bytes(frame) for name, frame in frames.items() if frame is not None}
    out["meta.json"] = json.dumps(meta_of(result), indent=1, sort_keys=True,
                                  allow_nan=False).encode()
    return out


def write_result(result: Result, fs: fsspec.AbstractFileSystem, folder: str) -> None:
    """Write ``result``'s files into ``folder`` of ``fs``, ``meta.json`` last."""
    fs.makedirs(folder, exist_ok=True)
    for name, data in result_files(result).items():
        fs.pipe_file(f"{folder.rstrip('/')}/{name}", data)


def read_result(fs: fsspec.AbstractFileSystem, folder: str) -> Result:
    """Read the result stored in ``folder`` of ``fs`` (any schema version).

    Raises
    ------
    StoreError
        If the folder holds no ``meta.json`` (an incomplete or missing result).
    """
    root = folder.rstrip("/")
    if not fs.exists(f"{root}/meta.json"):
        raise StoreError("a saved result folder must hold meta.json", found="no meta.json",
                         fix="check the URL or result id", file=f"{root}/meta.json")
    files = {name: fs.cat_file(f"{root}/{name}") for name in RESULT_FILES
             if fs.exists(f"{root}/{name}")}
    return result_from_files(files, root)


def read_table(fs: fsspec.AbstractFileSystem, path: str) -> pd.DataFrame:
    """One stored table (``returns.parquet``, ``factor_ic.parquet``...) indexed by ``date``.

    Raises
    ------
    StoreError
        If the file is missing; the message names it.
    """
    try:
        data = fs.cat_file(path)
    except FileNotFoundError as exc:
        raise StoreError(f"result must have {posixpath.basename(path)}", found="file missing",
                         fix="re-save the result", file=path) from exc
    frame = _frame(data)
    if "date" in frame.columns:
        frame = frame.set_index("date")
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    return frame.sort_index()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    out = frame.copy()
    out.columns = [str(c) for c in out.columns]
    buf = io.BytesIO()
    out.to_parquet(buf, index=True)
    return buf.getvalue()


def _frame(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))
