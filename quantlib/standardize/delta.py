"""Re-delivered files read row by row: only the rows their last published version lacked.

A vendor re-delivers a file whole when one row of it changes or is added: the EU month
file gets one more session a day, a whole reference table (US ``corporate_actions``,
``securities``, ``tickers``; the FTP master, symbol and action files) is sent again
when one action is announced or one asset delists. An incremental refresh reads such a
delivery against the version of the same file (an API query: all its pages) it last
*published* (:meth:`quantlib.raw.index.ManifestIndex.published`), as rows of vendor text
(a CSV line, a JSON record's bytes), counted as multisets:

1. *row frames* (``prices``, ``statements``, ``fx``: stored row by row): a row also in
   the published version is already stored, as it was, and is not standardized
   again; every other row (new, or changed: a correction) is;
2. *table frames* (``assets``, ``symbols``, ``corporate_actions``: a delivered table
   replaces the stored rows of the assets it names): the assets with a row added,
   changed or removed are *touched*; every row of a touched asset is read (so the
   delivered rows of each asset it names are complete, as the upsert needs), no row
   of any other asset is;
3. the rows read keep their row number in the delivered file (provenance, quarantine).

Nothing is dropped: every delivery is still in the raw zone and the manifest; a file
with no published version, quoting, blank lines or a row whose asset cannot be told is
read whole, as a first delivery would be.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from quantlib.errors import StoreError
from quantlib.markets import FORMATS
from quantlib.raw import Delivery, RawZone, query_of
from quantlib.standardize.batch import CanonicalBatch
from quantlib.standardize.readers import READERS, reader

__all__ = ["DeltaRead", "read_changed", "TABLE_FRAMES", "vendor_rows"]

TABLE_FRAMES = ("assets", "symbols", "corporate_actions")
"""Frames whose delivery replaces the stored rows of the assets it names."""
_API_FRAME = {"securities": "assets", "tickers": "symbols", "prices": "prices",
              "corporate_actions": "corporate_actions", "fundamentals": "statements",
              "fx": "fx"}


class _RawPage(msgspec.Struct):
    data: list[msgspec.Raw]


_PAGE = msgspec.json.Decoder(_RawPage)


@dataclass
class DeltaRead:
    """What :func:`read_changed` read: the canonical batch, how many delivered rows were
    left unread (already stored), and the deliveries with ``rows`` = the rows read of
    each (what the batch must reconcile with)."""

    batch: CanonicalBatch
    skipped: int
    read: list[Delivery]


def _frame_of(d: Delivery) -> str:
    if d.fmt == "api-json":
        name = d.file.split("?", 1)[0].rsplit("/", 1)[-1]
        return _API_FRAME.get(name, "")
    spec = FORMATS.get(d.fmt)
    return spec.frame_of(d.file) if spec is not None else ""


def vendor_rows(data: bytes, d: Delivery) -> tuple[bytes, list[bytes]] | None:
    """A delivery's header (``b""`` for a JSON page) and data rows as vendor bytes;
    ``None`` when rows cannot be told apart safely (quoting, blank lines, bad JSON).

    Examples
    --------
    >>> import pandas as pd
    >>> d = Delivery("s", "EU", "eu/prices/prices_202401.csv", "eu-ftp-csv", "0" * 64,
    ...              0, 2, pd.Timestamp("2024-01-02", tz="UTC"), "f", "raw/00/0")
    >>> vendor_rows(b"a;b\\n1;2\\n3;4\\n", d)
    (b'a;b', [b'1;2', b'3;4'])
    >>> vendor_rows(b'a;b\\n"1\\n";2\\n', d) is None
    True
    """
    if d.fmt == "api-json":
        try:
            return b"", [bytes(r) for r in _PAGE.decode(data).data]
        except msgspec.DecodeError:
            return None
    if d.fmt not in FORMATS or b'"' in data:
        return None
    header, _, body = data.partition(b"\n")
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if any(not line.strip() for line in lines):
        return None
    return header, lines


def _pack(d: Delivery, header: bytes, rows: list[bytes]) -> bytes:
    if d.fmt == "api-json":
        return b'{"data":[' + b",".join(rows) + b'],"page":1,"next_page":null,' + \
            f'"total_rows":{len(rows)}}}'.encode()
    return header + b"\n" + b"".join(r + b"\n" for r in rows)


def _previous(raw: RawZone, group: list[Delivery], cache: dict[str, dict[str, str]]
              ) -> tuple[bytes, Counter[bytes]] | None:
    """The header and rows of the group's last published version (``None``: there is
    none, or it cannot be read row by row)."""
    source, key = group[0].source, query_of(group[0].file)
    if source not in cache:
        cache[source] = raw.index.published(source)
    files = sorted(f for f in cache[source] if query_of(f) == key)
    if not files:
        return None
    old: Counter[bytes] = Counter()
    headers = set()
    for f in files:
        try:
            parts = vendor_rows(raw.get(cache[source][f]), group[0])
        except StoreError:
            return None
        if parts is None:
            return None
        headers.add(parts[0])
        old.update(parts[1])
    return (headers.pop(), old) if len(headers) == 1 else None


def _asset_of(d: Delivery, header: bytes) -> Any:
    """A function giving the asset id of a table row (``None``: no way to tell)."""
    if d.fmt == "api-json":
        def from_json(row: bytes) -> Any:
            try:
                return _ISIN.decode(row).isin
            except msgspec.DecodeError:
                return None
        return from_json
    spec = FORMATS[d.fmt]
    cols = header.decode(spec.encoding, "replace").lstrip("\ufeff").rstrip("\r") \
        .split(spec.separator)
    vendor = [c for c, canon in spec.columns[spec.frame_of(d.file)].items()
              if canon == "asset_id"]
    if len(vendor) != 1 or vendor[0] not in cols:
        return lambda row: None
    at, sep, n = cols.index(vendor[0]), spec.separator.encode(spec.encoding), len(cols)

    def from_csv(row: bytes) -> Any:
        cells = row.split(sep)
        return cells[at] if len(cells) == n else None
    return from_csv


class _Isin(msgspec.Struct):
    isin: str


_ISIN = msgspec.json.Decoder(_Isin)


def _read_group(raw: RawZone, group: list[Delivery], cache: dict[str, dict[str, str]]
                ) -> tuple[list[tuple[bytes, Delivery, np.ndarray | None]], int]:
    """Items of one group (bytes, delivery, original row numbers of the rows kept or
    ``None`` when read whole) and the rows skipped."""
    whole: list[tuple[bytes, Delivery, np.ndarray | None]] = [
        (raw.get(d.sha256), d, None) for d in group]
    prev = _previous(raw, group, cache)
    if prev is None:
        return whole, 0
    header, old = prev
    files: list[tuple[bytes, Delivery, list[bytes], list[bool]]] = []
    for data, d, _ in whole:
        parts = vendor_rows(data, d)
        if parts is None or parts[0] != header:   # unreadable, or another layout
            return whole, 0
        new = []
        for row in parts[1]:
            new.append(old[row] <= 0)
            if old[row] > 0:
                old[row] -= 1
        files.append((data, d, parts[1], new))
    if _frame_of(group[0]) in TABLE_FRAMES:   # read every row of the touched assets
        asset = _asset_of(group[0], header)
        touched = {asset(r) for r, n in old.items() if n > 0}
        touched |= {asset(r) for _, _, rows, new in files
                    for r, is_new in zip(rows, new, strict=True) if is_new}
        if None in touched:
            return whole, 0
        files = [(data, d, rows, [asset(r) in touched for r in rows])
                 for data, d, rows, _ in files]
    items: list[tuple[bytes, Delivery, np.ndarray | None]] = []
    skipped, base = 0, 0 if group[0].fmt == "api-json" else 1
    for _data, d, rows, read in files:
        keep = np.flatnonzero(np.asarray(read, dtype=bool))
        skipped += len(rows) - len(keep)
        items.append((_pack(d, header, [rows[i] for i in keep]), d, keep + base))
    return items, skipped


def read_changed(deliveries: Sequence[Delivery], raw: RawZone) -> DeltaRead:
    """Standardize deliveries, each re-delivered file (or API query) only for the rows
    its last published version lacked (see the module docstring).

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> raw = RawZone(tempfile.mkdtemp())
    >>> head = "ISIN;Ticker;Date;Open;High;Low;Close;Volume\\n"
    >>> bar = "DE0007164600;SAP;0{}.01.2024;170,5;172,25;169;{};12000\\n"
    >>> def put(text):
    ...     return raw.put(text.encode(), source="ftp-eu", market="EU",
    ...                    file="eu/prices/prices_202401.csv", fetch_id="f",
    ...                    fmt="eu-ftp-csv", rows=text.count("\\n") - 1)
    >>> v1 = put(head + bar.format(2, "171") + bar.format(3, "171"))
    >>> _ = raw.record([v1], status="published")
    >>> v2 = put(head + bar.format(2, "171") + bar.format(3, "171,5") + bar.format(4, "172"))
    >>> out = read_changed([v2], raw)
    >>> out.batch.prices[["close", "row"]].values.tolist(), out.skipped
    ([[171.5, 2.0], [172.0, 3.0]], 1)
    """
    groups: dict[tuple[str, str], list[Delivery]] = {}
    for d in deliveries:
        groups.setdefault((d.source, query_of(d.file)), []).append(d)
    cache: dict[str, dict[str, str]] = {}
    items: list[tuple[bytes, Delivery, np.ndarray | None]] = []
    skipped = 0
    for group in groups.values():
        got, n = _read_group(raw, group, cache)
        items += got
        skipped += n
    read = [d if keep is None else dataclasses.replace(d, rows=len(keep))
            for _, d, keep in items]
    return DeltaRead(_standardize(items), skipped, read)


def _standardize(items: Iterable[tuple[bytes, Delivery, np.ndarray | None]]
                 ) -> CanonicalBatch:
    """The readers over the items, then each kept row's number in its delivered file."""
    by_fmt: dict[str, list[tuple[bytes, Delivery]]] = {}
    rows: dict[tuple[str, str], np.ndarray] = {}
    for data, d, keep in items:
        if d.fmt not in READERS:
            reader(d.fmt)   # raises the StandardizeError naming the known formats
        by_fmt.setdefault(d.fmt, []).append((data, d))
        if keep is not None:
            rows[(d.source, d.file)] = keep
    batch = CanonicalBatch.concat(READERS[f].load_many()(group) for f, group in by_fmt.items())
    if not rows:
        return batch
    frames = {**batch.frames(), "unparsed": batch.unparsed}
    for name, f in frames.items():
        if not len(f):
            continue
        fixed = f["row"].to_numpy(dtype="int64", copy=True)
        for (source, file), keep in rows.items():
            at = ((f["source"] == source) & (f["file"] == file)).to_numpy()
            if at.any():
                fixed[at] = keep[fixed[at] - (0 if file.startswith("api/") else 1)]
        frames[name] = f.assign(row=fixed)
    unparsed = frames.pop("unparsed")
    return CanonicalBatch(**frames, unparsed=unparsed)
