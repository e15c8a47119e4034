"""Canonical frame names and columns as the store knows them (see docs/architecture.md)."""

from __future__ import annotations

import pandas as pd

__all__ = ["LONG_TABLES", "PANEL_TABLES", "FRAME_NAMES", "CANONICAL_COLUMNS",
           "STATEMENT_KEY", "empty_frame"]

LONG_TABLES = ("assets", "symbols", "corporate_actions", "statements")
PANEL_TABLES = ("prices", "fx")
FRAME_NAMES = (*LONG_TABLES, *PANEL_TABLES)
STATEMENT_KEY = ["asset_id", "field", "period_end", "known_at"]

_DATE = "datetime64[ns]"
_UTC = "datetime64[ns, UTC]"
CANONICAL_COLUMNS: dict[str, dict[str, str]] = {
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


def empty_frame(name: str) -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes of ``name``.

    Examples
    --------
    >>> empty_frame("fx").dtypes["known_at"]
    datetime64[ns, UTC]
    """
    return pd.DataFrame({col: pd.Series([], dtype=dtype)
                         for col, dtype in CANONICAL_COLUMNS[name].items()})
