"""The built-in strategies (registered on import of :mod:`quantlib.backtest.strategies`).

Every signal reads data up to the decision row only (see :mod:`signals`).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import xarray as xr

from quantlib.backtest import signals as sg
from quantlib.backtest.strategies import (
    _LS,
    _Q,
    Param,
    register_strategy,
    select,
    select_rows,
    sleeve,
)

__all__ = ["ma_crossover", "ts_momentum", "xs_momentum", "reversal", "value",
           "low_volatility", "quality", "multi_factor", "ma_crossover_batch",
           "ma_crossover_metrics"]


def _ma_check(p: dict[str, Any]) -> str | None:
    return None if p["fast"] < p["slow"] else f"fast={p['fast']} >= slow={p['slow']}"


def _ma_signal(data: xr.Dataset, fast: int, slow: int) -> xr.DataArray:
    close = sg.last_known(data["close"])
    f, s = sg.rolling_mean(close, fast), sg.rolling_mean(close, slow)
    return (f > s).astype(float).where(data["close"].notnull() | close.notnull(), 0.0)


@register_strategy("ma_crossover", params={
    "fast": Param(20, "fast moving average window (sessions)", 1, 1000, lookback=True),
    "slow": Param(100, "slow moving average window (sessions)", 2, 2000, lookback=True)},
    check=_ma_check)
def ma_crossover(data: xr.Dataset, fast: int, slow: int) -> xr.DataArray:
    """Per asset long/flat: long while the fast MA of the last known close is above the slow.

    Each asset is a sleeve of ``1 / n_universe`` of the portfolio.
    """
    return sleeve(_ma_signal(data, fast, slow), data)


def ma_crossover_batch(data: xr.Dataset, param_sets: list[dict[str, Any]],
                       per_asset: bool = False) -> np.ndarray:
    """All parameter sets at once: each distinct window's MA is computed once (T x N),
    then every (fast, slow) pair is one comparison -> a ``(P, T, N)`` array."""
    close = np.asarray(sg.last_known(data["close"]).transpose("date", "asset").values, float)
    windows = sorted({p["fast"] for p in param_sets} | {p["slow"] for p in param_sets})
    ma = {w: sg.rolling_mean_np(close, w) for w in windows}
    pos = np.stack([(ma[p["fast"]] > ma[p["slow"]]) for p in param_sets])
    if per_asset:
        return pos  # bool (P, T, N): 8x less memory than float positions
    uni = np.asarray(sleeve(xr.ones_like(data["close"]), data).values, float)
    return pos * uni[None]


def ma_crossover_metrics(data: xr.Dataset, param_sets: list[dict[str, Any]], r: np.ndarray,
                         fee: float, periods_per_year: int, rebalance: np.ndarray | None = None
                         ) -> np.ndarray:
    """Per-asset sweep metrics ``(P, N, 3)`` of many (fast, slow) pairs in one fused pass:
    every window's mean comes from one cumulative sum of the last known close, positions
    are compared on the fly (identical to :func:`ma_crossover_batch` + the metrics kernel).
    ``r`` is the NaN-free ``(date, asset)`` return array the sweep prepares."""
    c, k = _close_sums(data)
    fast = np.asarray([p["fast"] for p in param_sets], np.int64)
    slow = np.asarray([p["slow"] for p in param_sets], np.int64)
    reb = np.ones(len(c) - 1, bool) if rebalance is None else np.asarray(rebalance, bool)
    from quantlib.backtest.parallel import ma_cross_metrics  # numba, on first use (start-up)

    return ma_cross_metrics(c, k, fast, slow, np.ascontiguousarray(r, float), float(fee),
                            float(periods_per_year), reb)


#: the close array's memory (its root buffer, offset, shape, strides) -> its cumulative sums
_SUMS: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}


def _sums_key(data: xr.Dataset) -> tuple[tuple[Any, ...], Any]:
    """A key naming the close prices' memory, and the object whose life bounds the entry.

    ``sweep`` re-wraps its dataset on every call (``transpose`` gives a new Dataset over
    the same arrays), so the dataset's id would miss; the root numpy buffer of the close
    array (and the view's offset, shape and strides) stays the same while the prices do.
    """
    arr = data["close"].variable.data
    if not isinstance(arr, np.ndarray):  # lazy (dask) data: per dataset object, as before
        return (id(data), id(arr)), data
    root = arr
    while isinstance(root.base, np.ndarray):
        root = root.base
    return (id(root), arr.__array_interface__["data"][0], arr.shape, arr.strides), root


def _close_sums(data: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative sums (leading zero row) of the last known close and of its valid count.

    Computed once per close array (while its buffer lives): a sweep's batches, a worker's
    tasks on the panel it was sent and repeated sweeps on the same panel share them.
    """
    key, owner = _sums_key(data)
    if key not in _SUMS:
        close = np.asarray(sg.last_known(data["close"]).transpose("date", "asset").values,
                           float)
        valid = np.isfinite(close)
        _SUMS[key] = (sg.zero_cumsum(np.where(valid, close, 0.0)),
                      sg.zero_cumsum(valid.astype(float)))
        weakref.finalize(owner, _SUMS.pop, key, None)
    return _SUMS[key]


ma_crossover.signal_func = _ma_signal
ma_crossover.batch_func = ma_crossover_batch
ma_crossover.metrics_func = ma_crossover_metrics


def ma_crossover_portfolio(data: xr.Dataset, param_sets: list[dict[str, Any]],
                           st: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantlib.backtest.batched.ma_crossover_portfolio`, imported on first use
    (it imports numba; a fresh process's ``run`` does not need it: start-up)."""
    from quantlib.backtest import batched

    return batched.ma_crossover_portfolio(data, param_sets, st)


ma_crossover.portfolio_func = ma_crossover_portfolio  # sets' weights built in the kernel


def _tsm_signal(data: xr.Dataset, window: int, skip: int, long_short: bool) -> xr.DataArray:
    past = sg.returns_over(data["returns"], window, skip)
    sig = xr.apply_ufunc(np.sign, past)
    return sig if long_short else sig.clip(min=0)


@register_strategy("ts_momentum", params={
    "window": Param(252, "lookback in sessions", 2, 2000, lookback=True),
    "skip": Param(0, "most recent sessions left out", 0, 500),
    "long_short": _LS}, check=lambda p: None if p["skip"] < p["window"] else "skip >= window")
def ts_momentum(data: xr.Dataset, window: int, skip: int, long_short: bool) -> xr.DataArray:
    """Time-series momentum: per asset long (short) when its own past return is > 0 (< 0)."""
    return sleeve(_tsm_signal(data, window, skip, long_short), data)


ts_momentum.signal_func = _tsm_signal


@register_strategy("xs_momentum", params={
    "window": Param(252, "lookback in sessions (12 months)", 2, 2000, lookback=True),
    "skip": Param(21, "most recent sessions left out (1 month)", 0, 500),
    "quantile": _Q, "long_short": _LS}, sim_defaults={"rebalance": "M"},
    check=lambda p: None if p["skip"] < p["window"] else "skip >= window")
def xs_momentum(data: xr.Dataset, window: int, skip: int, quantile: int, long_short: bool
                ) -> xr.DataArray:
    """Cross-sectional momentum 12-1: equal weight the top decile of the return from
    ``t - window`` to ``t - skip``; month-end rebalance by default."""
    rows, score = sg.returns_over_at(data["returns"], window, skip)
    return select_rows(data["returns"], rows, score, data, quantile, long_short)


@register_strategy("reversal", params={
    "window": Param(5, "lookback in sessions", 1, 60, lookback=True), "quantile": _Q,
    "long_short": _LS},
    sim_defaults={"rebalance": "W"})
def reversal(data: xr.Dataset, window: int, quantile: int, long_short: bool) -> xr.DataArray:
    """Short-term reversal: hold the worst past ``window``-session performers."""
    rows, score = sg.returns_over_at(data["returns"], window)
    return select_rows(data["returns"], rows, -score, data, quantile, long_short)


def _book_to_price(data: xr.Dataset) -> xr.DataArray:
    mcap = sg.last_known(data["close"]) * data["shares_outstanding"]
    return (data["total_equity"] / mcap.where(mcap > 0)).where(data["total_equity"] > 0)


@register_strategy("value", params={"quantile": _Q, "long_short": _LS},
                   sim_defaults={"rebalance": "M"})
def value(data: xr.Dataset, quantile: int, long_short: bool) -> xr.DataArray:
    """Value: highest book-to-price = total_equity / (close * shares_outstanding), PIT."""
    return select(_book_to_price(data), data, quantile, long_short)


@register_strategy("low_volatility", params={
    "window": Param(60, "volatility lookback in sessions", 5, 1000, lookback=True),
    "quantile": _Q,
    "long_short": _LS}, sim_defaults={"rebalance": "M"})
def low_volatility(data: xr.Dataset, window: int, quantile: int, long_short: bool
                   ) -> xr.DataArray:
    """Low volatility: hold the assets with the lowest trailing daily volatility."""
    vol = sg.rolling_std(data["returns"], window, max(2, window // 2))
    return select(-vol, data, quantile, long_short)


def _roe(data: xr.Dataset) -> xr.DataArray:
    eq = data["total_equity"]
    return data["net_income"] / eq.where(eq > 0)


@register_strategy("quality", params={"quantile": _Q, "long_short": _LS},
                   sim_defaults={"rebalance": "M"})
def quality(data: xr.Dataset, quantile: int, long_short: bool) -> xr.DataArray:
    """Quality: highest return on equity = net_income / total_equity (PIT statements)."""
    return select(_roe(data), data, quantile, long_short)


@register_strategy("multi_factor", params={
    "w_momentum": Param(1.0, "weight of 12-1 momentum", -10, 10),
    "w_value": Param(1.0, "weight of book-to-price", -10, 10),
    "w_quality": Param(1.0, "weight of ROE", -10, 10),
    "w_low_volatility": Param(1.0, "weight of (minus) 60-session volatility", -10, 10),
    "group": Param("sector", "demean each factor within this group",
                   choices=("sector", "market", None)),
    "quantile": _Q, "long_short": _LS}, sim_defaults={"rebalance": "M"})
def multi_factor(data: xr.Dataset, w_momentum: float, w_value: float, w_quality: float,
                 w_low_volatility: float, group: str | None, quantile: int, long_short: bool
                 ) -> xr.DataArray:
    """Blend of winsorized, group-demeaned, z-scored momentum, value, quality, low vol."""
    raw = [sg.returns_over(data["returns"], 252, 21), _book_to_price(data), _roe(data),
           -sg.rolling_std(data["returns"], 60, 30)]
    uni = data["in_universe"] if "in_universe" in data else None
    zs = []
    for f in raw:
        f = f.where(uni) if uni is not None else f
        f = sg.winsorize(f, 0.02, 0.98)
        if group is not None and group in data.coords:
            f = sg.demean(f, group)
        zs.append(sg.cs_zscore(f))
    score = sg.combine(zs, [w_momentum, w_value, w_quality, w_low_volatility])
    return select(score, data, quantile, long_short)
