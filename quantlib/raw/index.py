"""The manifest index: the manifest's rows partitioned by source, kept compact.

The append-only manifest (``tables/manifest/*.parquet``, one file per
:meth:`~quantlib.raw.RawZone.record` call) is the provenance log; reading it whole grows
with every fetch ever made. A refresh only needs the rows of the sources it fetches, so
each ``record`` call also appends its rows, split by source, to::

    tables/manifest_index/<source>/<stamp>-<uuid>.parquet

with one extra column, ``known_at``: the vendor's newest publication time in the
delivery (an API page's largest ``updated_ms``/``published_ms``/``announced_ms``; null
when the delivery does not say). Reading a source (:meth:`ManifestIndex.read`) reads its
folder; once it holds more than :data:`COMPACT_AT` files they are merged into one (written
atomically first, then the merged files removed; a reader that loses a file to a
concurrent merge lists again). So a refresh reads a few small files per source, however
many fetches the store has seen.

Consistency with the log: the log row is written first, then the index row. A crash in
between leaves the index missing a row, which only costs redundant work (the delivery
looks unknown: it is fetched and standardized again, idempotently), never a lost one.
A store written before the index existed is migrated on first read: the whole log is
read once and written as one file per source, then the marker ``tables/manifest_index/
_migrated`` is written.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import fsspec
import pandas as pd
import pyarrow.parquet as pq

from quantlib.raw.zone import MANIFEST_COLUMNS, _has_dtypes, _typed

__all__ = ["ManifestIndex", "INDEX_COLUMNS", "COMPACT_AT", "INDEX_DIR"]

INDEX_DIR = "tables/manifest_index"
COMPACT_AT = 8
"""A source's index folder is merged into one file when it holds more files than this."""
_KEY = ["source", "file", "sha256", "status"]
_MARKER = "_migrated"
_LISTING = "_listing"
_PUBLISHED = "_published"
_INDEX_DTYPES: dict[str, Any] = {}   # filled at the end of the module
_CACHE_SIZE = 16
#: (filesystem, root, source) -> (the folder's files, the rows read from them): index
#: files are immutable (new rows come as new files; a merge writes a new file and removes
#: the old), so the same file list means the same rows and a refresh's many reads of a
#: source (known, unpublished, high-water marks, record) read its files once
_READS: dict[tuple[str, str, str], tuple[tuple[str, ...], pd.DataFrame]] = {}
#: the same, for the ``(source, file, sha256, status)`` keys of those rows
_KEYSETS: dict[tuple[str, str, str], tuple[tuple[str, ...], frozenset[tuple[str, ...]]]] = {}
_READS_LOCK = threading.Lock()


INDEX_COLUMNS = (*MANIFEST_COLUMNS, "known_at")
"""The manifest's columns plus ``known_at`` (vendor publication time, nullable)."""


class ManifestIndex:
    """The per-source manifest index of one store (see the module docstring).

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The store's filesystem.
    root : str
        The store's root path on ``fs``.
    read_log : callable
        Returns the whole manifest log (used once, to migrate an older store).
    write : callable
        ``write(rel_path, bytes)``: an atomic write under ``root``.

    Examples
    --------
    >>> import tempfile
    >>> from quantlib.raw import RawZone
    >>> raw = RawZone(tempfile.mkdtemp())
    >>> _ = raw.put(b"x", source="ftp-kr", market="KR", file="kr/a.csv", fetch_id="f",
    ...             fmt="kr-ftp-csv")
    >>> raw.index.read("ftp-kr")["file"].tolist(), raw.index.read("api-us").empty
    (['kr/a.csv'], True)
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str,
                 read_log: Callable[[], pd.DataFrame],
                 write: Callable[[str, bytes], None]) -> None:
        self.fs, self.root = fs, root
        self._read_log, self._write = read_log, write
        self._migrated = False
        self._lock = threading.Lock()

    def _dir(self, source: str) -> str:
        return f"{self.root}/{INDEX_DIR}/{quote(source, safe='')}"

    def _ensure_migrated(self) -> None:
        with self._lock:
            if self._migrated:
                return
            if not self.fs.exists(f"{self.root}/{INDEX_DIR}/{_MARKER}"):
                log = self._read_log()
                for source, rows in log.groupby("source", sort=True):
                    self._write_rows(str(source), rows.assign(known_at=pd.NaT), "base")
                self._write(f"{INDEX_DIR}/{_MARKER}", b"")
            self._migrated = True

    def _write_rows(self, source: str, rows: pd.DataFrame, kind: str = "delta") -> None:
        stamp = f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}"
        rel = f"{INDEX_DIR}/{quote(source, safe='')}/{stamp}-{uuid.uuid4().hex[:8]}-{kind}" \
              ".parquet"
        self._write(rel, typed(rows).to_parquet(index=False))

    def append(self, frame: pd.DataFrame) -> None:
        """Append manifest rows (with ``known_at``), one new file per source."""
        self._ensure_migrated()
        for source, rows in frame.groupby("source", sort=True):
            self._write_rows(str(source), rows)

    def listing(self, source: str) -> dict[str, str]:
        """The vendor listing facts (``file -> facts``) saved by the source's last
        completed fetch (empty if none)."""
        return self._small(_LISTING, source, "facts")

    def save_listing(self, source: str, listing: dict[str, str]) -> None:
        """Replace the source's saved listing facts (one atomic write)."""
        frame = pd.DataFrame({"file": list(listing), "facts": list(listing.values())})
        self._write(f"{INDEX_DIR}/{_LISTING}/{quote(source, safe='')}.parquet",
                    frame.to_parquet(index=False))

    def published(self, source: str) -> dict[str, str]:
        """The sha256 of each file's last *published* delivery (``file -> sha256``; empty
        if none): the version a re-delivered file is compared with, row by row
        (:mod:`quantlib.standardize.delta`)."""
        return self._small(_PUBLISHED, source, "sha256")

    def save_published(self, source: str, shas: dict[str, str]) -> None:
        """Replace the source's last-published map (one atomic write)."""
        frame = pd.DataFrame({"file": list(shas), "sha256": list(shas.values())})
        self._write(f"{INDEX_DIR}/{_PUBLISHED}/{quote(source, safe='')}.parquet",
                    frame.to_parquet(index=False))

    def _small(self, folder: str, source: str, column: str) -> dict[str, str]:
        path = f"{self.root}/{INDEX_DIR}/{folder}/{quote(source, safe='')}.parquet"
        try:
            with self.fs.open(path, "rb") as fh:
                frame = pd.read_parquet(fh)
        except FileNotFoundError:
            return {}
        return dict(zip(frame["file"].astype(str), frame[column].astype(str), strict=True))

    def sources(self) -> list[str]:
        """Sources with index rows."""
        self._ensure_migrated()
        try:
            names = self.fs.ls(f"{self.root}/{INDEX_DIR}", detail=False)
        except FileNotFoundError:
            return []
        base = [str(n).rstrip("/").rsplit("/", 1)[-1] for n in names]
        return sorted(unquote(b) for n, b in zip(names, base, strict=True)
                      if not b.startswith("_") and self.fs.isdir(n))

    def read(self, source: str) -> pd.DataFrame:
        """Every index row of one source (deduplicated on ``source, file, sha256,
        status``, the first fetch kept); merges its files when there are too many.
        Rows read from the same files before in this process are not read again."""
        return self._read_cached(source)[1].copy(deep=False)   # (copy on write)

    def key_set(self, source: str) -> frozenset[tuple[str, ...]]:
        """The ``(source, file, sha256, status)`` keys of :meth:`read`'s rows (built once
        per file list in this process)."""
        files, frame = self._read_cached(source)
        key = self._cache_key(source)
        with _READS_LOCK:
            hit = _KEYSETS.get(key)
        if hit is not None and hit[0] == files:
            return hit[1]
        keys = frozenset(zip(*(frame[k].astype(str) for k in _KEY), strict=True))
        with _READS_LOCK:
            _KEYSETS[key] = (files, keys)
            while len(_KEYSETS) > _CACHE_SIZE:
                _KEYSETS.pop(next(iter(_KEYSETS)))
        return keys

    def _cache_key(self, source: str) -> tuple[str, str, str]:
        return str(self.fs.protocol), self.root, source

    def _read_cached(self, source: str) -> tuple[tuple[str, ...], pd.DataFrame]:
        self._ensure_migrated()
        key = self._cache_key(source)
        for _ in range(5):
            try:
                files = tuple(self._files(source))
                with _READS_LOCK:
                    hit = _READS.get(key)
                if hit is not None and hit[0] == files:
                    return hit
                frame = self._read(list(files))
            except FileNotFoundError:   # a concurrent merge removed a listed file
                continue
            if len(files) > COMPACT_AT:
                self._compact(source, list(files), frame)
                return (), frame      # (not kept: the merge changed the file list)
            with _READS_LOCK:
                _READS.pop(key, None)
                _READS[key] = (files, frame)
                while len(_READS) > _CACHE_SIZE:
                    _READS.pop(next(iter(_READS)))
            return files, frame
        files = tuple(self._files(source))
        return files, self._read(list(files))

    def _files(self, source: str) -> list[str]:
        try:
            names = self.fs.ls(self._dir(source), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(n) for n in names
                      if str(n).endswith(".parquet") and "/.tmp-" not in str(n))

    def _read(self, files: list[str]) -> pd.DataFrame:
        if not files:
            return typed(pd.DataFrame({c: [] for c in INDEX_COLUMNS}))
        table = pq.ParquetDataset(files, filesystem=self.fs).read()
        frame = typed(table.to_pandas()).sort_values("fetched_at", kind="stable")
        return frame.drop_duplicates(_KEY, keep="first").reset_index(drop=True)

    def _compact(self, source: str, files: list[str], frame: pd.DataFrame) -> None:
        self._write_rows(source, frame, "base")
        for f in files:
            try:
                self.fs.rm_file(f)
            except FileNotFoundError:
                pass


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Index rows with the index's dtypes and column order.

    Examples
    --------
    >>> typed(pd.DataFrame({c: [] for c in INDEX_COLUMNS})).dtypes["known_at"]
    datetime64[ns, UTC]
    """
    if _has_dtypes(frame, _INDEX_DTYPES):
        return frame   # already typed (fresh rows of record): no copy
    out = _typed(frame)
    known: Any = frame["known_at"] if "known_at" in frame else pd.NaT
    out["known_at"] = pd.Series(pd.to_datetime(known, utc=True), index=out.index) \
        .astype("datetime64[ns, UTC]")
    return out.loc[:, list(INDEX_COLUMNS)]


_INDEX_DTYPES.update(typed(pd.DataFrame({c: [] for c in INDEX_COLUMNS})).dtypes.to_dict())   # what the typing functions produce
