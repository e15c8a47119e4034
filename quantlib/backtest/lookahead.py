"""``check_lookahead``: perturb all data after random cut dates; weights up to each cut must not move.

For each cut row ``c`` every data variable is perturbed on rows ``> c`` (floats
scaled by random factors, a few set to NaN; booleans flipped), the strategy is
recomputed, and every weight on rows ``<= c`` is compared with the original. On a
difference the variables are perturbed one at a time to name the one that leaks,
and :class:`~quantlib.errors.LookaheadError` reports the first offending date.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from quantlib.errors import LookaheadError

__all__ = ["check_lookahead", "perturb_after"]


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


def _first_diff(base: np.ndarray, other: np.ndarray, cut: int, tol: float) -> int | None:
    a, b = base[: cut + 1], other[: cut + 1]
    same = np.isclose(a, b, rtol=0, atol=tol, equal_nan=True)
    bad = np.nonzero(~same.all(axis=1))[0]
    return int(bad[0]) if len(bad) else None


def check_lookahead(strategy: Any, data: xr.Dataset, n_cuts: int = 4, seed: int = 0,
                    tol: float = 1e-12, **params: Any) -> dict[str, Any]:
    """Verify a strategy's weights use only data known at each decision time.

    Parameters
    ----------
    strategy : str or Strategy
    data : xarray.Dataset
    n_cuts : int
        Random cut dates, drawn from the second quarter of the sample onwards.
    seed : int
    tol : float
        Absolute tolerance on weights.
    **params
        Strategy parameters.

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
    >>> check_lookahead("ma_crossover", ds, n_cuts=2, fast=5, slow=20)["ok"]
    True
    """
    from quantlib.backtest.engine import SIM_DEFAULTS, as_dataset
    from quantlib.backtest.strategies import get_strategy

    strat = get_strategy(strategy)
    data = as_dataset(data)
    params = {k: v for k, v in params.items() if k not in SIM_DEFAULTS}
    full = strat.resolve_params(params)
    base = np.asarray(strat.weights(data, **full).values, float)
    rng = np.random.default_rng(seed)
    T = data.sizes["date"]
    cuts = sorted(set(rng.integers(T // 4, T - 1, n_cuts).tolist()))
    dates = data["date"].values
    for cut in cuts:
        other = np.asarray(strat.weights(perturb_after(data, cut, rng), **full).values, float)
        row = _first_diff(base, other, cut, tol)
        if row is None:
            continue
        leaks: list[tuple[int, str]] = []
        for name in map(str, data.data_vars):
            w = strat.weights(perturb_after(data, cut, np.random.default_rng(seed), [name]),
                              **full)
            r = _first_diff(base, np.asarray(w.values, float), cut, tol)
            if r is not None:
                leaks.append((r, name))
        first_row, var = min(leaks) if leaks else (row, "<combination>")
        asset = data["asset"].values[int(np.nonzero(~np.isclose(
            base[first_row], other[first_row], atol=tol, equal_nan=True))[0][0])] \
            if not leaks else None
        raise LookaheadError(
            f"weights of strategy {strat.name!r} must not depend on data after the decision",
            found=(f"weight on {str(dates[first_row])[:10]} changed when {var!r} after "
                   f"{str(dates[cut])[:10]} was perturbed"),
            fix=f"compute {var} from rows up to t only (lag/rolling, never shift(date=-n))",
            date=str(dates[first_row])[:10], field=var, asset=asset, job=strat.name)
    return {"strategy": strat.name, "cuts": [str(dates[c])[:10] for c in cuts], "ok": True}
