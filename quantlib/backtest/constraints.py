"""Portfolio constraints applied to target weights on 2-D arrays (date x asset).

Order: long-only clip -> group neutrality (demean within market/sector) -> max
weight clip -> gross leverage scale -> net leverage scale. Clipping after
demeaning can leave a small residual group exposure; it is reported in
``Result.exposures``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quantlib.errors import BacktestError

__all__ = ["Constraints", "apply_constraints", "rebalance_mask"]


@dataclass(frozen=True)
class Constraints:
    """Limits on target weights.

    Parameters
    ----------
    long_only : bool
        Negative targets become 0.
    gross_leverage : float or None
        ``sum |w| <= gross_leverage`` (scaled down proportionally).
    net_leverage : float or None
        ``|sum w| <= net_leverage`` (the larger side is scaled down).
    max_weight : float or None
        ``|w_i| <= max_weight``.
    neutral : {None, "market", "sector"}
        Demean targets within each group so each group nets to zero.

    Examples
    --------
    >>> c = Constraints(long_only=False, neutral=None, max_weight=0.5)
    >>> apply_constraints(np.array([[0.9, -0.2]]), c).tolist()
    [[0.5, -0.2]]
    """

    long_only: bool = True
    gross_leverage: float | None = 1.0
    net_leverage: float | None = None
    max_weight: float | None = None
    neutral: str | None = None

    def __post_init__(self) -> None:
        if self.neutral not in (None, "market", "sector"):
            raise BacktestError("neutral must be None, 'market' or 'sector'",
                                found=repr(self.neutral), fix="pass neutral='sector'")
        if self.long_only and self.neutral:
            raise BacktestError("a long-only portfolio cannot be market/sector neutral",
                                found=f"long_only=True, neutral={self.neutral!r}",
                                fix="pass long_only=False for a neutral long-short book")
        for name in ("gross_leverage", "net_leverage", "max_weight"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise BacktestError(f"{name} must be >= 0", found=repr(v), fix="pass a limit",
                                    field=name)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (stored with a result's params)."""
        return asdict(self)


def apply_constraints(w: np.ndarray, c: Constraints, groups: np.ndarray | None = None
                      ) -> np.ndarray:
    """Return constrained copies of target weights ``w`` (T, N); ``groups`` (N,) int labels."""
    w = np.nan_to_num(np.asarray(w, dtype=float)).copy()
    if c.long_only:
        w = np.maximum(w, 0.0)
    if c.neutral is not None:
        if groups is None:
            raise BacktestError(f"{c.neutral}-neutral needs the asset coordinate {c.neutral!r}",
                                found="no such coordinate", fix="add it to the data",
                                field=c.neutral)
        held = w != 0
        for g in np.unique(groups):
            cols = groups == g
            sub, h = w[:, cols], held[:, cols]
            n = h.sum(axis=1, keepdims=True)
            mu = np.where(n > 0, sub.sum(axis=1, keepdims=True) / np.maximum(n, 1), 0.0)
            w[:, cols] = np.where(h, sub - mu, 0.0)
    if c.max_weight is not None:
        w = np.clip(w, -c.max_weight, c.max_weight)
    if c.gross_leverage is not None:
        gross = np.abs(w).sum(axis=1, keepdims=True)
        w = np.where(gross > c.gross_leverage, w * c.gross_leverage / np.maximum(gross, 1e-300),
                     w)
    if c.net_leverage is not None:
        long = np.where(w > 0, w, 0).sum(axis=1, keepdims=True)
        short = -np.where(w < 0, w, 0).sum(axis=1, keepdims=True)
        net = long - short
        excess = np.abs(net) - c.net_leverage
        with np.errstate(invalid="ignore", divide="ignore"):
            f_long = np.where((excess > 0) & (net > 0), (short + c.net_leverage) / long, 1.0)
            f_short = np.where((excess > 0) & (net < 0), (long + c.net_leverage) / short, 1.0)
        w = np.where(w > 0, w * f_long, w * f_short)
    return w


def rebalance_mask(dates: np.ndarray, rule: str | int) -> np.ndarray:
    """Boolean mask of rebalance sessions.

    ``"D"`` every session, ``"W"`` last session of each week, ``"M"`` month-end,
    ``"Q"`` quarter-end, an integer ``n``: every ``n`` sessions from the first. Period
    ends use the session calendar (known in advance), not prices.

    Examples
    --------
    >>> d = np.array(["2024-01-30", "2024-01-31", "2024-02-01"], dtype="datetime64[ns]")
    >>> rebalance_mask(d, "M").tolist()
    [False, True, False]
    """
    dates = np.asarray(dates, dtype="datetime64[ns]")
    T = len(dates)
    if isinstance(rule, (int, np.integer)) and not isinstance(rule, bool):
        if rule < 1:
            raise BacktestError("rebalance every n sessions needs n >= 1", found=str(rule),
                                fix="pass rebalance=5")
        return (np.arange(T) % int(rule)) == 0
    unit = {"D": None, "W": "W", "M": "M", "Q": "Q"}
    if rule not in unit:
        raise BacktestError("rebalance must be 'D', 'W', 'M', 'Q' or an integer",
                            found=repr(rule), fix="pass rebalance='M'")
    if rule == "D":
        return np.ones(T, bool)
    if rule == "W":
        # weeks starting Monday: 1970-01-01 was a Thursday, shift by 3 days
        key = (dates.astype("datetime64[D]").astype(np.int64) + 3) // 7
    else:
        months = dates.astype("datetime64[M]").astype(np.int64)
        key = months if rule == "M" else months // 3
    mask = np.zeros(T, bool)
    mask[:-1] = key[1:] != key[:-1]  # the last row: the period's end is not known yet
    return mask
