"""Parquet tables under ``<store>/tables/`` and SQL over them with DuckDB.

Each table is a folder of Parquet files (``tables/<name>/<key>.parquet``), one per
fetch run, refresh or commit, never rewritten. :func:`sql` exposes them as DuckDB views:
``manifest``, ``quarantine``, ``validation`` (all files of each, by column name) and
``statements`` (the export of the latest data version that has one, plus the rows
each later delta commit appended: :func:`statements_files`), plus
``snapshots`` (the curated store's versions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import duckdb
import icechunk
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quantlib.errors import StoreError
from quantlib.store.location import StoreLocation, resolve_location

if TYPE_CHECKING:
    from quantlib.store.curated import CuratedStore

__all__ = ["sql", "write_table_file", "read_table_files", "table_files", "SQL_VIEWS",
           "statements_files", "export_statements", "write_table_file_parts", "EXPORT_ROWS"]

#: rows per part of a statements export (and per Parquet row group: pyarrow's default
#: row group length, so a table exported by parts has the row groups of one whole write)
EXPORT_ROWS = 1 << 20

SQL_VIEWS = ("manifest", "quarantine", "validation", "statements", "snapshots")
_KEY = re.compile(r"^[A-Za-z0-9_.=-]+$")


def write_table_file(location: StoreLocation | str | None, name: str, key: str,
                     frame: pd.DataFrame) -> str:
    """Write ``frame`` to ``tables/<name>/<key>.parquet``; return the file's URL.

    The file is written whole, then moved into place (local) or uploaded in one
    request (S3), so readers never see half a file.
    """
    loc = location if isinstance(location, StoreLocation) else resolve_location(location)
    if not _KEY.match(key) or not _KEY.match(name):
        raise StoreError("table name and key must be plain file names", found=f"{name}/{key}",
                         fix="use letters, digits, '-', '_', '.' only", file=key)
    return write_table_file_parts(loc, name, key, [frame])


def write_table_file_parts(location: StoreLocation | str | None, name: str, key: str,
                           parts: Iterable[pd.DataFrame]) -> str:
    """Write the frames ``parts`` yields (same columns and dtypes; the first one gives
    the schema) as ONE Parquet file ``tables/<name>/<key>.parquet``, one part at a time
    in memory; return the file's URL. Like :func:`write_table_file`, readers never see
    half a file (a local file is written beside and moved into place; on S3 the upload
    completes at close)."""
    loc = location if isinstance(location, StoreLocation) else resolve_location(location)
    if not _KEY.match(key) or not _KEY.match(name):
        raise StoreError("table name and key must be plain file names", found=f"{name}/{key}",
                         fix="use letters, digits, '-', '_', '.' only", file=key)
    fs = loc.filesystem()
    path = loc.fs_path("tables", name, f"{key}.parquet")
    if loc.protocol == "file":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as fh:
                _write_parts(fh, parts)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        with fs.open(path, "wb") as fh:
            _write_parts(fh, parts)
    return loc.join("tables", name, f"{key}.parquet")


def _write_parts(fh: Any, parts: Iterable[pd.DataFrame]) -> None:
    writer: pq.ParquetWriter | None = None
    try:
        for frame in parts:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(fh, table.schema)
            elif not len(frame):
                continue
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()


def export_statements(store: CuratedStore, snapshot_id: str) -> str:
    """Export the statements table of version ``snapshot_id`` to
    ``tables/statements/<snapshot_id>.parquet`` (for SQL), :data:`EXPORT_ROWS` rows at
    a time (never the whole table in memory); return the file's URL."""
    from quantlib.store.schema import empty_frame
    from quantlib.store.tables import read_table_group

    root = store._root(snapshot_id)
    if "statements" not in root:
        return write_table_file(store.location, "statements", snapshot_id,
                                empty_frame("statements"))
    n = int(root["statements"].attrs["rows"])  # type: ignore[arg-type]
    parts = (read_table_group(root, "statements", rows=slice(a, min(a + EXPORT_ROWS, n)))
             for a in range(0, max(n, 1), EXPORT_ROWS))
    return write_table_file_parts(store.location, "statements", snapshot_id, parts)


def table_files(location: StoreLocation | str | None, name: str) -> list[str]:
    """Sorted filesystem paths of the Parquet files of one table (may be empty)."""
    loc = location if isinstance(location, StoreLocation) else resolve_location(location)
    fs = loc.filesystem()
    folder = loc.fs_path("tables", name)
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    return sorted(str(n) for n in names if str(n).endswith(".parquet"))


def read_table_files(location: StoreLocation | str | None, name: str) -> pd.DataFrame:
    """All files of one table concatenated (columns unified by name); empty if none."""
    loc = location if isinstance(location, StoreLocation) else resolve_location(location)
    fs = loc.filesystem()
    tables = []
    for path in table_files(loc, name):
        with fs.open(path, "rb") as fh:
            tables.append(pq.read_table(fh))
    if not tables:
        return pd.DataFrame()
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def statements_files(store: CuratedStore) -> list[str]:
    """The Parquet files that hold the statements of the latest version: its newest
    full export (``<snapshot_id>.parquet``) and the rows appended by each delta commit
    since (``<snapshot_id>.delta.parquet``), oldest first; empty if none.

    A commit exports after it is committed, so a process killed in between leaves a
    version that wrote statements (its metadata's ``rows``) without its export: that
    version's full export is written here then (the rows of a committed version), so
    no committed row is ever missing from the ``statements`` view.
    """
    fs = store.location.filesystem()
    try:
        versions = [info for info in store.repo.ancestry(branch="main")
                    if info.parent_id is not None]
    except (StoreError, icechunk.IcechunkError):
        return []
    deltas: list[str] = []
    for info in versions:
        full = store.location.fs_path("tables", "statements", f"{info.id}.parquet")
        if fs.exists(full):
            return [full, *reversed(deltas)]
        part = store.location.fs_path("tables", "statements", f"{info.id}.delta.parquet")
        if fs.exists(part):
            deltas.append(part)
        elif _wrote_statements(info.metadata):   # killed before its export: redo it whole
            export_statements(store, info.id)
            return [full, *reversed(deltas)]
    return []


def _wrote_statements(metadata: object) -> bool:
    """Whether a commit's metadata says it wrote statement rows."""
    rows = metadata.get("rows") if isinstance(metadata, dict) else None
    return isinstance(rows, dict) and bool(rows.get("statements"))


def _register(con: duckdb.DuckDBPyConnection, loc: StoreLocation, name: str,
              paths: list[str]) -> None:
    if not paths:
        return
    if loc.protocol == "file":
        listing = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listing}], "
                    "union_by_name = true)")
        return
    fs = loc.filesystem()
    tables = []
    for path in paths:
        with fs.open(path, "rb") as fh:
            tables.append(pq.read_table(fh))
    con.register(name, pa.concat_tables(tables, promote_options="permissive"))


def sql(query: str, store: str | None = None) -> pd.DataFrame:
    """Run a DuckDB SQL query over the store's Parquet tables.

    Views: ``manifest``, ``quarantine``, ``validation`` (every file of each),
    ``statements`` (bitemporal statements as of the latest data version) and
    ``snapshots`` (``snapshot_id, tags, written_at, message``). Views whose table has no
    file yet are absent.

    Parameters
    ----------
    query : str
        SQL text.
    store : str, optional
        Store URL (default: the configured store).

    Raises
    ------
    StoreError
        If DuckDB rejects the query; the message lists the views that exist.

    Examples
    --------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> _ = write_table_file(root, "manifest", "f1", pd.DataFrame({"rows": [3, 4]}))
    >>> int(sql("select sum(rows) as n from manifest", store=root)["n"][0])
    7
    """
    from quantlib.store.curated import CuratedStore

    loc = resolve_location(store)
    con = duckdb.connect()
    available = []
    for name in ("manifest", "quarantine", "validation"):
        paths = table_files(loc, name)
        _register(con, loc, name, paths)
        if paths:
            available.append(name)
    curated = CuratedStore(loc.url)
    if loc.protocol != "file" or os.path.isdir(os.path.join(loc.prefix, "curated")):
        latest = statements_files(curated)
        if latest:
            _register(con, loc, "statements", latest)
            available.append("statements")
        snaps = curated.snapshots()
        snaps["tags"] = snaps["tags"].map(lambda t: ",".join(t))
        con.register("snapshots", snaps)
        available.append("snapshots")
    try:
        return con.execute(query).fetch_df()
    except duckdb.Error as exc:
        raise StoreError("SQL query must run against the store's tables", found=str(exc),
                         fix=f"query one of the views: {', '.join(available) or 'none yet'}",
                         file=loc.join("tables")) from exc
    finally:
        con.close()
