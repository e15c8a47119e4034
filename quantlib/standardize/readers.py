"""The reader registry: one small declarative entry per vendor format.

A reader is found by its format name (a delivery's ``fmt``) and imported lazily from its
``"module:function"`` string; the function takes ``(bytes, Delivery)`` and returns a
:class:`~quantlib.standardize.CanonicalBatch`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from quantlib.errors import StandardizeError
from quantlib.markets import FORMATS
from quantlib.raw import Delivery, RawZone
from quantlib.standardize.batch import CanonicalBatch

__all__ = ["Reader", "READERS", "reader", "standardize", "read_delivery"]

ReadFn = Callable[[bytes, Delivery], CanonicalBatch]
ManyFn = Callable[[Sequence[tuple[bytes, Delivery]]], CanonicalBatch]


@dataclass(frozen=True)
class Reader:
    """A vendor format: its name, the reader function (lazy import) and what it covers."""

    name: str
    function: str
    many: str | None
    encoding: str
    frames: tuple[str, ...]
    description: str

    def load(self) -> ReadFn:
        """Import and return the reader function.

        Examples
        --------
        >>> READERS["kr-ftp-csv"].load().__name__
        'read_delimited'
        """
        return _resolve(self.function)

    def load_many(self) -> ManyFn:
        """The function reading many deliveries at once (or a loop over :meth:`load`)."""
        if self.many is not None:
            return _resolve(self.many)
        one = self.load()
        return lambda items: CanonicalBatch.concat(one(data, d) for data, d in items)


def _resolve(spec: str):  # type: ignore[no-untyped-def]
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


_FRAMES = ("assets", "symbols", "prices", "corporate_actions")
READERS: dict[str, Reader] = {r.name: r for r in (
    *(Reader(name, "quantlib.standardize.delimited:read_delimited",
             "quantlib.standardize.delimited:read_delimited_many", spec.encoding, _FRAMES,
             spec.description) for name, spec in FORMATS.items()),
    Reader("api-json", "quantlib.standardize.api:read_api",
           "quantlib.standardize.api:read_api_many", "utf-8",
           ("assets", "symbols", "prices", "corporate_actions", "statements", "fx"),
           "HTTP JSON API pages, one parser per endpoint, epoch-ms times"),
    Reader("yahoo-csv", "quantlib.standardize.yahoo:read_yahoo", None, "utf-8",
           ("assets", "symbols", "prices", "corporate_actions"),
           "Yahoo-style daily CSVs (bokeh-sampledata stocks), actions from Adj Close"),
)}
"""Every vendor format: the delimited specs of ``quantlib/markets.yaml``, the JSON API
and the Yahoo file drop."""


def reader(fmt: str) -> ReadFn:
    """The reader function for a format name.

    Examples
    --------
    >>> reader("xml")
    Traceback (most recent call last):
    ...
    quantlib.errors.StandardizeError: delivery format must be one of kr-ftp-csv, eu-ftp-csv, jp-ftp-csv, api-json, yahoo-csv; found 'xml' [field=fmt]. Fix: ...
    """
    entry = READERS.get(fmt)
    if entry is None:
        raise StandardizeError(f"delivery format must be one of {', '.join(READERS)}",
                               found=repr(fmt), field="fmt",
                               fix="register a Reader in quantlib.standardize.readers.READERS "
                                   "or record the delivery with a known fmt")
    return entry.load()


def read_delivery(d: Delivery, raw: RawZone) -> CanonicalBatch:
    """Standardize one delivery from the raw zone."""
    fn = reader(d.fmt)
    return fn(raw.get(d.sha256), d)


def standardize(deliveries: Iterable[Delivery], raw: RawZone) -> CanonicalBatch:
    """Read deliveries from the raw zone into one canonical batch.

    Parameters
    ----------
    deliveries : iterable of Delivery
        What to read (e.g. ``fetch_market(...)`` or ``raw.latest_deliveries(market)``).
    raw : RawZone
        Where their bytes are.

    Raises
    ------
    StandardizeError
        A delivery has an unknown format or a renamed/missing column; the message names
        the source, file, expected and found columns and the fix.

    Examples
    --------
    >>> import tempfile
    >>> raw = RawZone(tempfile.mkdtemp())
    >>> text = b"Ticker,Date,Open,High,Low,Close,Volume,Adj Close\\nIBM,2013-03-01,200,202,199,201,10,190\\n"
    >>> d = raw.put(text, source="drop", market="US", file="ibm.csv", fetch_id="f",
    ...             fmt="yahoo-csv", rows=1)
    >>> standardize([d], raw).prices[["asset_id", "close"]].values.tolist()
    [['YAHOO:IBM', 201.0]]
    """
    groups: dict[str, list[Delivery]] = {}
    for d in deliveries:
        groups.setdefault(d.fmt, []).append(d)
    parts = []
    for fmt, group in groups.items():
        entry = READERS.get(fmt)
        if entry is None:
            reader(fmt)  # raises the StandardizeError naming the known formats
            continue
        many = entry.load_many()
        parts.append(many([(raw.get(d.sha256), d) for d in group]))
    return CanonicalBatch.concat(parts)
