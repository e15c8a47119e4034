"""Parameter sweeps: parameter sets that share work are computed together as arrays.

``sweep`` expands a grid, splits it into batches, and for each batch asks the
strategy for a ``(P, date, asset)`` array at once (e.g. every moving average
window is computed once and each (fast, slow) pair is one comparison). Then:

- portfolio mode: each parameter set is simulated with the numba kernel (all the
  engine's costs, constraints and calendars) and summarized;
- ``per_asset=True``: every (parameter set, asset) is its own long/flat backtest;
  a fused kernel turns positions into daily P&L with a flat fee and reduces it to
  total return, max drawdown and Sharpe in one pass, never materializing the
  ``P x T x N`` return array.

With a ``distributed.Client`` the data panel is scattered to every worker once
(``broadcast=True``), batches run as tasks with ``retries``, and a lost worker's
tasks are recomputed elsewhere; ``progress=True`` shows dask's progress bar.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import numba
import numpy as np
import pandas as pd
import xarray as xr

from quantlib.backtest import kernels
from quantlib.backtest.constraints import Constraints
from quantlib.backtest.costs import resolve_costs
from quantlib.backtest.engine import as_dataset, kernel_args, prepare_static, settings_dict
from quantlib.backtest.metrics import summary, sweep_metrics
from quantlib.backtest.strategies import Strategy, get_strategy
from quantlib.errors import BacktestError, StrategyError

__all__ = ["sweep", "expand_grid", "run_batch", "long_flat_metrics"]

SWEEP_METRICS = ("total_return", "max_drawdown", "sharpe")


def expand_grid(strategy: Strategy, grid: Mapping[str, Iterable[Any]] | list[dict[str, Any]]
                ) -> tuple[list[dict[str, Any]], int]:
    """All parameter sets of ``grid`` valid for ``strategy`` and the number skipped.

    A dict grid is the Cartesian product of its lists; a list of dicts is taken as
    is. Sets the strategy rejects (e.g. ``fast >= slow``) are skipped.

    Examples
    --------
    >>> from quantlib.backtest.strategies import get_strategy
    >>> sets, skipped = expand_grid(get_strategy("ma_crossover"),
    ...                             {"fast": [5, 20], "slow": [10, 50]})
    >>> sets, skipped
    ([{'fast': 5, 'slow': 10}, {'fast': 5, 'slow': 50}, {'fast': 20, 'slow': 50}], 1)
    """
    if isinstance(grid, Mapping):
        keys = list(grid)
        raw = [dict(zip(keys, combo, strict=True))
               for combo in itertools.product(*(list(grid[k]) for k in keys))]
    else:
        raw = [dict(p) for p in grid]
    ok, skipped = [], 0
    for p in raw:
        try:
            strategy.resolve_params(p)
        except StrategyError as exc:
            if "unknown parameter" in exc.what:
                raise
            skipped += 1
            continue
        ok.append(p)
    return ok, skipped


@numba.njit(cache=True, nogil=True)
def _long_flat_metrics_kernel(pos: np.ndarray, r: np.ndarray, fee: float, ppy: float
                              ) -> np.ndarray:
    P, T, N = pos.shape
    out = np.empty((P, N, 3))
    for p in range(P):
        wealth = np.ones(N)
        peak = np.ones(N)
        mdd = np.zeros(N)
        s1 = np.zeros(N)
        s2 = np.zeros(N)
        prev = np.zeros(N)
        for t in range(T):
            for i in range(N):
                now = float(pos[p, t, i])
                held = prev[i]
                if held == 0.0 and now == 0.0:
                    continue  # flat: zero return, nothing to update (wealth <= peak holds)
                x = r[t, i]
                if np.isnan(x):
                    x = 0.0
                ret = (1.0 + held * x) * (1.0 - fee * abs(now - held)) - 1.0
                prev[i] = now
                w = wealth[i] * (1.0 + ret)
                wealth[i] = w
                if w > peak[i]:
                    peak[i] = w
                elif w < peak[i] * (1.0 + mdd[i]):
                    mdd[i] = w / peak[i] - 1.0
                s1[i] += ret
                s2[i] += ret * ret
        for i in range(N):
            mean = s1[i] / T
            var = (s2[i] - s1[i] * mean) / (T - 1)
            out[p, i, 0] = wealth[i] - 1.0
            out[p, i, 1] = mdd[i]
            out[p, i, 2] = mean / np.sqrt(var) * np.sqrt(ppy) if var > 1e-30 else np.nan
    return out


def long_flat_metrics(pos: np.ndarray, r: np.ndarray, fee: float,
                      periods_per_year: int = 252) -> np.ndarray:
    """Total return, max drawdown, Sharpe of each (param set, asset) long/flat backtest.

    ``pos`` is ``(P, T, N)`` positions in [0, 1] (bool accepted) decided at each close,
    ``r`` the ``(T, N)`` returns; equals
    :func:`~quantlib.backtest.kernels.long_flat_pnl` + :func:`~quantlib.backtest.metrics.sweep_metrics`.
    Returns ``(P, N, 3)``.

    Examples
    --------
    >>> from quantlib.backtest.kernels import long_flat_pnl
    >>> rng = np.random.default_rng(0)
    >>> pos, r = rng.random((2, 50, 3)) > 0.5, rng.normal(0, 0.01, (50, 3))
    >>> ref = np.stack([sweep_metrics(long_flat_pnl(p.astype(float), r, 0.001)) for p in pos])
    >>> bool(np.allclose(long_flat_metrics(pos, r, 0.001), ref))
    True
    """
    pos = np.ascontiguousarray(pos)
    if pos.dtype == bool:
        pos = pos.view(np.uint8)  # zero-copy; numba has no float(bool)
    return _long_flat_metrics_kernel(pos, np.ascontiguousarray(r, dtype=float), float(fee),
                                     float(periods_per_year))


def run_batch(strategy: Strategy, data: xr.Dataset, param_sets: list[dict[str, Any]],
              per_asset: bool = False, settings: dict[str, Any] | None = None,
              full_metrics: bool = True) -> pd.DataFrame:
    """Evaluate one batch of parameter sets (the unit of work of a sweep task)."""
    s = settings_dict(**{**strategy.sim_defaults, **(settings or {})})
    arr = strategy.batch(data, param_sets, per_asset=per_asset)
    ppy = s["periods_per_year"]
    if per_asset:
        r = data["returns_base"] if "returns_base" in data else data["returns"]
        fee = resolve_costs(s["costs"]).linear_rate
        m = long_flat_metrics(arr, np.asarray(r.values, float), fee, ppy)
        P, N = m.shape[:2]
        assets = np.asarray(data["asset"].values).astype(str)
        rows = pd.DataFrame([p for p in param_sets for _ in range(N)])
        rows["asset"] = np.tile(assets, P)
        for k, name in enumerate(SWEEP_METRICS):
            rows[name] = m[:, :, k].ravel()
        return rows
    cons = Constraints(long_only=s["long_only"] and not any(
        p.get("long_short") for p in param_sets), gross_leverage=s["gross_leverage"],
        net_leverage=s["net_leverage"], max_weight=s["max_weight"], neutral=s["neutral"])
    static = prepare_static(data, s, cons, resolve_costs(s["costs"]))
    nets = np.empty((data.sizes["date"], len(param_sets)))
    turns = np.empty_like(nets)
    for j in range(len(param_sets)):
        _, _, net, _, turnover, _ = kernels.simulate_kernel(*kernel_args(arr[j], static))
        nets[:, j], turns[:, j] = net, turnover
    rows = pd.DataFrame(param_sets)
    if not full_metrics:
        m = sweep_metrics(nets, ppy)
        for k, name in enumerate(SWEEP_METRICS):
            rows[name] = m[:, k]
        return rows
    idx = pd.DatetimeIndex(data["date"].values)
    mets = [summary(pd.Series(nets[:, j], index=idx), turnover=pd.Series(turns[:, j]),
                    periods_per_year=ppy, risk_free=s["risk_free"])
            for j in range(len(param_sets))]
    return pd.concat([rows, pd.DataFrame(mets)], axis=1)


def _auto_batch(n_sets: int, data: xr.Dataset, per_asset: bool, n_workers: int) -> int:
    cells = data.sizes["date"] * data.sizes["asset"]
    by_memory = max(1, int(256e6 // (cells * (1 if per_asset else 8))))
    if n_workers <= 1:
        return by_memory  # one process: fewer, bigger batches share more work
    by_spread = max(1, -(-n_sets // (4 * n_workers)))
    return max(1, min(by_memory, by_spread))


def sweep(strategy: Any, grid: Mapping[str, Iterable[Any]] | list[dict[str, Any]],
          data: Any, client: Any = None, *, per_asset: bool = False,
          batch_size: int | None = None, full_metrics: bool = True, progress: bool = False,
          retries: int = 3, **settings: Any) -> pd.DataFrame:
    """One row of metrics per parameter set (per asset too, with ``per_asset=True``).

    Parameters
    ----------
    strategy : str or Strategy
    grid : dict of lists or list of dicts
        See :func:`expand_grid`.
    data : xarray.Dataset
    client : distributed.Client, optional
        Run batches as Dask tasks; the panel is scattered once to all workers.
    per_asset : bool
        Each asset is its own long/flat backtest (flat fee = the cost model's linear
        rate); rows carry an ``asset`` column and total return, max drawdown, Sharpe.
    batch_size : int, optional
        Parameter sets per task; default keeps a batch's arrays near 256 MB and gives
        each worker several tasks.
    full_metrics : bool
        Portfolio mode: every :func:`~quantlib.backtest.metrics.summary` metric (True) or
        only total return, max drawdown, Sharpe (faster).
    progress : bool
        Show a progress bar: ``dask.distributed.progress`` with a client, ``tqdm``
        without (widgets in notebooks, text bars in terminals).
    retries : int
        Times a failed task is retried.
    **settings
        Simulation settings (see :func:`~quantlib.backtest.simulate`).

    Returns
    -------
    pandas.DataFrame
        ``attrs`` hold ``skipped`` (invalid sets), ``n_tasks`` and, with a client,
        ``bytes_scattered`` (panel bytes sent to workers).

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(10, 200, seed=1, markets=())
    >>> df = sweep("ma_crossover", {"fast": [5, 10], "slow": [20, 40]}, ds, costs=None)
    >>> len(df), list(df.columns[:3])
    (4, ['fast', 'slow', 'total_return'])
    """
    strat = get_strategy(strategy)
    data = as_dataset(data)
    settings_dict(**settings)  # validate early, on the client side
    sets, skipped = expand_grid(strat, grid)
    if not sets:
        raise BacktestError("the sweep grid has no valid parameter set",
                            found=f"{skipped} rejected", fix="check the grid's ranges")
    n_workers = len(client.scheduler_info()["workers"]) if client is not None else 0
    bs = batch_size or _auto_batch(len(sets), data, per_asset, n_workers)
    batches = [sets[i:i + bs] for i in range(0, len(sets), bs)]
    attrs: dict[str, Any] = {"skipped": skipped, "n_tasks": len(batches), "batch_size": bs}
    if client is None:
        it: Iterable[list[dict[str, Any]]] = batches
        if progress:
            from tqdm.auto import tqdm  # a widget in notebooks, a bar in terminals

            it = tqdm(batches, desc=f"sweep {strat.name}", unit="batch")
        frames = [run_batch(strat, data, b, per_asset, settings, full_metrics) for b in it]
    else:
        frames, attrs["bytes_scattered"] = _dask_sweep(client, strat, data, batches, per_asset,
                                                       settings, full_metrics, progress,
                                                       retries)
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update(attrs)
    return out


def _dask_sweep(client: Any, strat: Strategy, data: xr.Dataset, batches: list[Any],
                per_asset: bool, settings: dict[str, Any], full_metrics: bool, progress: bool,
                retries: int) -> tuple[list[pd.DataFrame], int]:
    from dask.sizeof import sizeof

    n_workers = len(client.scheduler_info()["workers"])
    [data_f] = client.scatter([data], broadcast=True)
    futures = client.map(run_batch, [strat] * len(batches), [data_f] * len(batches), batches,
                         per_asset=per_asset, settings=settings, full_metrics=full_metrics,
                         retries=retries, pure=False, key=[f"sweep-{strat.name}-{i}-"
                                                            f"{id(batches)}"
                                                            for i in range(len(batches))])
    if progress:
        from distributed import progress as dask_progress

        dask_progress(futures)
    frames = client.gather(futures)
    client.cancel([data_f])
    return frames, int(sizeof(data)) * n_workers
