"""Every error and warning quantlib raises.

Each error says what was expected, what was found, and how to fix it, and names
the file, row, asset, field or date involved. Build messages with
:func:`QuantlibError.__init__`'s keyword arguments so the wording stays uniform::

    raise ValidationError(
        "price columns must be positive",
        found="close=-3.2",
        fix="check the vendor file or raise the bad-row threshold",
        source="ftp-kr", file="kr/prices/20240102.csv", row=17, field="close",
    )
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "QuantlibError",
    "ConfigError",
    "SourceError",
    "TransientSourceError",
    "PermanentSourceError",
    "StandardizeError",
    "ValidationError",
    "BatchRejectedError",
    "StoreError",
    "SnapshotNotFoundError",
    "WriteConflictError",
    "CatalogError",
    "LookaheadError",
    "StrategyError",
    "BacktestError",
    "ClusterError",
    "ScheduleError",
    "AccessDeniedError",
    "QuantlibWarning",
    "DataQualityWarning",
]

_CONTEXT_KEYS = ("source", "market", "file", "row", "asset", "field", "date", "snapshot", "job")


class QuantlibError(Exception):
    """Base class of quantlib's errors.

    Parameters
    ----------
    what : str
        What was expected (or what went wrong), in the domain's words.
    found : str, optional
        What was found instead.
    fix : str, optional
        What the reader should do next.
    **context
        Where it happened: ``source``, ``market``, ``file``, ``row``, ``asset``,
        ``field``, ``date``, ``snapshot``, ``job`` (others are accepted too).

    Examples
    --------
    >>> err = QuantlibError("close must be positive", found="-1.0", fix="fix the file",
    ...                     file="a.csv", row=3, field="close")
    >>> print(err)
    close must be positive; found -1.0 [file=a.csv, row=3, field=close]. Fix: fix the file
    >>> err.context["row"]
    3
    """

    exit_code = 1

    def __init__(self, what: str, *, found: str | None = None, fix: str | None = None,
                 **context: Any) -> None:
        self.what = what
        self.found = found
        self.fix = fix
        self.context = {k: v for k, v in context.items() if v is not None}
        super().__init__(self._render())

    def _render(self) -> str:
        msg = self.what
        if self.found is not None:
            msg += f"; found {self.found}"
        if self.context:
            keys = [k for k in _CONTEXT_KEYS if k in self.context]
            keys += [k for k in self.context if k not in _CONTEXT_KEYS]
            msg += " [" + ", ".join(f"{k}={self.context[k]}" for k in keys) + "]"
        if self.fix:
            msg += f". Fix: {self.fix}"
        return msg


class ConfigError(QuantlibError):
    """Configuration is missing or does not match its schema."""

    exit_code = 2


class SourceError(QuantlibError):
    """A vendor source failed."""

    exit_code = 3


class TransientSourceError(SourceError):
    """A failure worth retrying (connection dropped, 5xx, 429, truncated transfer)."""


class PermanentSourceError(SourceError):
    """A failure that retrying cannot fix (404, bad credentials, unknown format)."""


class StandardizeError(QuantlibError):
    """A vendor file could not be mapped to the canonical schema (missing column...)."""

    exit_code = 4


class ValidationError(QuantlibError):
    """A row or table broke a schema or domain check."""

    exit_code = 4


class BatchRejectedError(ValidationError):
    """A batch had more bad rows than the configured threshold; nothing was published.

    Parameters
    ----------
    what, found, fix, **context
        As for :class:`QuantlibError`.
    outcome : quantlib.validate.ValidationOutcome, optional
        The rejected validation outcome (report, quarantine), so a caller can still write
        the validation report; ``None`` when the error was rebuilt without it.

    Examples
    --------
    >>> err = BatchRejectedError("bad rows must be at most 1%", found="3%", market="KR")
    >>> err.outcome is None, err.context
    (True, {'market': 'KR'})
    """

    def __init__(self, what: str, *, found: str | None = None, fix: str | None = None,
                 outcome: Any = None, **context: Any) -> None:
        super().__init__(what, found=found, fix=fix, **context)
        self.outcome = outcome


class StoreError(QuantlibError):
    """The curated store, raw zone or results store failed."""

    exit_code = 5


class SnapshotNotFoundError(StoreError):
    """A requested tag or snapshot id does not exist."""


class WriteConflictError(StoreError):
    """Another writer committed first: this write was built on a version that is no
    longer the latest (nothing of it was committed)."""


class CatalogError(QuantlibError):
    """A catalog entry or parameter is invalid."""

    exit_code = 2


class StrategyError(QuantlibError):
    """A strategy is unknown or was given invalid parameters."""

    exit_code = 2


class BacktestError(QuantlibError):
    """A simulation could not run on the given inputs."""

    exit_code = 6


class LookaheadError(BacktestError):
    """A strategy's weights changed when only future data changed."""


class ClusterError(QuantlibError):
    """A Dask cluster could not start or be reached."""

    exit_code = 7


class ScheduleError(QuantlibError):
    """A scheduled job is invalid or failed."""

    exit_code = 8


class AccessDeniedError(QuantlibError):
    """The user's role does not grant the requested action."""

    exit_code = 9


class QuantlibWarning(UserWarning):
    """Base class of quantlib's warnings (errors in the test suite)."""


class DataQualityWarning(QuantlibWarning):
    """Data was accepted but something about it deserves attention."""
