"""Pandera schemas of the canonical frames: types, nulls, ranges and allowed values.

Row-level failures become quarantine rows (see :func:`schema_issues`); the cross-row and
cross-frame checks (OHLC order, duplicates, calendars, jumps, unknown assets) live in
:mod:`quantlib.validate.checks`.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from quantlib.markets import STATEMENT_FIELDS
from quantlib.standardize import FRAME_COLUMNS

__all__ = ["SCHEMAS", "STATEMENT_FIELDS", "ACTION_KINDS", "schema_issues", "ISSUE_COLUMNS",
           "ASSET_ID_PATTERN", "SYMBOL_PATTERN", "ISIN_PATTERN", "is_identifier"]

# STATEMENT_FIELDS: the canonical statement fields, defined once in quantlib/markets.yaml
ACTION_KINDS = ("split", "dividend")
ISSUE_COLUMNS = ["frame", "idx", "field", "value", "check", "reason", "severity"]

_NAMES = {"not_nullable": "missing_or_garbage", "greater_than(0)": "positive",
          "greater_than_or_equal_to(0)": "non_negative"}
_REASONS = {
    "missing_or_garbage": "value is missing or not a number/date (garbage in the vendor file)",
    "positive": "value must be > 0",
    "non_negative": "value must be >= 0",
}


def _col(dtype: str | None, *checks: pa.Check, nullable: bool = False) -> pa.Column:
    return pa.Column(dtype, list(checks), nullable=nullable, coerce=False)


#: Declared identifier patterns. Identifiers come from vendor files and end up in
#: paths, URLs, SQL and dashboards, so anything else (``../../etc/passwd``, spaces,
#: control characters, 200-character strings) is quarantined with the pattern as reason.
ISIN_PATTERN = r"[A-Z]{2}[A-Z0-9]{9}[0-9]"
#: A ticker: letters, digits and ``. = _ -`` (``BRK.B``, ``005930``), or an index like
#: ``^GSPC``; at most 32 characters, never a path separator.
SYMBOL_PATTERN = r"[A-Za-z0-9^][A-Za-z0-9.=_-]{0,31}"
#: An ISIN, or ``NAMESPACE:SYMBOL`` for sources without ISINs (``YAHOO:AAPL``).
ASSET_ID_PATTERN = rf"(?:{ISIN_PATTERN}|[A-Z][A-Z0-9_]{{0,15}}:{SYMBOL_PATTERN})"
_PATTERN_REASONS = {
    "asset_id_pattern": f"asset_id must be an ISIN or NAMESPACE:SYMBOL (pattern "
                        f"{ASSET_ID_PATTERN})",
    "symbol_pattern": f"ticker must match {SYMBOL_PATTERN} (letters, digits, . = _ -)",
}


def is_identifier(values: pd.Series, pattern: str) -> pd.Series:
    """Whether each value matches ``pattern`` whole (missing values count as matching:
    the null checks report them).

    Examples
    --------
    >>> ids = pd.Series(["KR7005930003", "YAHOO:AAPL", "YAHOO:../../etc/passwd", "a b"])
    >>> is_identifier(ids, ASSET_ID_PATTERN).tolist()
    [True, True, False, False]
    >>> is_identifier(pd.Series(["BRK.B", "^GSPC", "005930", "../x", "A\\n"]),
    ...               SYMBOL_PATTERN).tolist()
    [True, True, True, False, False]
    """
    text = values.astype("string")
    return (text.str.fullmatch(pattern) | text.isna()).fillna(True).astype(bool)


_PATTERNS = {"asset_id_pattern": ASSET_ID_PATTERN, "symbol_pattern": SYMBOL_PATTERN}


def _pattern(name: str, pattern: str) -> pa.Check:
    return pa.Check(lambda s: is_identifier(s, pattern), element_wise=False, name=name,
                    error=name)


_POS = pa.Check.gt(0)
_ID = _pattern("asset_id_pattern", ASSET_ID_PATTERN)
_SYMBOL = _pattern("symbol_pattern", SYMBOL_PATTERN)
_CCY = pa.Check.str_matches(r"^[A-Z]{3}$")

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "assets": pa.DataFrameSchema({
        "asset_id": _col(None, _ID), "market": _col(None), "mic": _col(None),
        "currency": _col(None, _CCY), "sector": _col(None, nullable=True),
        "name": _col(None, nullable=True), "listed": _col(None),
        "delisted": _col(None, nullable=True), "known_at": _col(None)}),
    "symbols": pa.DataFrameSchema({
        "asset_id": _col(None, _ID), "symbol": _col(None, _SYMBOL), "valid_from": _col(None),
        "valid_to": _col(None, nullable=True)}),
    "prices": pa.DataFrameSchema({
        "asset_id": _col(None, _ID), "date": _col(None),
        "open": _col("float64", _POS), "high": _col("float64", _POS),
        "low": _col("float64", _POS), "close": _col("float64", _POS),
        "volume": _col("float64", pa.Check.ge(0)), "known_at": _col(None)}),
    "corporate_actions": pa.DataFrameSchema({
        "asset_id": _col(None, _ID), "ex_date": _col(None),
        "kind": _col(None, pa.Check.isin(list(ACTION_KINDS))),
        "value": _col("float64", _POS), "known_at": _col(None)}),
    "fx": pa.DataFrameSchema({
        "date": _col(None), "currency": _col(None, _CCY), "rate": _col("float64", _POS),
        "known_at": _col(None)}),
    "statements": pa.DataFrameSchema({
        "asset_id": _col(None, _ID), "field": _col(None, pa.Check.isin(list(STATEMENT_FIELDS))),
        "period_end": _col(None), "value": _col("float64"), "known_at": _col(None)}),
}
if set(SCHEMAS) != set(FRAME_COLUMNS):  # keep the schemas in step with the contract
    raise RuntimeError("quantlib.validate.SCHEMAS must cover every canonical frame")


def schema_issues(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Row-level schema failures of one frame as issues (``idx`` = frame index label).

    Examples
    --------
    >>> from quantlib.standardize import empty_frame
    >>> fx = pd.concat([empty_frame("fx"), pd.DataFrame({"date": pd.to_datetime(
    ...     ["2024-03-04"] * 2), "currency": ["EUR", "eur"], "rate": [1.1, float("nan")],
    ...     "known_at": pd.to_datetime(["2024-03-04T21:15Z"] * 2), "source": "api-fx",
    ...     "file": "api/v1/fx?page=1", "row": [0, 1]})], ignore_index=True)
    >>> schema_issues("fx", fx)[["idx", "field", "check"]].values.tolist()
    [[1, 'currency', 'str_matches'], [1, 'rate', 'missing_or_garbage']]
    """
    if frame.empty or _clean(name, frame):
        return pd.DataFrame({c: [] for c in ISSUE_COLUMNS})
    try:
        SCHEMAS[name].validate(frame, lazy=True)
        return pd.DataFrame({c: [] for c in ISSUE_COLUMNS})
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
    fc = fc[fc["index"].notna()]
    check = fc["check"].astype(str).map(lambda c: _NAMES.get(c, c.split("(")[0]))
    out = pd.DataFrame({
        "frame": name, "idx": fc["index"].to_numpy(), "field": fc["column"].astype(str),
        "value": fc["failure_case"].astype(str).to_numpy(), "check": check.to_numpy(),
        "reason": [_REASONS.get(c) or _PATTERN_REASONS.get(c, f"failed {raw}") for c, raw in zip(check, fc["check"],
                                                                         strict=True)],
        "severity": "bad"})
    return out.sort_values(["idx", "field"], kind="stable", ignore_index=True)


def _passes(check: pa.Check, values: pd.Series) -> bool:
    """Whether every (non-missing) value passes ``check``, as pandera would decide it;
    False for a check not known here (pandera then decides)."""
    stats = check.statistics or {}
    if check.name == "greater_than":
        return bool((values > stats["min_value"]).all())
    if check.name == "greater_than_or_equal_to":
        return bool((values >= stats["min_value"]).all())
    if check.name == "isin":
        return bool(values.isin(stats["allowed_values"]).all())
    if check.name == "str_matches":
        return bool(values.str.match(stats["pattern"], na=False).all())
    if check.name in _PATTERNS:
        return bool(is_identifier(values, _PATTERNS[check.name]).all())
    return False


def _clean(name: str, frame: pd.DataFrame) -> bool:
    """Whether pandera would find no row of ``frame`` failing its schema: the same
    checks, column by column, stopping at the first doubt (then pandera runs and
    reports the failures as before). A clean batch skips pandera's failure bookkeeping.

    Examples
    --------
    >>> from quantlib.standardize import empty_frame
    >>> fx = pd.concat([empty_frame("fx"), pd.DataFrame({"date": pd.to_datetime(
    ...     ["2024-03-04"]), "currency": ["EUR"], "rate": [1.1],
    ...     "known_at": pd.to_datetime(["2024-03-04T21:15Z"]), "source": "api-fx",
    ...     "file": "api/v1/fx?page=1", "row": [0]})], ignore_index=True)
    >>> _clean("fx", fx), _clean("fx", fx.assign(rate=-1.0)), _clean("fx", fx.assign(
    ...     currency="eur")), _clean("fx", fx.assign(date=pd.NaT))
    (True, False, False, False)
    """
    for col, spec in SCHEMAS[name].columns.items():
        if col not in frame:
            return False
        values = frame[col]
        if spec.dtype is not None and str(spec.dtype) != str(values.dtype):
            return False
        missing = values.isna().to_numpy()
        if missing.any():
            if not spec.nullable:
                return False
            values = values[~missing]
        if not all(_passes(check, values) for check in spec.checks):
            return False
    return True
