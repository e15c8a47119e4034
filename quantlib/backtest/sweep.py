"""Parameter sweeps: parameter sets that share work are computed together as arrays.

``sweep`` expands a grid, splits it into batches, and for each batch asks the
strategy for a ``(P, date, asset)`` array at once (e.g. every moving average
window is computed once and each (fast, slow) pair is one comparison). Then:

- portfolio mode: every parameter set of a batch is constrained and simulated by one
  parallel numba kernel (:mod:`~quantlib.backtest.batched`: all the engine's costs,
  constraints and calendars; sets spread over the cores) and summarized; a strategy with
  a ``portfolio_func`` (``ma_crossover``) builds each set's weights in that kernel too;
- ``per_asset=True``: every (parameter set, asset) is its own long/flat backtest;
  a fused kernel turns positions into daily P&L with a flat fee and reduces it to
  total return, max drawdown and Sharpe in one pass, never materializing the
  ``P x T x N`` return array.

With a ``distributed.Client`` the data panel is scattered to every worker once
(``broadcast=True``, reused by later sweeps on the same content), batches run as tasks
with ``retries`` (several per worker: work stealing evens out uneven workers),
and a lost worker's tasks are recomputed elsewhere; ``progress=True`` shows a progress
bar.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from quantlib.backtest.constraints import rebalance_mask
from quantlib.backtest.engine import SIM_DEFAULTS, as_dataset, prepare_static
from quantlib.backtest.metrics import active_start, summary, sweep_metrics
from quantlib.backtest.settings import resolve_settings
from quantlib.backtest.signals import decision_rows
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


def long_flat_metrics(pos: np.ndarray, r: np.ndarray, fee: float,
                      periods_per_year: int = 252, rebalance: np.ndarray | None = None
                      ) -> np.ndarray:
    """Total return, max drawdown, Sharpe of each (param set, asset) long/flat backtest.

    ``pos`` is ``(P, T, N)`` positions in [0, 1] (bool accepted) decided at each close
    (on ``rebalance`` sessions only, if given; held between), ``r`` the ``(T, N)``
    returns; equals
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
    reb = np.ones(pos.shape[1], bool) if rebalance is None else np.asarray(rebalance, bool)
    from quantlib.backtest.parallel import long_flat_metrics_kernel  # numba (start-up)

    return long_flat_metrics_kernel(pos, _nan_as_zero(r), float(fee), float(periods_per_year),
                                    reb)


def _nan_as_zero(r: Any) -> np.ndarray:
    r = np.asarray(r, dtype=float)
    return np.ascontiguousarray(np.where(np.isnan(r), 0.0, r))


def run_batch(strategy: Strategy, data: xr.Dataset, param_sets: list[dict[str, Any]],
              per_asset: bool = False, settings: dict[str, Any] | None = None,
              full_metrics: bool = True) -> pd.DataFrame:
    """Evaluate one batch of parameter sets (the unit of work of a sweep task)."""
    out = _batch_task(strategy, data, param_sets, per_asset, settings, full_metrics)
    if isinstance(out, pd.DataFrame):
        return out
    return _per_asset_frame(param_sets, data["asset"].values, out)


def _batch_task(strategy: Strategy, data: xr.Dataset, param_sets: list[dict[str, Any]],
                per_asset: bool = False, settings: dict[str, Any] | None = None,
                full_metrics: bool = True) -> pd.DataFrame | np.ndarray:
    """A batch's metrics: ``(P, N, 3)`` per asset (compact to send back), else a frame."""
    long_short = {"long_short": any(p.get("long_short") for p in param_sets)}
    s = resolve_settings(strategy, long_short, **(settings or {}))
    ppy = s.periods_per_year
    if per_asset:
        return _per_asset_metrics(strategy, data, param_sets, s.costs.linear_rate, ppy,
                                  rebalance_mask(data["date"].values, s.rebalance))
    static = prepare_static(data, s)
    # every set's targets (built in the kernel when the strategy can), universe,
    # constraints and simulation: one parallel kernel over the sets
    if strategy.portfolio_func is not None:
        full = [strategy.resolve_params(p) for p in param_sets]
        pn, pt = strategy._call(strategy.portfolio_func, data, full, static)
    else:  # the signals on the decision rows only, as run() computes them
        reb = static["rebalance_decision"]
        with decision_rows(None if reb.all() else reb):
            raw = strategy.batch(data, param_sets)
        from quantlib.backtest.batched import simulate_targets  # numba (start-up)

        pn, pt = simulate_targets(raw, static)
    nets, turns = pn.T, pt.T
    rows = pd.DataFrame(param_sets)
    if not full_metrics:
        m = _active_sweep_metrics(nets, turns, ppy)
        for k, name in enumerate(SWEEP_METRICS):
            rows[name] = m[:, k]
        return rows
    idx = pd.DatetimeIndex(data["date"].values)
    mets = [summary(pd.Series(nets[:, j], index=idx), turnover=pd.Series(turns[:, j]),
                    periods_per_year=ppy, risk_free=s.risk_free)
            for j in range(len(param_sets))]
    return pd.concat([rows, pd.DataFrame(mets)], axis=1)


def _active_sweep_metrics(nets: np.ndarray, turns: np.ndarray, ppy: int) -> np.ndarray:
    """Fused metrics of each column from its first day with a position (as ``summary``).

    Columns are grouped by that first day so the kernel still runs on blocks; a set
    that never holds anything gets NaN metrics, as :func:`summary` gives it.
    """
    m = np.full((nets.shape[1], len(SWEEP_METRICS)), np.nan)
    starts = [active_start(None, turnover=turns[:, j]) for j in range(nets.shape[1])]
    for first in {st for st in starts if st is not None}:
        cols = [j for j, st in enumerate(starts) if st == first]
        m[cols] = sweep_metrics(np.ascontiguousarray(nets[first:, cols]), ppy)
    return m


def _per_asset_metrics(strategy: Strategy, data: xr.Dataset, param_sets: list[dict[str, Any]],
                       fee: float, ppy: int, rebalance: np.ndarray) -> np.ndarray:
    r = data["returns_base"] if "returns_base" in data else data["returns"]
    r_np = _nan_as_zero(r.transpose("date", "asset").values)
    if strategy.metrics_func is not None:  # fused: positions never materialized
        full = [strategy.resolve_params(p) for p in param_sets]
        return np.asarray(strategy.metrics_func(data, full, r_np, fee, ppy, rebalance))
    return long_flat_metrics(strategy.batch(data, param_sets, per_asset=True), r_np, fee, ppy,
                             rebalance)


def _per_asset_frame(param_sets: list[dict[str, Any]], assets: Any, m: np.ndarray
                     ) -> pd.DataFrame:
    P, N = m.shape[:2]
    params = pd.DataFrame(param_sets)
    cols: dict[str, Any] = {c: np.repeat(params[c].to_numpy(), N) for c in params.columns}
    # assets as a categorical: one string per asset, not per row
    cols["asset"] = pd.Categorical.from_codes(np.tile(np.arange(N), P),
                                              categories=np.asarray(assets).astype(str))
    for k, name in enumerate(SWEEP_METRICS):
        cols[name] = m[:, :, k].ravel()
    return pd.DataFrame(cols)


#: per-asset sweeps are single-asset long/flat backtests: these portfolio settings do not apply
_PORTFOLIO_ONLY = ("execution", "long_only", "gross_leverage", "net_leverage", "max_weight",
                   "neutral", "benchmark")


def _check_per_asset_settings(settings: dict[str, Any]) -> None:
    bad = [k for k in _PORTFOLIO_ONLY if k in settings and settings[k] != SIM_DEFAULTS[k]]
    if bad:
        raise BacktestError("per-asset sweeps are single-asset long/flat backtests at the close",
                            found=", ".join(f"{k}={settings[k]!r}" for k in bad),
                            fix="drop these settings, or sweep portfolios (per_asset=False)",
                            field=bad[0])


def _auto_batch(n_sets: int, data: xr.Dataset, per_asset: bool, n_workers: int,
                fused: bool = False, progress: bool = False) -> int:
    cells = data.sizes["date"] * data.sizes["asset"]
    # a batch materializes (sets, date, asset) positions (bool) or weights (float64), unless
    # the strategy's fused kernel builds them on the fly (per_asset: metrics_func; portfolio
    # mode: portfolio_func, whose sets keep only their (date,) net returns and turnover)
    if fused:
        per_set = data.sizes["asset"] * 24 if per_asset else data.sizes["date"] * 16
    else:
        per_set = cells * (1 if per_asset else 8)
    by_memory = max(1, int(256e6 // per_set))
    if n_workers <= 1:  # one process: fewer, bigger batches share more work
        return min(by_memory, max(1, -(-n_sets // 20))) if progress else by_memory
    # several tasks per worker balance uneven workers; a fused task has little fixed cost
    by_spread = max(1, -(-n_sets // ((8 if fused else 4) * n_workers)))
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
        Each asset is its own long/flat backtest traded at the close on the ``rebalance``
        calendar (flat fee = the cost model's linear rate: commission + half-spread);
        rows carry an ``asset`` column and total return, max drawdown, Sharpe. Portfolio
        settings (execution, leverage, weights, neutrality, benchmark) are rejected.
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
        ``bytes_scattered`` (panel bytes sent to the workers by this sweep: a panel goes
        to every worker once per client; later sweeps on the same content reuse it).

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(10, 200, seed=1, markets=())
    >>> df = sweep("ma_crossover", {"fast": [5, 10], "slow": [20, 40]}, ds, costs=None)
    >>> len(df), list(df.columns[:2]), {"start", "total_return", "sharpe"} <= set(df.columns)
    (4, ['fast', 'slow'], True)
    """
    strat = get_strategy(strategy)
    data = as_dataset(data)
    resolve_settings(strat, None, **settings)  # validate early, on the client side
    if per_asset:
        _check_per_asset_settings(settings)
    sets, skipped = expand_grid(strat, grid)
    if not sets:
        raise BacktestError("the sweep grid has no valid parameter set",
                            found=f"{skipped} rejected", fix="check the grid's ranges")
    n_workers = len(client.scheduler_info()["workers"]) if client is not None else 0
    fused = strat.metrics_func is not None if per_asset else strat.portfolio_func is not None
    bs = batch_size or _auto_batch(len(sets), data, per_asset, n_workers, fused=fused,
                                   progress=progress)
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
    data_f, sent = _scatter_once(client, data)
    futures = client.map(_batch_task, [strat] * len(batches), [data_f] * len(batches), batches,
                         per_asset=per_asset, settings=settings, full_metrics=full_metrics,
                         retries=retries, pure=False, key=[f"sweep-{strat.name}-{i}-"
                                                            f"{id(batches)}"
                                                            for i in range(len(batches))])
    if progress:
        from distributed import progress as dask_progress

        dask_progress(futures)
    from distributed import as_completed

    # fetch each batch as it finishes (overlaps the transfers with the remaining tasks)
    position = {f.key: i for i, f in enumerate(futures)}
    assets = data["asset"].values
    frames: list[Any] = [None] * len(batches)
    for fut in as_completed(futures):
        i = position[fut.key]
        r = fut.result()
        frames[i] = r if isinstance(r, pd.DataFrame) else _per_asset_frame(batches[i], assets, r)
    return frames, sent


#: (client id, dataset token) -> the panel's future on the workers (see _scatter_once)
_SCATTERED: OrderedDict[tuple[int, str], Any] = OrderedDict()
_KEEP_PANELS = 2


def _scatter_once(client: Any, data: xr.Dataset) -> tuple[Any, int]:
    """The panel on every worker and the bytes sent now: 0 when an earlier sweep on this
    client already sent the same content (dask token). The last two panels stay on the
    workers; an older one is released when a third is sent."""
    from dask.base import tokenize
    from dask.sizeof import sizeof

    key = (id(client), tokenize(data))
    fut = _SCATTERED.get(key)
    if fut is not None and fut.client is client and client.status == "running" \
            and fut.status == "finished":
        _SCATTERED.move_to_end(key)
        return fut, 0
    n_workers = len(client.scheduler_info()["workers"])
    [fut] = client.scatter([data], broadcast=True)
    _SCATTERED[key] = fut
    while len(_SCATTERED) > _KEEP_PANELS:
        _SCATTERED.popitem(last=False)  # the dropped future releases its data
    return fut, int(sizeof(data)) * n_workers
