"""CanonicalBatch: the standardize -> validate -> store contract (docs/architecture.md).

Each frame has fixed columns and dtypes, plus the provenance columns ``source`` (str),
``file`` (str, the delivery's path at the vendor) and ``row`` (int, 1-based data row in a
CSV file, 0-based index in a JSON page).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["CanonicalBatch", "FRAME_COLUMNS", "PROVENANCE", "FRAME_NAMES", "empty_frame",
           "conform", "UNPARSED_COLUMNS", "empty_unparsed"]

_DATE = "datetime64[ns]"
_UTC = "datetime64[ns, UTC]"
PROVENANCE: dict[str, str] = {"source": "str", "file": "str", "row": "int64"}

FRAME_COLUMNS: dict[str, dict[str, str]] = {
    "assets": {"asset_id": "str", "market": "str", "mic": "str", "currency": "str",
               "sector": "str", "name": "str", "listed": _DATE, "delisted": _DATE,
               "known_at": _UTC},
    "symbols": {"asset_id": "str", "symbol": "str", "valid_from": _DATE, "valid_to": _DATE},
    "prices": {"asset_id": "str", "date": _DATE, "open": "float64", "high": "float64",
               "low": "float64", "close": "float64", "volume": "float64", "known_at": _UTC},
    "corporate_actions": {"asset_id": "str", "ex_date": _DATE, "kind": "str",
                          "value": "float64", "known_at": _UTC},
    "fx": {"date": _DATE, "currency": "str", "rate": "float64", "known_at": _UTC},
    "statements": {"asset_id": "str", "field": "str", "period_end": _DATE,
                   "value": "float64", "known_at": _UTC},
}
FRAME_NAMES = tuple(FRAME_COLUMNS)


UNPARSED_COLUMNS = ("frame", "source", "file", "row", "field", "text")


def empty_unparsed() -> pd.DataFrame:
    """An empty ``CanonicalBatch.unparsed`` frame."""
    out = pd.DataFrame({c: pd.Series([], dtype="str") for c in UNPARSED_COLUMNS})
    out["row"] = out["row"].astype("int64")
    return out


def empty_frame(name: str, provenance: bool = True) -> pd.DataFrame:
    """An empty canonical frame with the right columns and dtypes.

    Examples
    --------
    >>> empty_frame("fx").dtypes.astype(str).to_dict()["known_at"]
    'datetime64[ns, UTC]'
    """
    cols = dict(FRAME_COLUMNS[name], **(PROVENANCE if provenance else {}))
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in cols.items()})


def conform(name: str, frame: pd.DataFrame, provenance: bool = True) -> pd.DataFrame:
    """Select and cast a frame's columns to the canonical order and dtypes.

    Examples
    --------
    >>> f = conform("fx", pd.DataFrame({"date": ["2024-01-02"], "currency": ["EUR"],
    ...     "rate": [1.1], "known_at": ["2024-01-02T21:15Z"], "source": ["api"],
    ...     "file": ["api/v1/fx?page=1"], "row": [0]}))
    >>> str(f["date"].dtype), str(f["known_at"].dtype)
    ('datetime64[ns]', 'datetime64[ns, UTC]')
    """
    cols = dict(FRAME_COLUMNS[name], **(PROVENANCE if provenance else {}))
    out = {}
    for col, dtype in cols.items():
        s = frame[col]
        if dtype == _UTC:
            s = pd.to_datetime(s, utc=True).astype(_UTC)
        elif dtype == _DATE:
            s = pd.to_datetime(s).astype(_DATE)
        else:
            s = s.astype(dtype)
        out[col] = s.reset_index(drop=True)
    return pd.DataFrame(out)


@dataclass
class CanonicalBatch:
    """Canonical frames of one or more deliveries (see :data:`FRAME_COLUMNS`).

    Examples
    --------
    >>> b = CanonicalBatch.empty()
    >>> b.n_rows(), list(b.frames())[:2]
    (0, ['assets', 'symbols'])
    >>> CanonicalBatch.concat([b, b]).prices.columns[-3:].tolist()
    ['source', 'file', 'row']
    """

    assets: pd.DataFrame = field(default_factory=lambda: empty_frame("assets"))
    symbols: pd.DataFrame = field(default_factory=lambda: empty_frame("symbols"))
    prices: pd.DataFrame = field(default_factory=lambda: empty_frame("prices"))
    corporate_actions: pd.DataFrame = field(
        default_factory=lambda: empty_frame("corporate_actions"))
    fx: pd.DataFrame = field(default_factory=lambda: empty_frame("fx"))
    statements: pd.DataFrame = field(default_factory=lambda: empty_frame("statements"))
    unparsed: pd.DataFrame = field(default_factory=lambda: empty_unparsed(), repr=False)
    """Vendor text that did not parse (``frame, source, file, row, field, text``): the
    value is NaN/NaT in its frame; validation shows this text in the quarantine."""

    @classmethod
    def empty(cls) -> CanonicalBatch:
        """A batch whose frames are all empty."""
        return cls()

    @classmethod
    def concat(cls, batches: Iterable[CanonicalBatch]) -> CanonicalBatch:
        """Concatenate batches frame by frame (row order kept, index reset)."""
        batches = list(batches)
        out = {}
        for name in FRAME_NAMES:
            parts = [getattr(b, name) for b in batches if len(getattr(b, name))]
            out[name] = (pd.concat(parts, ignore_index=True) if parts
                         else empty_frame(name))
        bad = [b.unparsed for b in batches if len(b.unparsed)]
        return cls(**out, unparsed=pd.concat(bad, ignore_index=True) if bad
                   else empty_unparsed())

    def frames(self) -> dict[str, pd.DataFrame]:
        """The six canonical frames by name, in contract order."""
        return {name: getattr(self, name) for name in FRAME_NAMES}

    def n_rows(self) -> int:
        """Total number of rows over all frames."""
        return sum(len(f) for f in self.frames().values())

    def replace(self, **frames: pd.DataFrame) -> CanonicalBatch:
        """A copy with some frames replaced."""
        return CanonicalBatch(**{**self.frames(), **frames}, unparsed=self.unparsed)

    def without_provenance(self) -> dict[str, pd.DataFrame]:
        """Frames without the provenance columns (to compare with the sandbox truth)."""
        return {k: v.drop(columns=list(PROVENANCE)) for k, v in self.frames().items()}
