"""Validate canonical batches: pandera schemas, domain checks, quarantine and reports."""

from quantlib.validate.checks import DUPLICATE_KEYS
from quantlib.validate.core import QUARANTINE_COLUMNS, ValidationOutcome, validate
from quantlib.validate.report import summarize, validation_table, write_report
from quantlib.validate.schemas import ACTION_KINDS, SCHEMAS, STATEMENT_FIELDS

__all__ = [
    "validate",
    "ValidationOutcome",
    "write_report",
    "summarize",
    "validation_table",
    "SCHEMAS",
    "DUPLICATE_KEYS",
    "STATEMENT_FIELDS",
    "ACTION_KINDS",
    "QUARANTINE_COLUMNS",
]
