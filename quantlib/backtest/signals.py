"""A small declarative vocabulary for signals over ``(date, asset)`` panels.

Each operator has a numpy kernel on 2-D arrays (``*_np``, axis 0 = date) and an
xarray wrapper that keeps labels. Every operator at row ``t`` reads rows ``<= t``
only (cross-sectional operators read row ``t`` alone), so signals built from them
use only data known at the decision time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import xarray as xr

from quantlib.backtest import native
from quantlib.errors import StrategyError

__all__ = ["lag", "rolling_mean", "rolling_std", "rolling_sum", "returns_over", "cs_rank",
           "cs_zscore", "winsorize", "demean", "combine", "top_k", "quantile_select",
           "equal_weight", "last_known", "rolling_mean_np", "rolling_std_np",
           "rolling_sum_np", "cs_rank_np", "cs_zscore_np", "returns_over_np", "returns_over_at",
           "decision_rows", "zero_cumsum"]

_ROWS: ContextVar[np.ndarray | None] = ContextVar("quantlib_decision_rows", default=None)


@contextmanager
def decision_rows(mask: np.ndarray | None) -> Iterator[None]:
    """Compute row-wise operators only on the rows the engine will read (others: NaN/False).

    :func:`quantlib.backtest.run` wraps a strategy in this with its rebalance calendar,
    so a month-end strategy ranks 120 rows instead of 2,520. Results on the masked rows
    are identical; nothing reads the other rows.

    Examples
    --------
    >>> x = xr.DataArray(np.arange(6.0).reshape(3, 2), dims=("date", "asset"))
    >>> with decision_rows(np.array([False, True, False])):
    ...     cs_rank(x).values.tolist()
    [[nan, nan], [0.0, 1.0], [nan, nan]]
    """
    token = _ROWS.set(None if mask is None else np.asarray(mask, bool))
    try:
        yield
    finally:
        _ROWS.reset(token)


def _active_rows(T: int) -> np.ndarray | None:
    m = _ROWS.get()
    if m is None or len(m) != T:
        return None
    return np.nonzero(m)[0]


def _per_row(fn: Callable[[np.ndarray], np.ndarray], a: np.ndarray, fill: float | bool
             ) -> np.ndarray:
    """Apply a row-wise kernel to the active rows only."""
    rows = _active_rows(a.shape[0])
    if rows is None:
        return fn(a)
    sub = fn(a[rows])
    out = np.full(a.shape, fill, dtype=sub.dtype)
    out[rows] = sub
    return out


# ----------------------------------------------------------------------------- kernels
def cumsum_rows(x: np.ndarray) -> np.ndarray:
    """Cumulative sum along axis 0 of a C-ordered 2-D array, one row at a time.

    Same sequential sums as ``np.cumsum(x, axis=0)`` (identical floats), but numpy
    accumulates along the strided axis innermost, which is ~10x slower on
    (date x asset) panels; adding whole rows keeps memory access contiguous.

    Examples
    --------
    >>> x = np.arange(6.0).reshape(3, 2)
    >>> bool((cumsum_rows(x) == np.cumsum(x, axis=0)).all())
    True
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2:
        return np.cumsum(x, axis=0)
    out = np.empty(x.shape, dtype=np.result_type(x.dtype, np.float64))
    acc = np.zeros(x.shape[1], dtype=out.dtype)
    for t in range(x.shape[0]):
        acc += x[t]
        out[t] = acc
    return out


def zero_cumsum(x: np.ndarray) -> np.ndarray:
    """:func:`cumsum_rows` with a leading zero row: window sums are differences of rows.

    Examples
    --------
    >>> zero_cumsum(np.array([[1.0], [2.0]])).ravel().tolist()
    [0.0, 1.0, 3.0]
    """
    return np.concatenate([np.zeros((1,) + x.shape[1:]), cumsum_rows(x)])


def _trailing(c: np.ndarray, window: int) -> np.ndarray:
    """Window sums from a cumulative sum ``c`` that starts with a zero row (slices only)."""
    T = c.shape[0] - 1
    out = np.empty((T,) + c.shape[1:])
    w = min(window, T)
    out[:w] = c[1:w + 1]
    out[w:] = c[w + 1:] - c[1:T - w + 1]
    return out


def _window_sums(x: np.ndarray, window: int, squares: bool = True
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    valid = np.isfinite(x)
    v = np.where(valid, x, 0.0)
    s1 = _trailing(zero_cumsum(v), window)
    s2 = _trailing(zero_cumsum(v * v), window) if squares else None
    if valid.all():
        n = np.minimum(np.arange(1, x.shape[0] + 1, dtype=float), window)[:, None]
        n = np.broadcast_to(n, x.shape)
    else:
        n = _trailing(zero_cumsum(valid.astype(float)), window)
    return s1, s2, n


def _check_window(window: int) -> None:
    if int(window) != window or window < 1:
        raise StrategyError("window must be a positive integer", found=repr(window),
                            fix="pass e.g. window=20", field="window")


def rolling_sum_np(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Sum over the last ``window`` rows, NaN-skipping; NaN below ``min_periods`` values.

    Examples
    --------
    >>> rolling_sum_np(np.array([[1.0], [2.0], [np.nan], [4.0]]), 2, 1).ravel().tolist()
    [1.0, 3.0, 2.0, 4.0]
    """
    _check_window(window)
    s, _, n = _window_sums(x, window, squares=False)
    return np.where(n >= (min_periods or window), s, np.nan)


def rolling_mean_np(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Mean over the last ``window`` rows (NaN-skipping).

    Examples
    --------
    >>> rolling_mean_np(np.arange(5.0)[:, None], 3).ravel().tolist()
    [nan, nan, 1.0, 2.0, 3.0]
    """
    _check_window(window)
    s, _, n = _window_sums(x, window, squares=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= (min_periods or window), s / n, np.nan)


def rolling_std_np(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Sample standard deviation (ddof=1) over the last ``window`` rows (NaN-skipping).

    Examples
    --------
    >>> float(rolling_std_np(np.array([[1.0], [2.0], [3.0]]), 3).ravel()[-1])
    1.0
    """
    _check_window(window)
    s, s2, n = _window_sums(x, window)
    sq = s2 if s2 is not None else s
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (sq - s * s / n) / (n - 1)
    var = np.maximum(var, 0.0)
    return np.where((n >= max(min_periods or window, 2)), np.sqrt(var), np.nan)


def returns_over_np(returns: np.ndarray, window: int, skip: int = 0) -> np.ndarray:
    """Compounded return from the close ``window`` rows ago to the close ``skip`` rows ago.

    NaN returns (closed market) count as 0; NaN before the asset's first bar.

    Examples
    --------
    >>> r = np.array([[np.nan], [0.1], [0.1], [0.1]])
    >>> returns_over_np(r, 2).round(4).ravel().tolist()
    [nan, nan, 0.21, 0.21]
    """
    returns = np.ascontiguousarray(returns, dtype=float)
    T = returns.shape[0]
    rows = _active_rows(T)
    out = np.full(returns.shape, np.nan)
    if rows is None:
        rows = np.arange(min(window, T), T)
    out[rows] = _returns_over_rows(returns, window, skip, rows)
    return out


def returns_over_at(returns: xr.DataArray, window: int, skip: int = 0
                    ) -> tuple[np.ndarray | None, np.ndarray]:
    """:func:`returns_over` on the engine's decision rows only, with no ``(T, N)`` array.

    Returns ``(rows, values)``: ``values[j]`` is the row ``rows[j]`` of
    :func:`returns_over`; outside :func:`decision_rows` ``rows`` is ``None`` and
    ``values`` the whole ``(T, N)`` result.

    Examples
    --------
    >>> r = xr.DataArray(np.full((4, 1), 0.1), dims=("date", "asset"))
    >>> with decision_rows(np.array([False, False, False, True])):
    ...     rows, v = returns_over_at(r, 2)
    >>> rows.tolist(), v.round(4).tolist()
    ([3], [[0.21]])
    """
    a = _arr(returns)
    rows = _active_rows(a.shape[0])
    if rows is None:
        return None, returns_over_np(a, window, skip)
    return rows, _returns_over_rows(np.ascontiguousarray(a), window, skip, rows)


def _returns_over_rows(returns: np.ndarray, window: int, skip: int, rows: np.ndarray
                       ) -> np.ndarray:
    """``(len(rows), N)`` compounded returns of :func:`returns_over_np` at ``rows``."""
    _check_window(window)
    if not 0 <= skip < window:
        raise StrategyError("skip must be in [0, window)", found=f"skip={skip}, window={window}",
                            fix="pass e.g. window=252, skip=21", field="skip")
    out = np.full((len(rows), returns.shape[1]), np.nan)
    ok_rows = rows >= window
    rows = rows[ok_rows]
    if not len(rows):
        return out
    start = rows - window
    need = np.unique(np.concatenate([rows - skip, start]))
    growth, first = _growth_rows(returns, need)
    # the close at row s is a valid start if the asset had a bar there: a finite return at
    # s or s + 1 (s + 1 <= t, the row the signal is computed for, so no lookahead)
    ok = start[:, None] >= first[None, :] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = growth[np.searchsorted(need, rows - skip)] / growth[np.searchsorted(need, start)]
    out[ok_rows] = np.where(ok, ratio - 1.0, np.nan)
    return out


@native.jit(nogil=True)
def _growth_rows(returns: np.ndarray, need: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Growth of 1 (product of ``1 + r``, non-finite r as 0) at the sorted rows ``need``,
    and each asset's first row with a finite return (``T`` if none): one row-major pass."""
    T, N = returns.shape
    acc = np.ones(N)
    first = np.full(N, T, np.int64)
    out = np.empty((need.shape[0], N))
    j = 0
    for t in range(T):
        for i in range(N):
            x = returns[t, i]
            if np.isfinite(x):
                acc[i] *= 1.0 + x
                if first[i] == T:
                    first[i] = t
        while j < need.shape[0] and need[j] == t:
            out[j] = acc
            j += 1
    return out, first


def cs_rank_np(x: np.ndarray) -> np.ndarray:
    """Cross-sectional percentile rank in ``[0, 1]`` per row; ties get their average rank.

    Examples
    --------
    >>> cs_rank_np(np.array([[3.0, 1.0, np.nan, 2.0]])).tolist()
    [[1.0, 0.0, nan, 0.5]]
    >>> cs_rank_np(np.array([[1.0, 1.0, 2.0]])).tolist()
    [[0.25, 0.25, 1.0]]
    """
    valid = np.isfinite(x)
    filled = np.where(valid, x, np.inf)
    order = np.argsort(filled, axis=1, kind="stable")
    sv = np.take_along_axis(filled, order, axis=1)
    T, N = x.shape
    j = np.broadcast_to(np.arange(N, dtype=float), (T, N))
    first = np.ones((T, N), bool)
    first[:, 1:] = sv[:, 1:] != sv[:, :-1]
    last = np.ones((T, N), bool)
    last[:, :-1] = first[:, 1:]
    start = np.maximum.accumulate(np.where(first, j, 0.0), axis=1)
    end = np.minimum.accumulate(np.where(last, j, np.inf)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((T, N))
    np.put_along_axis(ranks, order, (start + end) / 2.0, axis=1)
    n = valid.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ranks / (n - 1)
    return np.where(valid & (n > 1), out, np.where(valid, 0.5, np.nan))


def cs_zscore_np(x: np.ndarray) -> np.ndarray:
    """Cross-sectional z-score per row (ddof=0), NaN-skipping.

    Examples
    --------
    >>> cs_zscore_np(np.array([[1.0, 2.0, 3.0]])).round(4).tolist()
    [[-1.2247, 0.0, 1.2247]]
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.isfinite(x).sum(axis=1, keepdims=True)
        mu = np.nansum(x, axis=1, keepdims=True) / np.maximum(n, 1)
        sd = np.sqrt(np.nansum((x - mu) ** 2, axis=1, keepdims=True) / np.maximum(n, 1))
        return np.where(sd > 0, (x - mu) / sd, np.where(np.isfinite(x), 0.0, np.nan))


# ----------------------------------------------------------------------------- wrappers
def _wrap(like: xr.DataArray, values: np.ndarray, name: str | None = None) -> xr.DataArray:
    out = like.copy(deep=False, data=values)  # shares coords: no deep copy of object coords
    out.name = name or like.name
    return out


def _arr(x: xr.DataArray) -> np.ndarray:
    return np.asarray(x.transpose("date", "asset").values, dtype=float)


def lag(x: xr.DataArray, n: int = 1) -> xr.DataArray:
    """Value ``n`` rows earlier (NaN for the first ``n`` rows)."""
    if n < 0:
        raise StrategyError("lag must look backwards", found=f"n={n}", fix="pass n >= 0")
    return x.shift(date=n)


def last_known(x: xr.DataArray) -> xr.DataArray:
    """Latest non-NaN value at or before each row (prices on holidays: the last close)."""
    return x.ffill("date")


def rolling_mean(x: xr.DataArray, window: int, min_periods: int | None = None) -> xr.DataArray:
    """Trailing mean over ``window`` sessions (see :func:`rolling_mean_np`).

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(3, 10, markets=())
    >>> bool(rolling_mean(ds["close"], 3).isel(date=slice(0, 2)).isnull().all())
    True
    """
    return _wrap(x.transpose("date", "asset"), rolling_mean_np(_arr(x), window, min_periods))


def rolling_std(x: xr.DataArray, window: int, min_periods: int | None = None) -> xr.DataArray:
    """Trailing sample standard deviation over ``window`` sessions."""
    return _wrap(x.transpose("date", "asset"), rolling_std_np(_arr(x), window, min_periods))


def rolling_sum(x: xr.DataArray, window: int, min_periods: int | None = None) -> xr.DataArray:
    """Trailing sum over ``window`` sessions."""
    return _wrap(x.transpose("date", "asset"), rolling_sum_np(_arr(x), window, min_periods))


def returns_over(returns: xr.DataArray, window: int, skip: int = 0) -> xr.DataArray:
    """Compounded return from ``window`` to ``skip`` sessions ago (12-1 momentum: 252, 21)."""
    return _wrap(returns.transpose("date", "asset"),
                 returns_over_np(_arr(returns), window, skip))


def cs_rank(x: xr.DataArray) -> xr.DataArray:
    """Cross-sectional percentile rank per date."""
    return _wrap(x.transpose("date", "asset"), _per_row(cs_rank_np, _arr(x), np.nan))


def cs_zscore(x: xr.DataArray) -> xr.DataArray:
    """Cross-sectional z-score per date."""
    return _wrap(x.transpose("date", "asset"), _per_row(cs_zscore_np, _arr(x), np.nan))


def _winsorize_np(a: np.ndarray, lower: float, upper: float) -> np.ndarray:
    ok = np.isfinite(a).any(axis=1)
    lo = np.full((a.shape[0], 1), -np.inf)
    hi = np.full((a.shape[0], 1), np.inf)
    if ok.any():
        lo[ok, 0] = np.nanquantile(a[ok], lower, axis=1)
        hi[ok, 0] = np.nanquantile(a[ok], upper, axis=1)
    return np.clip(a, lo, hi)


def winsorize(x: xr.DataArray, lower: float = 0.01, upper: float = 0.99) -> xr.DataArray:
    """Clip each date's values to its ``[lower, upper]`` cross-sectional quantiles."""
    return _wrap(x.transpose("date", "asset"),
                 _per_row(lambda a: _winsorize_np(a, lower, upper), _arr(x), np.nan))


def demean(x: xr.DataArray, group: str | xr.DataArray | None = None) -> xr.DataArray:
    """Subtract the per-date mean, within groups (an asset coordinate name like ``"sector"``).

    Examples
    --------
    >>> import xarray as xr
    >>> x = xr.DataArray([[1.0, 3.0, 10.0]], dims=("date", "asset"),
    ...                  coords={"sector": ("asset", ["a", "a", "b"])})
    >>> demean(x, "sector").values.tolist()
    [[-1.0, 1.0, 0.0]]
    """
    a = _arr(x)
    out = np.full_like(a, np.nan)
    if group is None:
        labels = np.zeros(a.shape[1], dtype=int)
    else:
        if isinstance(group, str) and group not in x.coords:
            raise StrategyError("demean group must be an asset coordinate", found=repr(group),
                                fix="use 'market' or 'sector'", field=group)
        g = x[group] if isinstance(group, str) else group
        _, labels = np.unique(np.asarray(g.values).astype(str), return_inverse=True)
    for lab in np.unique(labels):
        cols = labels == lab
        with np.errstate(invalid="ignore"):
            sub = a[:, cols]
            n = np.isfinite(sub).sum(axis=1, keepdims=True)
            mu = np.nansum(sub, axis=1, keepdims=True) / np.maximum(n, 1)
        out[:, cols] = sub - mu
    return _wrap(x.transpose("date", "asset"), out)


def combine(signals: Sequence[xr.DataArray], weights: Sequence[float] | None = None
            ) -> xr.DataArray:
    """Weighted average of signals, NaN-skipping (weights renormalized where some are NaN)."""
    if not signals:
        raise StrategyError("combine needs at least one signal", found="none",
                            fix="pass a list of DataArrays")
    w = np.ones(len(signals)) if weights is None else np.asarray(weights, float)
    if len(w) != len(signals):
        raise StrategyError("combine needs one weight per signal",
                            found=f"{len(w)} weights for {len(signals)} signals",
                            fix="pass matching lists")
    stack = np.stack([_arr(s) for s in signals])
    ok = np.isfinite(stack)
    num = np.where(ok, stack, 0.0) * w[:, None, None]
    den = (ok * np.abs(w)[:, None, None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num.sum(axis=0) / den, np.nan)
    return _wrap(signals[0].transpose("date", "asset"), out)


def _top_k_np(a: np.ndarray, k: int, bottom: bool) -> np.ndarray:
    a = -a if bottom else a
    r = np.where(np.isfinite(a), a, -np.inf)
    order = np.argsort(-r, axis=1, kind="stable")[:, :k]
    mask = np.zeros(a.shape, bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask & np.isfinite(a)


def top_k(x: xr.DataArray, k: int, bottom: bool = False) -> xr.DataArray:
    """Boolean mask of the ``k`` largest (``bottom=True``: smallest) values per date."""
    return _wrap(x.transpose("date", "asset"),
                 _per_row(lambda a: _top_k_np(a, k, bottom), _arr(x), False))


def _quantile_select_np(a: np.ndarray, q: int, which: str) -> np.ndarray:
    """The top (bottom) ``floor(n / q)`` of each row's ``n`` finite values.

    Same selection as thresholding :func:`cs_rank_np` (a tie group straddling the cut is
    kept when its average rank reaches it), found with a partition per row (O(n), no sort).
    """
    return _quantile_mask(np.ascontiguousarray(a, dtype=float), int(q), which == "top")


@native.jit(nogil=True)
def _quantile_mask(a: np.ndarray, q: int, top: bool) -> np.ndarray:
    T, N = a.shape
    out = np.zeros((T, N), np.bool_)
    buf = np.empty(N)
    for t in range(T):
        n = 0
        for i in range(N):
            x = a[t, i]
            if np.isfinite(x):
                buf[n] = x if top else -x
                n += 1
        k = n // q
        if k == 0:
            continue
        cut = np.partition(buf[:n], n - k)[n - k]  # the k-th largest
        gt = 0
        eq = 0
        for i in range(n):
            if buf[i] > cut:
                gt += 1
            elif buf[i] == cut:
                eq += 1
        # the cut's tie group: average ascending rank n - gt - (eq + 1) / 2, kept when its
        # percentile reaches (n - k) / (n - 1) (values above the cut always are, below never)
        d = max(n - 1, 1)
        keep_tie = (n - gt - (eq + 1) / 2.0) / d >= (n - k) / d - 1e-12
        for i in range(N):
            x = a[t, i]
            if np.isfinite(x):
                v = x if top else -x
                out[t, i] = v > cut or (v == cut and keep_tie)
    return out


def quantile_select(x: xr.DataArray, q: int = 10, which: str = "top") -> xr.DataArray:
    """Boolean mask of the top (or bottom) ``1/q`` of each date's valid values.

    Examples
    --------
    >>> x = xr.DataArray([np.arange(10.0)], dims=("date", "asset"))
    >>> quantile_select(x, 5).values.astype(int).tolist()
    [[0, 0, 0, 0, 0, 0, 0, 0, 1, 1]]
    """
    if which not in ("top", "bottom"):
        raise StrategyError("which must be 'top' or 'bottom'", found=repr(which),
                            fix="pass which='top'")
    return _wrap(x.transpose("date", "asset"),
                 _per_row(lambda a: _quantile_select_np(a, q, which), _arr(x), False))


def equal_weight(mask: xr.DataArray, gross: float = 1.0) -> xr.DataArray:
    """Equal weights over the selected assets of each date (rows with none: all zero)."""
    def kernel(a: np.ndarray) -> np.ndarray:
        a = np.where(a > 0, 1.0, 0.0)  # NaN/False -> 0
        n = a.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, gross * a / n, 0.0)

    return _wrap(mask.transpose("date", "asset"),
                 _per_row(kernel, np.asarray(mask.transpose("date", "asset").values), 0.0),
                 "target_weights")
