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

from quantlib.backtest import native
from quantlib.errors import BacktestError

__all__ = ["Constraints", "apply_constraints", "constrain_rows", "constraint_args",
           "group_codes", "rebalance_mask"]


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
    """Return constrained copies of target weights ``w`` (T, N); ``groups`` (N,) labels.

    NaN targets are 0 (and +-inf the largest finite weight, as ``np.nan_to_num``). The
    engine and the batched sweep constrain through the same kernel
    (:func:`constrain_rows`), so a sweep's portfolios equal single runs exactly.

    Examples
    --------
    >>> c = Constraints(long_only=False, neutral="sector", gross_leverage=0.25)
    >>> apply_constraints(np.array([[0.75, 0.25, np.nan]]), c, np.array(["a", "a", "b"])).tolist()
    [[0.125, -0.125, 0.0]]
    """
    out = np.array(w, dtype=float, order="C", ndmin=2)
    labels = np.zeros(0, np.int64)
    if c.neutral is not None:
        if groups is None:
            raise BacktestError(f"{c.neutral}-neutral needs the asset coordinate {c.neutral!r}",
                                found="no such coordinate", fix="add it to the data",
                                field=c.neutral)
        labels = group_codes(groups)
    constrain_rows(out, *constraint_args(c, labels))
    return out.reshape(np.shape(w)) if np.ndim(w) < 2 else out


def group_codes(groups: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 codes ``0 .. G-1`` of group labels (sorted, as ``np.unique``)."""
    return np.unique(np.asarray(groups), return_inverse=True)[1].astype(np.int64).ravel()


def constraint_args(c: Constraints, codes: np.ndarray | None) -> tuple[Any, ...]:
    """The scalar arguments of :func:`constrain_rows` for ``c`` (NaN: no limit); ``codes``
    are :func:`group_codes` (used only when ``c.neutral`` is set)."""
    def lim(v: float | None) -> float:
        return np.nan if v is None else float(v)

    g = np.zeros(0, np.int64) if c.neutral is None or codes is None else \
        np.ascontiguousarray(codes, np.int64)
    return (bool(c.long_only), g, int(g.max()) + 1 if len(g) else 0, lim(c.max_weight),
            lim(c.gross_leverage), lim(c.net_leverage))


@native.jit(nogil=True)
def constrain_rows(w: np.ndarray, long_only: bool, groups: np.ndarray, n_groups: int,
                   max_weight: float, gross_leverage: float, net_leverage: float) -> None:
    """Constrain each row of ``w`` (R, N) in place, in the order of the module docstring.

    A NaN limit is no limit; ``n_groups == 0`` is no neutrality, else ``groups`` (N,)
    holds codes ``0 .. n_groups-1``. Sums run left to right over the assets, the same in
    single runs and in the batched sweep (which call it per parameter set, in parallel).
    """
    N = w.shape[1]
    sums = np.zeros(max(n_groups, 1))
    held = np.zeros(max(n_groups, 1))
    for t in range(w.shape[0]):
        row = w[t]
        for i in range(N):
            x = row[i]
            if np.isnan(x):
                x = 0.0
            elif np.isinf(x):
                x = 1.7976931348623157e308 if x > 0 else -1.7976931348623157e308
            if long_only and x < 0.0:
                x = 0.0
            row[i] = x
        if n_groups > 0:
            _demean_groups(row, groups, sums, held)
        if not np.isnan(max_weight):
            for i in range(N):
                row[i] = min(max(row[i], -max_weight), max_weight)
        if not np.isnan(gross_leverage):
            gross = 0.0
            for i in range(N):
                gross += abs(row[i])
            if gross > gross_leverage:
                for i in range(N):
                    row[i] = row[i] * gross_leverage / max(gross, 1e-300)
        if not np.isnan(net_leverage):
            _net_scale(row, net_leverage)


@native.jit(nogil=True)
def _demean_groups(row: np.ndarray, groups: np.ndarray, sums: np.ndarray, held: np.ndarray
                   ) -> None:
    """Held weights minus their group's mean (over the held ones); 0 stays 0."""
    sums[:] = 0.0
    held[:] = 0.0
    for i in range(row.shape[0]):
        sums[groups[i]] += row[i]
        if row[i] != 0.0:
            held[groups[i]] += 1.0
    for i in range(row.shape[0]):
        g = groups[i]
        if row[i] != 0.0:
            row[i] = row[i] - sums[g] / held[g]


@native.jit(nogil=True)
def _net_scale(row: np.ndarray, net_leverage: float) -> None:
    """Scale the larger side down so that ``|sum w| <= net_leverage``."""
    long = 0.0
    short = 0.0
    for i in range(row.shape[0]):
        if row[i] > 0.0:
            long += row[i]
        elif row[i] < 0.0:
            short -= row[i]
    net = long - short
    if abs(net) - net_leverage <= 0.0:
        return
    if net > 0.0:
        f = (short + net_leverage) / long
        for i in range(row.shape[0]):
            if row[i] > 0.0:
                row[i] = row[i] * f
    elif net < 0.0:
        f = (long + net_leverage) / short
        for i in range(row.shape[0]):
            if row[i] < 0.0:
                row[i] = row[i] * f


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
