"""Point-in-time kernels: pure numpy on 1-D event arrays and 2-D (date x asset) grids.

No pandas and no xarray here; :mod:`quantlib.pit.prices` and
:mod:`quantlib.pit.fundamentals` wrap these kernels with labels.
Times are ``int64`` nanoseconds since the epoch (UTC); a missing time is :data:`NAT`
(``numpy.iinfo(int64).min``, what ``numpy.datetime64("NaT").view("int64")`` gives).

As-of materialization of bitemporal events (:func:`asof_index`), step by step:

1. Each event ``i`` belongs to a series ``series[i]`` (an asset, or an asset x field pair),
   describes a period ``period[i]`` (a fiscal ``period_end``) and became knowable at
   ``known_at[i]``. Series ``s`` is observed on the clock column ``series_clock[s]`` of
   ``decision_times`` (``n_dates x n_clocks``, increasing down each column).
2. The event's *effective date* is the first date whose decision time is at or after its
   ``known_at`` (``searchsorted`` per clock column). Events after the last date drop out.
3. Events are ranked by ``(series, period, known_at)``: the rank of the event to show is
   the largest rank among the events known so far. A late restatement of an older period
   has a smaller rank than a newer period, so it never displaces it; a restatement of the
   newest period has a larger rank, so it replaces it.
4. Sorting events by ``(series, effective date)`` and taking ``np.maximum.accumulate`` of
   the ranks gives "the best event so far" for every event; ranks are series-major, so
   the running maximum never leaks from one series into the next.
5. The last running maximum of each ``(series, effective date)`` group is scattered into a
   ``n_dates x n_series`` grid of zeros (ranks are stored as ``1 + rank``, so ``0`` means
   "nothing known yet"); a running maximum down the date axis carries it forward to later
   dates (ranks only grow along a series), and one gather per output maps ranks to values
   (:func:`asof_ranks`, :func:`asof_index`).
6. :func:`asof_take` (what the builders use) skips the dense rank grid: sorted by date,
   the few per-date updates are applied to a 1-D "current value per series" row that is
   copied into each output row, so the only large memory traffic is writing the outputs.

Everything is ``O(n_events log n_events + n_dates * n_series)``; the only Python loops
run over the few distinct clock columns and (in :func:`asof_take`, :func:`running_max_rows`)
over dates, each step a vectorized operation across all series.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NAT",
    "effective_date_index",
    "asof_ranks",
    "asof_take",
    "asof_index",
    "take_or_nan",
    "take_ranked",
    "running_max_rows",
    "restamp_index",
    "scatter_rows",
    "previous_valid_index",
    "total_returns",
    "RETURNS_CONVENTIONS",
    "adjustment_factor",
    "base_returns",
    "listed_mask",
]

NAT = np.iinfo(np.int64).min


def effective_date_index(known_at: np.ndarray, decision_times: np.ndarray,
                         clock: np.ndarray) -> np.ndarray:
    """Index of the first date whose decision time is at or after each ``known_at``.

    Parameters
    ----------
    known_at : ndarray of int64, shape (n,)
        Instants in ns; :data:`NAT` marks "never known".
    decision_times : ndarray of int64, shape (n_dates, n_clocks)
        Decision instants, increasing down each column.
    clock : ndarray of int, shape (n,)
        Column of ``decision_times`` each instant is judged against.

    Returns
    -------
    ndarray of intp, shape (n,)
        Date index; ``n_dates`` where the instant is after the last decision time or is
        :data:`NAT`.

    Examples
    --------
    >>> dec = np.array([[10, 5], [20, 15], [30, 25]])
    >>> effective_date_index(np.array([10, 11, 31, 6, NAT]), dec, np.array([0, 0, 0, 1, 1]))
    array([0, 1, 3, 1, 3])
    """
    known_at = np.asarray(known_at, dtype=np.int64)
    clock = np.asarray(clock)
    n_dates = decision_times.shape[0]
    out = np.full(known_at.shape, n_dates, dtype=np.intp)
    for c in np.unique(clock):
        sel = clock == c
        out[sel] = np.searchsorted(decision_times[:, c], known_at[sel], side="left")
    out[known_at == NAT] = n_dates
    return out


def _lex_order(series: np.ndarray, period: np.ndarray, known_at: np.ndarray) -> np.ndarray:
    """``np.lexsort((known_at, period, series))``, several times faster: dense codes of
    ``period`` and ``known_at`` packed into one int64 key, one stable argsort."""
    p_u, p_code = np.unique(period, return_inverse=True)
    k_u, k_code = np.unique(known_at, return_inverse=True)
    n_s = int(series.max()) + 1 if series.size else 1
    if n_s * max(p_u.size, 1) * max(k_u.size, 1) >= 2**62:
        return np.lexsort((known_at, period, series))
    key = (series.astype(np.int64) * p_u.size + p_code) * k_u.size + k_code
    return np.argsort(key, kind="stable")


def asof_ranks(series: np.ndarray, known_at: np.ndarray, period: np.ndarray,
               decision_times: np.ndarray, series_clock: np.ndarray,
               out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rank grid of the as-of materialization (steps 2-5 of the module docstring).

    Returns
    -------
    ranks : ndarray of intp, shape (n_dates, n_series)
        1 + rank of the event to show; ``0`` where nothing was known yet.
    by_rank : ndarray of intp, shape (n_ranked,)
        Input position of the event of each rank: gather per-event arrays with
        ``take_ranked(values[by_rank], ranks)``.

    ``out`` (intp, shape ``(n_dates, n_series)``) is reused for ``ranks`` when given: a
    caller materializing many fields saves a fresh allocation per field.

    Examples
    --------
    >>> ranks, by_rank = asof_ranks(np.array([0, 0]), np.array([20, 10]), np.array([2, 1]),
    ...                             np.array([[5], [10], [20]]), np.array([0]))
    >>> ranks[:, 0].tolist(), by_rank.tolist()
    ([0, 1, 2], [1, 0])
    """
    upd_series, upd_date, upd_rank, by_rank = _asof_updates(
        series, known_at, period, decision_times, series_clock)
    n_dates, n_series = decision_times.shape[0], len(series_clock)
    if out is None or out.shape != (n_dates, n_series) or out.dtype != np.intp:
        ranks = np.zeros((n_dates, n_series), dtype=np.intp)
    else:
        ranks = out
        ranks.fill(0)
    ranks[upd_date, upd_series] = upd_rank
    running_max_rows(ranks)
    return ranks, by_rank


def _asof_updates(series, known_at, period, decision_times, series_clock):
    """Sparse form of the rank grid: on date ``upd_date[j]`` series ``upd_series[j]``
    switches to rank ``upd_rank[j]`` (sorted by date); ``by_rank`` maps ranks to events."""
    series = np.asarray(series, dtype=np.intp)
    known_at = np.asarray(known_at, dtype=np.int64)
    period = np.asarray(period, dtype=np.int64)
    series_clock = np.asarray(series_clock, dtype=np.intp)
    n_dates = decision_times.shape[0]
    eff = effective_date_index(known_at, decision_times, series_clock[series])
    keep = np.flatnonzero(eff < n_dates)
    series, known_at, period, eff = series[keep], known_at[keep], period[keep], eff[keep]
    by_key = _lex_order(series, period, known_at)          # rank -> kept event
    rank = np.empty(by_key.size, dtype=np.intp)
    rank[by_key] = np.arange(1, by_key.size + 1, dtype=np.intp)   # 0 = nothing known
    by_time = np.argsort(series.astype(np.int64) * (n_dates + 1) + eff)
    best = np.maximum.accumulate(rank[by_time]) if by_time.size else rank
    s_t, e_t = series[by_time], eff[by_time]
    last = np.ones(s_t.shape, dtype=bool)
    last[:-1] = (s_t[1:] != s_t[:-1]) | (e_t[1:] != e_t[:-1])
    s_l, e_l, b_l = s_t[last], e_t[last], best[last]
    o = np.argsort(e_l, kind="stable")
    return s_l[o], e_l[o], b_l[o], keep[by_key]


def asof_take(series: np.ndarray, known_at: np.ndarray, period: np.ndarray,
              decision_times: np.ndarray, series_clock: np.ndarray,
              columns: list[np.ndarray], fills: list[float | int]) -> list[np.ndarray]:
    """As-of materialize per-event ``columns`` straight onto ``(n_dates, n_series)`` grids.

    Same semantics as ``take_ranked(column[by_rank], asof_ranks(...)[0])`` for each
    column, without the dense rank grid: one pass down the dates keeps the current value
    of every series (1-D, in cache), applies that date's few updates and copies it into
    the output row, so memory traffic is one sequential write of the outputs.

    Examples
    --------
    >>> v, p = asof_take(np.array([0, 0, 0]), np.array([10, 20, 25]), np.array([1, 2, 1]),
    ...                  np.array([[5], [10], [20], [30]]), np.array([0]),
    ...                  [np.array([1.0, 2.0, 1.5]), np.array([1, 2, 1])], [np.nan, -1])
    >>> v[:, 0].tolist(), p[:, 0].tolist()
    ([nan, 1.0, 2.0, 2.0], [-1, 1, 2, 2])
    """
    upd_series, upd_date, upd_rank, by_rank = _asof_updates(
        series, known_at, period, decision_times, series_clock)
    n_dates, n_series = decision_times.shape[0], len(series_clock)
    rows, updates, outs = [], [], []
    for col, fill in zip(columns, fills, strict=True):
        col = np.asarray(col)
        rows.append(np.full(n_series, fill, dtype=col.dtype))
        updates.append(col[by_rank][upd_rank - 1])
        outs.append(np.empty((n_dates, n_series), dtype=col.dtype))
    bounds = np.searchsorted(upd_date, np.arange(n_dates + 1))
    for i in range(n_dates):
        lo, hi = bounds[i], bounds[i + 1]
        for row, upd, out in zip(rows, updates, outs, strict=True):
            if hi > lo:
                row[upd_series[lo:hi]] = upd[lo:hi]
            out[i] = row
    return outs


def asof_index(series: np.ndarray, known_at: np.ndarray, period: np.ndarray,
               decision_times: np.ndarray, series_clock: np.ndarray) -> np.ndarray:
    """For each (date, series), the event to show: latest period, in its latest revision.

    See the module docstring for the algorithm.

    Parameters
    ----------
    series : ndarray of int, shape (n,)
        Series of each event, in ``[0, n_series)``.
    known_at : ndarray of int64, shape (n,)
        When each event became knowable (ns).
    period : ndarray of int64, shape (n,)
        The period each event describes (ns). Pass ``known_at`` again for plain
        "latest known value" semantics.
    decision_times : ndarray of int64, shape (n_dates, n_clocks)
        Decision instants, increasing down each column.
    series_clock : ndarray of int, shape (n_series,)
        Clock column of each series.

    Returns
    -------
    ndarray of intp, shape (n_dates, n_series)
        Position in the input event arrays, ``-1`` where nothing was known yet.

    Examples
    --------
    Period 2 (known at t=20) is shown from date 1; a restatement of period 1 at t=25
    does not displace it, a restatement of period 2 at t=30 does:

    >>> dec = np.array([[10], [20], [25], [30]])
    >>> asof_index(np.array([0, 0, 0, 0]), np.array([10, 20, 25, 30]),
    ...            np.array([1, 2, 1, 2]), dec, np.array([0]))[:, 0]
    array([0, 1, 1, 3])
    """
    ranks, by_rank = asof_ranks(series, known_at, period, decision_times, series_clock)
    return take_ranked(by_rank, ranks, fill=-1)


def take_ranked(values_by_rank: np.ndarray, ranks: np.ndarray, fill: float | int = np.nan
                ) -> np.ndarray:
    """Gather ``values_by_rank[ranks - 1]``, ``fill`` where ``ranks == 0`` (see
    :func:`asof_ranks`). ``np.take(mode="clip")`` skips bounds checks: ranks are in range.

    Examples
    --------
    >>> take_ranked(np.array([1.5, 2.5]), np.array([[2, 0], [1, 1]]))
    array([[2.5, nan],
           [1.5, 1.5]])
    """
    values_by_rank = np.asarray(values_by_rank)
    ext = np.concatenate([np.asarray([fill]).astype(values_by_rank.dtype), values_by_rank])
    out = np.empty(np.shape(ranks), dtype=ext.dtype)
    return np.take(ext, ranks, out=out, mode="clip")


def running_max_rows(a: np.ndarray) -> np.ndarray:
    """In-place running maximum down axis 0 of a 2-D array (returns ``a``).

    Same result as ``np.maximum.accumulate(a, axis=0)``, several times faster on wide
    C-ordered grids: one vectorized ``np.maximum`` per row instead of a strided scan.

    Examples
    --------
    >>> running_max_rows(np.array([[1, -1], [0, 3], [2, 0]])).tolist()
    [[1, -1], [1, 3], [2, 3]]
    """
    for i in range(1, a.shape[0]):
        np.maximum(a[i - 1], a[i], out=a[i])
    return a


def take_or_nan(values: np.ndarray, index: np.ndarray, fill: float | int = np.nan
                ) -> np.ndarray:
    """``values[index]`` with ``fill`` where ``index == -1``.

    Examples
    --------
    >>> take_or_nan(np.array([1.5, 2.5]), np.array([[1, -1], [0, 0]]))
    array([[2.5, nan],
           [1.5, 1.5]])
    """
    values = np.asarray(values)
    ext = np.append(values, np.asarray([fill]).astype(values.dtype))
    out = np.empty(np.shape(index), dtype=ext.dtype)
    return np.take(ext, index, out=out)


def restamp_index(known_at: np.ndarray, decision_times: np.ndarray,
                  asset_clock: np.ndarray) -> np.ndarray:
    """Row of the decision grid on which each bar first becomes visible.

    Parameters
    ----------
    known_at : ndarray of int64, shape (n_sessions, n_assets)
        When each bar became knowable; :data:`NAT` where there is no bar.
    decision_times : ndarray of int64, shape (n_dates, n_clocks)
        Decision instants of the target grid, increasing down each column.
    asset_clock : ndarray of int, shape (n_assets,)
        Clock column of each asset.

    Returns
    -------
    ndarray of intp, shape (n_sessions, n_assets)
        Target date index, ``-1`` where there is no bar or it lands after the last date.

    Examples
    --------
    >>> dec = np.array([[10], [20], [30]])
    >>> restamp_index(np.array([[9, NAT], [19, 21], [25, 31]]), dec, np.array([0, 0]))
    array([[ 0, -1],
           [ 1,  2],
           [ 2, -1]])
    """
    known_at = np.asarray(known_at, dtype=np.int64)
    clock = np.broadcast_to(np.asarray(asset_clock, dtype=np.intp), known_at.shape)
    eff = effective_date_index(known_at.ravel(), decision_times, clock.ravel())
    eff[eff >= decision_times.shape[0]] = -1
    return eff.reshape(known_at.shape)


def scatter_rows(values: np.ndarray, target: np.ndarray, n_dates: int,
                 fill: float = np.nan) -> np.ndarray:
    """Place each ``values[i, j]`` at row ``target[i, j]`` of a new ``n_dates`` grid.

    Cells with ``target == -1`` are dropped; grid cells no value lands on hold ``fill``
    (never forward-filled). If two values land on one cell the later row wins.

    Examples
    --------
    >>> scatter_rows(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0, 1], [2, -1]]), 3)
    array([[ 1., nan],
           [nan,  2.],
           [ 3., nan]])
    """
    values = np.asarray(values)
    out = np.full((n_dates, values.shape[1]), fill, dtype=np.result_type(values, fill))
    rows, cols = np.nonzero(target >= 0)
    out[target[rows, cols], cols] = values[rows, cols]
    return out


def previous_valid_index(valid: np.ndarray) -> np.ndarray:
    """For each row, the index of the previous row (strictly before) where ``valid``.

    Examples
    --------
    >>> previous_valid_index(np.array([[True], [False], [True], [True]]))[:, 0]
    array([-1,  0,  0,  2])
    """
    n = valid.shape[0]
    idx = np.where(valid, np.arange(n, dtype=np.intp)[:, None], -1)
    running_max_rows(idx)
    out = np.full(valid.shape, -1, dtype=idx.dtype)
    out[1:] = idx[:-1]
    return out


#: the dividend conventions :func:`total_returns` knows, and their formulas
RETURNS_CONVENTIONS: dict[str, str] = {
    "total_return": "split * (close + dividend) / prev_close - 1",
    "adj_close": "split * close / (prev_close - split * dividend) - 1",
}


def total_returns(close: np.ndarray, split: np.ndarray, dividend: np.ndarray,
                  convention: str = "total_return") -> np.ndarray:
    """Total return of each bar from the same asset's previous bar (local currency).

    Convention ``"total_return"`` (quantlib's default): on an ex date ``t``, ``split[t]``
    new shares replace each old share and ``dividend[t]`` is cash per share outstanding
    on ``t`` (after any split that day), so one share held at the previous bar ``p`` is
    worth ``close[t] * split[t] + dividend[t] * split[t]`` at ``t``:

    ``r[t] = split[t] * (close[t] + dividend[t]) / close[p] - 1``.

    Convention ``"adj_close"`` is the vendors' adjusted close (Yahoo, CRSP-style factor
    ``1 - dividend / prev_close``): the dividend is taken off the previous close,
    ``r[t] = split[t] * close[t] / (close[p] - split[t] * dividend[t]) - 1``, slightly
    larger (MSFT's 3.08 dividend on 2004-11-15: 1.859 % against 1.668 %).

    Events on sessions with no bar (a halt) are carried into the next bar: splits
    multiply, dividends are paid on the share count of their own ex date. Rows are the
    market's own sessions; ``split`` is 1.0 and ``dividend`` 0.0 where there is none.
    Returns are NaN where there is no bar and on each asset's first bar.

    Examples
    --------
    A 2:1 split on day 2, a dividend of 1 on day 3 and a missing bar on day 4:

    >>> close = np.array([[100.0], [51.0], [50.0], [np.nan], [55.0]])
    >>> split = np.array([[1.0], [2.0], [1.0], [1.0], [1.0]])
    >>> div = np.array([[0.0], [0.0], [1.0], [0.0], [0.0]])
    >>> np.round(total_returns(close, split, div)[:, 0], 6)
    array([ nan, 0.02, 0.  ,  nan, 0.1 ])

    MSFT's 3.08 dividend on 2004-11-15 under both conventions:

    >>> msft, one, d = np.array([[29.97], [27.39]]), np.ones((2, 1)), np.array([[0], [3.08]])
    >>> [round(float(total_returns(msft, one, d, c)[1, 0]), 6)
    ...  for c in ("total_return", "adj_close")]
    [0.016683, 0.018594]
    """
    if convention not in RETURNS_CONVENTIONS:
        from quantlib.errors import CatalogError

        raise CatalogError("returns convention must be one of "
                            f"{sorted(RETURNS_CONVENTIONS)}", found=repr(convention),
                            fix="pass convention='total_return'")
    split = np.where(np.isfinite(split) & (split > 0), split, 1.0)
    dividend = np.where(np.isfinite(dividend), dividend, 0.0)
    shares = np.cumprod(split, axis=0)                     # shares per original share
    cash = np.cumsum(dividend * shares, axis=0)            # cash received per original share
    valid = np.isfinite(close)
    prev = previous_valid_index(valid)
    cols = np.broadcast_to(np.arange(close.shape[1]), close.shape)
    p = np.where(prev >= 0, prev, 0)
    paid = cash - cash[p, cols]                            # per original share, since p
    with np.errstate(invalid="ignore", divide="ignore"):
        if convention == "adj_close":
            out = close * shares / (close[p, cols] * shares[p, cols] - paid) - 1.0
        else:
            out = (close * shares + paid) / (close[p, cols] * shares[p, cols]) - 1.0
    return np.where(valid & (prev >= 0), out, np.nan)


def adjustment_factor(close: np.ndarray, split: np.ndarray, dividend: np.ndarray
                      ) -> np.ndarray:
    """Back-adjustment factor: ``adj_close = close * factor``, 1.0 on each asset's last bar.

    The factor folds every split and dividend up to the end of the panel into earlier
    prices, so the ratio of consecutive ``adj_close`` values is ``1 +`` the total return
    (:func:`total_returns`). It changes whenever a later adjustment event arrives, so it
    uses information from after each row: backtests should use returns, not ``adj_close``.

    Examples
    --------
    >>> close = np.array([[100.0], [51.0], [50.0]])
    >>> f = adjustment_factor(close, np.array([[1.0], [2.0], [1.0]]),
    ...                       np.array([[0.0], [0.0], [1.0]]))
    >>> np.round((close * f)[:, 0], 4)
    array([49.0196, 50.    , 50.    ])
    """
    r = total_returns(close, split, dividend)
    growth = np.cumprod(np.where(np.isfinite(r), 1.0 + r, 1.0), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = growth / growth[-1:] * _last_valid(close) / close
    return np.where(np.isfinite(close), factor, np.nan)


def _last_valid(a: np.ndarray) -> np.ndarray:
    """Last finite value of each column (NaN if none)."""
    valid = np.isfinite(a)
    if a.shape[0] == 0:
        return np.full(a.shape[1:], np.nan)
    row = a.shape[0] - 1 - valid[::-1].argmax(axis=0)
    return np.where(valid.any(axis=0), a[row, np.arange(a.shape[1])], np.nan)


def base_returns(returns: np.ndarray, fx: np.ndarray, has_bar: np.ndarray) -> np.ndarray:
    """Returns in the base currency: ``(1 + r[t]) * fx[t] / fx[p] - 1``.

    ``p`` is the asset's previous row with a bar (``has_bar``); ``fx`` holds base-currency
    units per unit of the asset's currency, as known at each row's decision time.

    Examples
    --------
    >>> r = np.array([[np.nan], [0.10], [np.nan], [0.0]])
    >>> bar = np.array([[True], [True], [False], [True]])
    >>> fx = np.array([[1.0], [1.1], [1.2], [1.21]])
    >>> np.round(base_returns(r, fx, bar)[:, 0], 4)
    array([ nan, 0.21,  nan, 0.1 ])
    """
    prev = previous_valid_index(has_bar)
    cols = np.broadcast_to(np.arange(returns.shape[1]), returns.shape)
    p = np.where(prev >= 0, prev, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (1.0 + returns) * fx / fx[p, cols] - 1.0
    return np.where(has_bar & (prev >= 0), out, np.nan)


def listed_mask(dates: np.ndarray, listed: np.ndarray, delisted: np.ndarray) -> np.ndarray:
    """``listed <= date <= delisted`` on a (date x asset) grid; NaT delisted = still listed.

    ``delisted`` is the last trading day (the canonical ``assets`` contract), so an asset
    is in the universe on its last session and out from the next date on.

    Examples
    --------
    >>> d = np.array([1, 2, 3, 4])
    >>> listed_mask(d, np.array([2, 1]), np.array([3, NAT])).astype(int)
    array([[0, 1],
           [1, 1],
           [1, 1],
           [0, 1]])
    """
    dates = np.asarray(dates, dtype=np.int64)[:, None]
    listed = np.asarray(listed, dtype=np.int64)[None, :]
    delisted = np.asarray(delisted, dtype=np.int64)[None, :]
    return (dates >= listed) & ((delisted == NAT) | (dates <= delisted))
