"""Canonical frame names and columns as the store knows them (see docs/architecture.md)."""

from __future__ import annotations

import pandas as pd

from quantlib.standardize.batch import FRAME_COLUMNS

__all__ = ["LONG_TABLES", "PANEL_TABLES", "FRAME_NAMES", "CANONICAL_COLUMNS",
           "STATEMENT_KEY", "empty_frame"]

LONG_TABLES = ("assets", "symbols", "corporate_actions", "statements")
PANEL_TABLES = ("prices", "fx")
FRAME_NAMES = (*LONG_TABLES, *PANEL_TABLES)
STATEMENT_KEY = ["asset_id", "field", "period_end", "known_at"]

# the canonical schema is defined once, beside the frames standardization produces
CANONICAL_COLUMNS: dict[str, dict[str, str]] = FRAME_COLUMNS


def empty_frame(name: str) -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes of ``name``.

    Examples
    --------
    >>> empty_frame("fx").dtypes["known_at"]
    datetime64[ns, UTC]
    """
    return pd.DataFrame({col: pd.Series([], dtype=dtype)
                         for col, dtype in CANONICAL_COLUMNS[name].items()})
