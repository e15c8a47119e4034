"""``check_lookahead``: recompute on data truncated at each decision row; no weight may move.

1. Resolve the strategy's parameters and settings as :func:`~quantlib.backtest.run`
   does; the rebalance calendar gives the *decision rows* (where weights are traded).
2. Cut rows: every decision row when there are at most ``max_cuts`` of them, otherwise
   ``max_cuts`` decision rows drawn uniformly without replacement; plus ``n_cuts``
   random rows (from the second quarter of the sample on). With a sample, a leak that
   shows on a fraction ``f`` of the decision rows escapes every cut with probability at
   most ``(1 - f) ** max_cuts``: with the default 100, 0.8 % for a leak on month ends
   only under daily rebalancing (``f = 1/21``), 2e-10 for ``f = 1/5``. Pass
   ``max_cuts=None`` to cut at every decision row.
3. For each cut row ``c`` the data is truncated to rows ``<= c`` (what a re-read of the
   store up to ``c`` returns: the future does not exist), the weights are recomputed,
   and each weight on rows ``<= c`` must equal the full-sample weight.
4. On a difference, each variable in turn is blanked after ``c`` (NaN, or False for
   booleans) to name the one that leaks, and
   :class:`~quantlib.errors.LookaheadError` reports the first offending date.

Strategies never see ``adj_close``: it is back-adjusted with every split and dividend up
to the end of the panel (a row's value depends on later events, which no truncation of
the panel removes), so :meth:`~quantlib.backtest.Strategy.weights` drops it and a
strategy that reads it gets an error telling it to use ``returns`` or ``close``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from quantlib.errors import LookaheadError

__all__ = ["check_lookahead", "perturb_after", "blank_after", "cut_rows"]


def perturb_after(data: xr.Dataset, cut: int, rng: np.random.Generator,
                  variables: list[str] | None = None) -> xr.Dataset:
    """A copy of ``data`` with rows after ``cut`` perturbed (only ``variables`` if given)."""
    out = data.copy(deep=True)
    names = variables if variables is not None else [str(v) for v in data.data_vars]
    for name in names:
        v = out[name].transpose("date", ...)
        a = np.array(v.values)
        tail = a[cut + 1:]
        if tail.size == 0:
            continue
        if a.dtype == bool:
            tail ^= rng.random(tail.shape) < 0.3
        elif np.issubdtype(a.dtype, np.number):
            tail = tail * np.exp(rng.normal(0, 0.5, tail.shape))
            tail = np.where(rng.random(tail.shape) < 0.05, np.nan, tail)
            if np.issubdtype(a.dtype, np.integer):
                tail = np.nan_to_num(tail).astype(a.dtype)
        a[cut + 1:] = tail
        out[name] = v.copy(data=a).transpose(*data[name].dims)
    return out


def blank_after(data: xr.Dataset, cut: int, name: str) -> xr.Dataset:
    """A copy of ``data`` whose variable ``name`` is NaN (False, 0) on rows after ``cut``."""
    v = data[name].transpose("date", ...)
    a = np.array(v.values)
    if a.dtype == bool:
        a[cut + 1:] = False
    elif np.issubdtype(a.dtype, np.floating):
        a[cut + 1:] = np.nan
    elif np.issubdtype(a.dtype, np.number):
        a[cut + 1:] = 0
    else:
        return data
    return data.assign({name: v.copy(data=a).transpose(*data[name].dims)})


def cut_rows(decision: np.ndarray, max_cuts: int | None, n_random: int,
             rng: np.random.Generator) -> list[int]:
    """Rows to cut at: decision rows (all, or ``max_cuts`` drawn) plus random rows.

    Examples
    --------
    >>> mask = np.zeros(100, bool); mask[20::21] = True
    >>> cut_rows(mask, None, 0, np.random.default_rng(0))
    [20, 41, 62, 83]
    >>> len(cut_rows(np.ones(500, bool), 50, 0, np.random.default_rng(0)))
    50
    """
    rows = np.flatnonzero(decision)
    if max_cuts is not None and len(rows) > max_cuts:
        rows = rng.choice(rows, max_cuts, replace=False)
    T = len(decision)
    extra = rng.integers(T // 4, T - 1, n_random) if n_random and T > 2 else []
    return sorted({int(r) for r in rows} | {int(r) for r in extra})


def _first_diff(base: np.ndarray, other: np.ndarray, cut: int, tol: float) -> int | None:
    a, b = base[: cut + 1], other[: cut + 1]
    same = np.isclose(a, b, rtol=0, atol=tol, equal_nan=True)
    bad = np.nonzero(~same.all(axis=1))[0]
    return int(bad[0]) if len(bad) else None


def check_lookahead(strategy: Any, data: xr.Dataset, n_cuts: int = 4, seed: int = 0,
                    tol: float = 1e-12, max_cuts: int | None = 100, **params: Any
                    ) -> dict[str, Any]:
    """Verify a strategy's weights use only data known at each decision time.

    Parameters
    ----------
    strategy : str or Strategy
    data : xarray.Dataset
    n_cuts : int
        Random cut rows added to the decision rows (from the second quarter on).
    seed : int
    tol : float
        Absolute tolerance on weights.
    max_cuts : int or None
        At most this many decision rows are cut at (drawn uniformly); ``None``: all.
        See the module docstring for the miss probability.
    **params
        Strategy parameters and simulation settings (``rebalance`` sets the decision
        rows; the strategy's own default otherwise).

    Returns
    -------
    dict
        ``{"strategy", "cuts": [dates], "ok": True}`` when no weight moved.

    Raises
    ------
    LookaheadError
        Naming the first date whose weight changed and the variable that leaked.

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(10, 120, seed=1, markets=())
    >>> report = check_lookahead("ma_crossover", ds, n_cuts=2, fast=5, slow=20, rebalance="M")
    >>> report["ok"], len(report["cuts"])
    (True, 6)
    """
    from quantlib.backtest.constraints import rebalance_mask
    from quantlib.backtest.engine import as_dataset
    from quantlib.backtest.settings import resolve_settings, split_settings
    from quantlib.backtest.strategies import get_strategy

    strat = get_strategy(strategy)
    data = as_dataset(data)
    params, sim = split_settings(params)
    full = strat.resolve_params(params)
    s = resolve_settings(strat, full, **sim)

    def weights(ds: xr.Dataset) -> np.ndarray:
        return np.asarray(strat.weights(ds, **full).values, float)

    base = weights(data)
    rng = np.random.default_rng(seed)
    dates = data["date"].values
    cuts = cut_rows(rebalance_mask(dates, s.rebalance), max_cuts, n_cuts, rng)
    for cut in cuts:
        row = _first_diff(base, weights(data.isel(date=slice(0, cut + 1))), cut, tol)
        if row is not None:
            _report(strat.name, data, base, cut, row, weights, tol)
    return {"strategy": strat.name, "cuts": [str(dates[c])[:10] for c in cuts], "ok": True}


def _report(name: str, data: xr.Dataset, base: np.ndarray, cut: int, row: int,
            weights: Any, tol: float) -> None:
    """Raise the LookaheadError for a difference first seen on ``row`` at ``cut``."""
    leaks: list[tuple[int, str]] = []
    for var in map(str, data.data_vars):
        r = _first_diff(base, weights(blank_after(data, cut, var)), cut, tol)
        if r is not None:
            leaks.append((r, var))
    first_row, var = min(leaks) if leaks else (row, "<combination>")
    dates = data["date"].values
    raise LookaheadError(
        f"weights of strategy {name!r} must not depend on data after the decision",
        found=(f"weight on {str(dates[first_row])[:10]} changed when the data after "
               f"{str(dates[cut])[:10]} was cut ({var!r} leaks)"),
        fix=f"compute {var} from rows up to t only (lag/rolling, never shift(date=-n))",
        date=str(dates[first_row])[:10], field=var, job=name)
