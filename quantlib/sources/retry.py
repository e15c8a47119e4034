"""Retry policy for vendor sources: exponential backoff with jitter, bounded total wait.

Only :class:`~quantlib.errors.TransientSourceError` is retried (connection reset or dropped
mid-transfer, timeouts, 5xx, 429, a transfer whose sha256/row count disagrees with its
sidecar). :class:`~quantlib.errors.PermanentSourceError` (401/403/404, login failure,
unknown format) fails at once. A 429's ``Retry-After`` is honoured: the wait is at least
that long (capped by ``max_retry_after``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from quantlib.errors import TransientSourceError

__all__ = ["RetryPolicy", "default_retry", "FAST_RETRY_ENV"]

T = TypeVar("T")
FAST_RETRY_ENV = "QUANTLIB_RETRY_SCALE"
"""Environment variable scaling every wait of the default policy (tests set e.g. 0.01)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How transient source failures are retried.

    Parameters
    ----------
    initial : float
        First backoff in seconds; doubles per attempt up to ``maximum``.
    maximum : float
        Largest single backoff (seconds).
    jitter : float
        Up to this many seconds of random jitter added to each backoff.
    max_attempts : int
        Attempts per operation (first try included).
    max_total : float
        Bound on the total time spent on one operation (seconds).
    max_retry_after : float
        Cap on a server's ``Retry-After``.

    Examples
    --------
    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise TransientSourceError("transfer must complete", found="reset")
    ...     return "ok"
    >>> RetryPolicy(initial=0.001, jitter=0).call(flaky), len(calls)
    ('ok', 3)
    """

    initial: float = 0.5
    maximum: float = 20.0
    jitter: float = 0.5
    max_attempts: int = 8
    max_total: float = 300.0
    max_retry_after: float = 60.0

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy with every wait multiplied by ``factor``."""
        return RetryPolicy(self.initial * factor, self.maximum * factor, self.jitter * factor,
                           self.max_attempts, self.max_total, self.max_retry_after * factor)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        n = state.attempt_number
        backoff = min(self.maximum, self.initial * 2 ** (n - 1)) + random.uniform(0, self.jitter)
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "context", {}).get("retry_after") if exc is not None else None
        if after is not None:
            backoff = max(backoff, min(float(after), self.max_retry_after))
        return backoff

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call ``fn`` retrying transient errors; the last error is re-raised."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientSourceError),
            wait=self._wait,
            stop=(tenacity.stop_after_attempt(self.max_attempts)
                  | tenacity.stop_after_delay(self.max_total)),
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)


def default_retry() -> RetryPolicy:
    """The production policy, its waits scaled by ``QUANTLIB_RETRY_SCALE`` if set.

    Examples
    --------
    >>> default_retry().initial
    0.5
    """
    scale = float(os.environ.get(FAST_RETRY_ENV, "1") or 1)
    return RetryPolicy().scaled(scale) if scale != 1 else RetryPolicy()
