"""The raw zone: immutable deliveries named by content hash and an append-only manifest.

Algorithm of :meth:`RawZone.put`:

1. hash the bytes (sha256); the object path is ``raw/<sha[:2]>/<sha>``;
2. if an object of that size is already there, keep it (never rewrite); otherwise write it
   atomically (temporary name then rename on local folders, one single PUT on S3);
3. unless ``record=False``, append one manifest row, unless the manifest already holds a
   row for the same ``(source, file, sha256, status)``.

Manifest files are never changed after they are written: each :meth:`RawZone.record` call
adds one new parquet file under ``tables/manifest/`` (the provenance log, read whole only
by :meth:`RawZone.manifest`) and its rows, split by source, to the manifest index
(:mod:`quantlib.raw.index`), which is what a refresh reads (:meth:`RawZone.has`,
:meth:`RawZone.known`, :meth:`RawZone.unpublished`, :meth:`RawZone.high_water`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any, cast

import pandas as pd
import pyarrow.parquet as pq

from quantlib.config import load_config
from quantlib.errors import StoreError
from quantlib.raw.fs import filesystem

__all__ = ["RawZone", "Delivery", "MANIFEST_COLUMNS", "MANIFEST_STATUSES", "sha256_hex",
           "query_of"]

MANIFEST_COLUMNS = ("fetch_id", "source", "market", "file", "fmt", "sha256", "bytes", "rows",
                    "fetched_at", "status")
MANIFEST_STATUSES = ("fetched", "standardized", "quarantined", "published", "rejected", "failed")
_KEY = ("source", "file", "sha256", "status")
_MANIFEST_DTYPES: dict[str, Any] = {}   # filled at the end of the module


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of some bytes.

    Examples
    --------
    >>> sha256_hex(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """One file (or API page) exactly as a vendor delivered it, stored in the raw zone.

    ``file`` is the delivery's path at the vendor (``kr/prices/20240102.csv``,
    ``api/v1/prices?market=US&page=3``); ``path`` is its object path inside the store
    (``raw/<sha[:2]>/<sha>``); ``rows`` is the number of data rows (None if unknown);
    ``known_at`` the vendor's newest publication time in it, when the delivery says (an
    API page's largest ``updated_ms``), else None.
    """

    source: str
    market: str
    file: str
    fmt: str
    sha256: str
    bytes: int
    rows: int | None
    fetched_at: pd.Timestamp
    fetch_id: str
    path: str
    known_at: pd.Timestamp | None = None

    def manifest_row(self, status: str = "fetched") -> dict[str, Any]:
        """This delivery as a manifest row.

        Examples
        --------
        >>> d = Delivery("ftp-kr", "KR", "kr/master.csv", "kr-ftp-csv", "ab" * 32, 10, 2,
        ...              pd.Timestamp("2024-01-02", tz="UTC"), "f1", "raw/ab/" + "ab" * 32)
        >>> d.manifest_row()["status"]
        'fetched'
        """
        row = {k: v for k, v in asdict(self).items() if k not in ("path", "known_at")}
        row["status"] = status
        return row


def _object_path(sha: str) -> str:
    return f"raw/{sha[:2]}/{sha}"


class RawZone:
    """Immutable raw zone over fsspec (a local folder or ``s3://``).

    Parameters
    ----------
    store_url : str, optional
        The store URL; defaults to the configured store (``quantlib.config``).

    Examples
    --------
    >>> import tempfile
    >>> raw = RawZone(tempfile.mkdtemp())
    >>> d = raw.put(b"a,b\\n1,2\\n", source="drop", market="US", file="x.csv",
    ...             fetch_id="f1", fmt="yahoo-csv", rows=1)
    >>> d.path == f"raw/{d.sha256[:2]}/{d.sha256}"
    True
    >>> raw.get(d.sha256)
    b'a,b\\n1,2\\n'
    >>> raw.has("drop", "x.csv", d.sha256), len(raw.manifest())
    (True, 1)
    >>> _ = raw.put(b"a,b\\n1,2\\n", source="drop", market="US", file="x.csv",
    ...             fetch_id="f2", fmt="yahoo-csv", rows=1)
    >>> len(raw.manifest())
    1
    """

    def __init__(self, store_url: str | None = None) -> None:
        self.url = store_url if store_url is not None else load_config().store_url
        self.fs, self.root = filesystem(self.url)
        self._lock = threading.Lock()
        self._keys: dict[str, set[tuple[str, str, str, str]]] = {}
        self._local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                 else (self.fs.protocol,))
        from quantlib.raw.index import ManifestIndex

        self.index = ManifestIndex(self.fs, self.root, self.manifest, self._write_atomic)

    def __repr__(self) -> str:
        return f"RawZone({self.url!r})"

    # -- objects -------------------------------------------------------------------------
    def _full(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _write_atomic(self, rel: str, data: bytes) -> None:
        target = self._full(rel)
        if not self._local:
            self.fs.pipe_file(target, data)  # one single PUT: atomic on S3
            return
        # a local folder: plain os calls (fsspec's local layer cost ~1 ms of CPU a file,
        # most of the raw zone's cost for ~10 KB daily files; bench/bench_fetch.py)
        parent = target.rsplit("/", 1)[0]
        os.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)

    def _stored_size(self, rel: str) -> int | None:
        """Size of a stored object, None if absent."""
        target = self._full(rel)
        if self._local:
            try:
                return os.stat(target).st_size
            except FileNotFoundError:
                return None
        return int(self.fs.size(target)) if self.fs.exists(target) else None

    def put(self, data: bytes, *, source: str, market: str, file: str, fetch_id: str,
            fmt: str, rows: int | None = None, record: bool = True,
            fetched_at: pd.Timestamp | None = None,
            known_at: pd.Timestamp | None = None) -> Delivery:
        """Store a delivery's bytes unchanged and (by default) record it in the manifest.

        Idempotent: the same bytes always land at the same path, an existing object is
        never rewritten, and no second manifest row is added for the same
        ``(source, file, sha256)``.

        Parameters
        ----------
        data : bytes
            The delivery exactly as received.
        source, market, file, fetch_id, fmt : str
            Provenance; ``file`` is the path at the vendor, ``fmt`` the reader name.
        rows : int, optional
            Number of data rows, if known (sidecar or page length).
        record : bool
            Append the manifest row now (``False``: the caller batches
            :meth:`record` calls).
        fetched_at, known_at : Timestamp, optional
            When it was fetched (default now) and the vendor's newest publication time
            in it (kept in the manifest index).
        """
        sha = sha256_hex(data)
        rel = _object_path(sha)
        if self._stored_size(rel) != len(data):
            self._write_atomic(rel, data)
        when = fetched_at if fetched_at is not None else pd.Timestamp.now(tz="UTC")
        delivery = Delivery(source=source, market=market, file=file, fmt=fmt, sha256=sha,
                            bytes=len(data), rows=rows, fetched_at=when, fetch_id=fetch_id,
                            path=rel, known_at=known_at)
        if record:
            self.record([delivery])
        return delivery

    def get(self, sha256: str) -> bytes:
        """Bytes of a stored delivery, checked against their hash.

        Raises
        ------
        StoreError
            If no object has that hash, or the stored bytes no longer match it.
        """
        target = self._full(_object_path(sha256))
        try:
            data = self.fs.cat_file(target)
        except FileNotFoundError:
            raise StoreError("raw zone must hold the requested delivery", found="no object",
                             fix="fetch the source again (quantlib data refresh)",
                             file=_object_path(sha256)) from None
        actual = sha256_hex(data)
        if actual != sha256:
            raise StoreError("raw object must match its content hash", found=actual,
                             fix="delete the corrupt object and fetch the source again",
                             file=_object_path(sha256))
        return data

    # -- manifest ------------------------------------------------------------------------
    @property
    def manifest_dir(self) -> str:
        """Full path of the manifest folder."""
        return self._full("tables/manifest")

    def manifest(self) -> pd.DataFrame:
        """All manifest rows (every parquet file under ``tables/manifest/``).

        Examples
        --------
        >>> import tempfile
        >>> list(RawZone(tempfile.mkdtemp()).manifest().columns)[:3]
        ['fetch_id', 'source', 'market']
        """
        try:
            files = sorted(p for p in self.fs.find(self.manifest_dir)
                           if p.endswith(".parquet") and "/.tmp-" not in p)
        except FileNotFoundError:
            files = []
        if not files:
            return _empty_manifest()
        table = pq.ParquetDataset(files, filesystem=self.fs).read()
        return _typed(table.to_pandas())

    def _known_keys(self, source: str) -> set[tuple[str, str, str, str]]:
        if source not in self._keys:
            self._keys[source] = set(cast(Any, self.index.key_set(source)))
        return self._keys[source]

    def has(self, source: str, file: str, sha256: str) -> bool:
        """Whether the manifest already records this delivery (any status).

        Examples
        --------
        >>> import tempfile
        >>> RawZone(tempfile.mkdtemp()).has("ftp-kr", "kr/master.csv", "00" * 32)
        False
        """
        with self._lock:
            keys = self._known_keys(source)
            return any((source, file, sha256, s) in keys for s in MANIFEST_STATUSES)

    def known(self, source: str) -> KnownDeliveries:
        """The deliveries of one source already in the raw zone, by ``(file, sha256)``
        (the first fetch of each; reads only that source's manifest index).

        Examples
        --------
        >>> import tempfile
        >>> raw = RawZone(tempfile.mkdtemp())
        >>> d = raw.put(b"v1", source="s", market="US", file="a", fetch_id="1", fmt="f")
        >>> raw.known("s")[("a", d.sha256)].fetch_id, len(raw.known("other"))
        ('1', 0)
        """
        return KnownDeliveries(self.index.read(source))

    def unpublished_files(self, source: str) -> set[str]:
        """The files of one source with a delivery in the raw zone that no published
        version was built from (as :meth:`unpublished` of every known delivery, read
        from the manifest index in one pass).

        Examples
        --------
        >>> import tempfile
        >>> raw = RawZone(tempfile.mkdtemp())
        >>> v1 = raw.put(b"v1", source="s", market="KR", file="kr/m.csv", fetch_id="1", fmt="f")
        >>> before = raw.unpublished_files("s")
        >>> _ = raw.record([v1], status="published")
        >>> before, raw.unpublished_files("s")
        ({'kr/m.csv'}, set())
        """
        m = self.index.read(source)
        key = pd.MultiIndex.from_arrays([m["file"].astype(str), m["sha256"].astype(str)])
        done = key[(m["status"] == "published").to_numpy()]
        return set(m.loc[~key.isin(done), "file"].astype(str))

    def unpublished(self, deliveries: Iterable[Delivery]) -> list[Delivery]:
        """The deliveries no published version was built from (new, changed, or fetched
        by a run that was killed or rejected before it published).

        Examples
        --------
        >>> import tempfile
        >>> raw = RawZone(tempfile.mkdtemp())
        >>> a = raw.put(b"1", source="s", market="US", file="a", fetch_id="1", fmt="f")
        >>> b = raw.put(b"2", source="s", market="US", file="b", fetch_id="1", fmt="f")
        >>> _ = raw.record([a], status="published")
        >>> [d.file for d in raw.unpublished([a, b])]
        ['b']
        """
        deliveries = list(deliveries)
        done: set[tuple[str, str, str]] = set()
        for source in sorted({d.source for d in deliveries}):
            m = self.index.read(source)
            m = m[m["status"] == "published"]
            done.update(zip(m["source"], m["file"], m["sha256"], strict=True))
        return [d for d in deliveries if (d.source, d.file, d.sha256) not in done]

    def high_water(self, source: str, prefix: str) -> pd.Timestamp | None:
        """The newest vendor ``known_at`` among one source's *published* deliveries whose
        file starts with ``prefix`` (None if none says): what an ``updated_since`` poll
        starts after.

        Examples
        --------
        >>> import tempfile
        >>> raw = RawZone(tempfile.mkdtemp())
        >>> t = pd.Timestamp("2024-01-02 21:20", tz="UTC")
        >>> d = raw.put(b"p", source="api-us", market="US", file="api/v1/prices?page=1",
        ...             fetch_id="1", fmt="api-json", known_at=t)
        >>> raw.high_water("api-us", "api/v1/prices?") is None
        True
        >>> _ = raw.record([d], status="published")
        >>> str(raw.high_water("api-us", "api/v1/prices?"))
        '2024-01-02 21:20:00+00:00'
        """
        m = self.index.read(source)
        m = m[(m["status"] == "published") & m["file"].str.startswith(prefix)]
        known = m["known_at"].dropna()
        return None if known.empty else pd.Timestamp(known.max())

    def record(self, rows: Iterable[Delivery | Mapping[str, Any]], *,
               status: str | None = None) -> int:
        """Append manifest rows as one new parquet file (atomic; existing files untouched).

        Rows already in the manifest with the same ``(source, file, sha256, status)`` are
        dropped. Returns the number of rows written.

        Parameters
        ----------
        rows : iterable of Delivery or mapping
            Deliveries (status ``"fetched"`` unless ``status`` is given) or manifest rows.
        status : str, optional
            Override the status of every row (one of :data:`MANIFEST_STATUSES`).
        """
        frame = _rows_frame(rows, status)
        if status == "published" and len(frame):
            self._note_published(frame)   # every row: also those published before
        with self._lock:
            fresh, seen = [], set()
            for i, key in enumerate(zip(*(frame[k].astype(str) for k in _KEY), strict=True)):
                if key not in self._known_keys(key[0]) and key not in seen:
                    fresh.append(i)
                    seen.add(key)
            if len(fresh) < len(frame):
                frame = frame.iloc[fresh].reset_index(drop=True)
            if frame.empty:
                return 0
            fetch_id = str(frame["fetch_id"].iloc[0])
            name = f"tables/manifest/{fetch_id}-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}" \
                   f"-{uuid.uuid4().hex[:8]}.parquet"
            self._write_atomic(name, frame.loc[:, list(MANIFEST_COLUMNS)].to_parquet(index=False))
            self.index.append(frame)   # after the log: a crash between costs redundant work only
            for key in seen:
                self._keys[key[0]].add(key)
            return len(frame)

    def _note_published(self, frame: pd.DataFrame) -> None:
        """Update each source's last-published map (:meth:`ManifestIndex.published`): the
        published files' sha256; an API query's pages replace all its earlier pages (a
        page the table no longer has is no part of the version now stored)."""
        for source, rows in frame.groupby("source", sort=True):
            shas = self.index.published(str(source))
            files = rows["file"].astype(str).tolist()
            queries = {query_of(f) for f in files if f.startswith("api/")}
            # a polled endpoint's queries (updated_since=) never repeat: its earlier
            # queries (the full build's pages, earlier polls) are never compared again
            polled = {q.partition("?")[0] for q in queries if POLLED_QUERY in q}
            if queries:
                shas = {f: s for f, s in shas.items() if query_of(f) not in queries
                        and f.partition("?")[0] not in polled}
            shas.update(zip(files, rows["sha256"].astype(str), strict=True))
            self.index.save_published(str(source), shas)

    def latest_deliveries(self, market: str | None = None) -> list[Delivery]:
        """For each ``(source, file)`` the newest delivery (by ``fetched_at``).

        Examples
        --------
        >>> import tempfile
        >>> raw = RawZone(tempfile.mkdtemp())
        >>> _ = raw.put(b"v1", source="s", market="US", file="a", fetch_id="1", fmt="f")
        >>> _ = raw.put(b"v2", source="s", market="US", file="a", fetch_id="2", fmt="f")
        >>> [raw.get(d.sha256) for d in raw.latest_deliveries("US")]
        [b'v2']
        """
        frames = [self.index.read(s) for s in self.index.sources()]
        m = pd.concat(frames, ignore_index=True) if frames else self.index.read("")
        if market is not None:
            m = m[m["market"] == market]
        m = m.sort_values("fetched_at", kind="stable")
        first = m.drop_duplicates(["source", "file", "sha256"], keep="first")
        latest = first.drop_duplicates(["source", "file"], keep="last")
        latest = latest.sort_values(["source", "file"], kind="stable")
        return [_delivery(r) for r in latest.to_dict("records")]


#: what the file name of an API page polled with ``updated_since`` holds (such a query
#: is never asked twice: :mod:`quantlib.sources.http`)
POLLED_QUERY = "updated_since="


def query_of(file: str) -> str:
    """An API page's query without its page number (the pages of one delivered table);
    a file's own name otherwise.

    Examples
    --------
    >>> query_of("api/v1/securities?market=US&page=3"), query_of("kr/master.csv")
    ('api/v1/securities?market=US', 'kr/master.csv')
    """
    if "?" not in file:
        return file
    path, _, query = file.partition("?")
    kept = [p for p in query.split("&") if not p.startswith("page=")]
    return path + ("?" + "&".join(kept) if kept else "")


class KnownDeliveries(MutableMapping[tuple[str, str], Delivery]):
    """``(file, sha256) -> Delivery`` over a source's manifest index rows (the first
    fetch of each), a :class:`Delivery` built only when looked up (a source's index
    holds every page and file it ever fetched: building them all grew with history)."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self._rows = rows
        keys = zip(rows["file"].astype(str), rows["sha256"].astype(str), strict=True)
        self._pos: dict[tuple[str, str], int] = {}
        for i, k in enumerate(keys):
            self._pos.setdefault(k, i)
        self._extra: dict[tuple[str, str], Delivery] = {}

    def __getitem__(self, key: tuple[str, str]) -> Delivery:
        if key in self._extra:
            return self._extra[key]
        return _delivery(self._rows.iloc[self._pos[key]])

    def __setitem__(self, key: tuple[str, str], value: Delivery) -> None:
        self._extra[key] = value

    def __delitem__(self, key: tuple[str, str]) -> None:
        raise TypeError("known deliveries cannot be removed")

    def __contains__(self, key: object) -> bool:
        return key in self._extra or key in self._pos

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from self._pos
        yield from (k for k in self._extra if k not in self._pos)

    def __len__(self) -> int:
        return len(self._pos) + sum(k not in self._pos for k in self._extra)


def _delivery(r: Mapping[str, Any]) -> Delivery:
    rows, known = r["rows"], r.get("known_at")
    return Delivery(source=str(r["source"]), market=str(r["market"]), file=str(r["file"]),
                    fmt=str(r["fmt"]), sha256=str(r["sha256"]), bytes=int(r["bytes"]),
                    rows=None if pd.isna(rows) else int(rows),
                    fetched_at=pd.Timestamp(r["fetched_at"]), fetch_id=str(r["fetch_id"]),
                    path=_object_path(str(r["sha256"])),
                    known_at=None if known is None or pd.isna(known) else pd.Timestamp(known))


def _empty_manifest() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: [] for c in MANIFEST_COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    if _has_dtypes(frame, _MANIFEST_DTYPES):
        return frame   # already typed (fresh rows of record): no copy
    out = frame.copy()
    for c in ("fetch_id", "source", "market", "file", "fmt", "sha256", "status"):
        out[c] = out[c].astype(str)
    out["bytes"] = out["bytes"].astype("int64")
    out["rows"] = out["rows"].astype("Int64")
    out["fetched_at"] = pd.to_datetime(out["fetched_at"], utc=True).astype("datetime64[ns, UTC]")
    return out.loc[:, list(MANIFEST_COLUMNS)]


def _has_dtypes(frame: pd.DataFrame, dtypes: dict[str, Any]) -> bool:
    """Whether ``frame`` has exactly these columns, in this order, with these dtypes."""
    return list(frame.columns) == list(dtypes) and \
        all(frame[c].dtype == t for c, t in dtypes.items())


def _deliveries_frame(ds: list[Delivery], status: str | None) -> pd.DataFrame:
    """Manifest rows of deliveries, built column by column in their final dtypes (the
    row-by-row path below costs ~8 ms a 50-row batch, a fetch's largest per-file cost)."""
    if status is not None and status not in MANIFEST_STATUSES:
        raise StoreError(f"manifest status must be one of {', '.join(MANIFEST_STATUSES)}",
                         found=repr(status), fix="use a listed status", file=ds[0].file)
    columns: dict[str, Any] = {
        "bytes": pd.array([d.bytes for d in ds], dtype="int64"),
        "rows": pd.array([d.rows for d in ds], dtype="Int64"),
        "fetched_at": _utc([d.fetched_at for d in ds]),
        "status": pd.array([status or "fetched"] * len(ds), dtype=str),
        "known_at": _utc([d.known_at for d in ds]),
    }
    return pd.DataFrame({c: columns[c] if c in columns
                         else pd.array([str(getattr(d, c)) for d in ds], dtype=str)
                         for c in (*MANIFEST_COLUMNS, "known_at")})


def _utc(values: list[Any]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, utc=True)).astype("datetime64[ns, UTC]")


def _rows_frame(rows: Iterable[Delivery | Mapping[str, Any]], status: str | None) -> pd.DataFrame:
    rows = list(rows)
    if rows and all(isinstance(r, Delivery) for r in rows):
        return _deliveries_frame(rows, status)  # type: ignore[arg-type]
    records = []
    for r in rows:
        rec = {**r.manifest_row(), "known_at": r.known_at} if isinstance(r, Delivery) \
            else dict(r)
        if status is not None:
            rec["status"] = status
        rec.setdefault("status", "fetched")
        missing = [c for c in MANIFEST_COLUMNS if c not in rec]
        if missing:
            raise StoreError("manifest rows must have every manifest column",
                             found=f"missing {missing}", fix="pass Delivery objects or full rows",
                             file="tables/manifest")
        if rec["status"] not in MANIFEST_STATUSES:
            raise StoreError(f"manifest status must be one of {', '.join(MANIFEST_STATUSES)}",
                             found=repr(rec["status"]), fix="use a listed status",
                             file=str(rec["file"]))
        records.append({**{c: rec[c] for c in MANIFEST_COLUMNS},
                        "known_at": rec.get("known_at")})
    if not records:
        return _empty_manifest().assign(known_at=pd.Series([], dtype="datetime64[ns, UTC]"))
    frame = pd.DataFrame.from_records(records)
    known = pd.to_datetime(frame["known_at"], utc=True).astype("datetime64[ns, UTC]")
    return _typed(frame).assign(known_at=known)


_MANIFEST_DTYPES.update(_empty_manifest().dtypes.to_dict())   # what the typing functions produce
