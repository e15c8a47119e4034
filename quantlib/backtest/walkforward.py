"""Walk-forward evaluation: choose parameters in-sample, evaluate them out-of-sample.

Folds step through the sample by ``test`` sessions. ``mode="rolling"`` trains on
the ``train`` sessions just before each test window; ``"expanding"`` trains on
everything before it. In each fold the grid is swept on the training window
(with the Dask client, if given), the best set by ``metric`` is simulated on all
data up to the test window's end (its signals only read the past), and the test
window's returns are kept. In-sample and out-of-sample alike use the settings
:func:`~quantlib.backtest.settings.resolve_settings` gives (the strategy's own
``sim_defaults`` under the caller's settings, as :func:`~quantlib.backtest.run` does), so
each fold's out-of-sample returns equal ``run(strategy, data[:test_end], **chosen,
**settings)`` on the test window; the result records those settings. The stitched out-of-sample returns form a
:class:`~quantlib.backtest.Result`; a circular block bootstrap gives a
confidence interval for its Sharpe ratio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantlib.backtest.engine import as_dataset, simulate, strategy_weights
from quantlib.backtest.metrics import summary
from quantlib.backtest.result import Result
from quantlib.backtest.settings import resolve_settings
from quantlib.backtest.strategies import get_strategy
from quantlib.backtest.sweep import sweep
from quantlib.errors import BacktestError

__all__ = ["walk_forward", "WalkForward", "bootstrap_sharpe_ci", "fold_bounds"]


@dataclass
class WalkForward:
    """Outcome of :func:`walk_forward`: per-fold choices and the stitched OOS result."""

    folds: pd.DataFrame
    oos: Result
    sharpe_ci: tuple[float, float]

    @property
    def metrics(self) -> dict[str, Any]:
        """The stitched out-of-sample metrics plus the Sharpe confidence interval."""
        return {**self.oos.metrics, "sharpe_ci_low": self.sharpe_ci[0],
                "sharpe_ci_high": self.sharpe_ci[1]}


def fold_bounds(n: int, train: int, test: int, mode: str = "rolling"
                ) -> list[tuple[int, int, int, int]]:
    """``(train_start, train_end, test_start, test_end)`` row bounds (ends exclusive).

    Examples
    --------
    >>> fold_bounds(10, 4, 3)
    [(0, 4, 4, 7), (3, 7, 7, 10)]
    >>> fold_bounds(10, 4, 3, "expanding")
    [(0, 4, 4, 7), (0, 7, 7, 10)]
    """
    if mode not in ("rolling", "expanding"):
        raise BacktestError("walk-forward mode must be 'rolling' or 'expanding'",
                            found=repr(mode), fix="pass mode='rolling'")
    if train < 2 or test < 1 or train + test > n:
        raise BacktestError("walk-forward windows must fit the sample",
                            found=f"train={train}, test={test}, sessions={n}",
                            fix="use shorter windows or more data")
    out = []
    start = train
    while start + test <= n:
        out.append((0 if mode == "expanding" else start - train, start, start, start + test))
        start += test
    return out


def bootstrap_sharpe_ci(r: np.ndarray, n_boot: int = 1000, block: int = 5, ci: float = 0.95,
                        seed: int = 0, periods_per_year: int = 252) -> tuple[float, float]:
    """Circular block bootstrap confidence interval of the annualized Sharpe ratio.

    Examples
    --------
    >>> r = np.random.default_rng(0).normal(0.001, 0.01, 1000)
    >>> lo, hi = bootstrap_sharpe_ci(r)
    >>> lo < 0.001 / 0.01 * 252 ** 0.5 < hi
    True
    """
    r = np.asarray(r, float)
    n = len(r)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, (n_boot, -(-n // block)))
    idx = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]
    s = r[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        sh = s.mean(axis=1) / s.std(axis=1, ddof=1) * np.sqrt(periods_per_year)
    lo, hi = np.nanquantile(sh, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def walk_forward(strategy: Any, grid: Mapping[str, Iterable[Any]] | list[dict[str, Any]],
                 data: Any, *, train: int = 504, test: int = 126, mode: str = "rolling",
                 metric: str = "sharpe", client: Any = None, n_boot: int = 1000,
                 block: int = 5, seed: int = 0, **settings: Any) -> WalkForward:
    """Walk-forward optimization (see the module docstring).

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(15, 400, seed=5, markets=())
    >>> wf = walk_forward("ma_crossover", {"fast": [5, 10], "slow": [30, 60]}, ds,
    ...                   train=200, test=100, costs=None)
    >>> len(wf.folds), len(wf.oos.returns)
    (2, 200)
    """
    strat = get_strategy(strategy)
    data = as_dataset(data)
    s = resolve_settings(strat, None, **settings)
    bounds = fold_bounds(data.sizes["date"], train, test, mode)
    dates = pd.DatetimeIndex(data["date"].values)
    rows, pieces, weights = [], [], []
    for k, (a, b, c, d) in enumerate(bounds):
        ins = sweep(strat, grid, data.isel(date=slice(a, b)), client=client,
                    full_metrics=metric not in ("sharpe", "total_return", "max_drawdown"),
                    **settings)
        if metric not in ins:
            raise BacktestError("walk-forward metric must be a sweep metric", found=metric,
                                fix="use 'sharpe', 'total_return' or a summary() key")
        best_row = ins[metric].astype(float).idxmax()
        best = ins.loc[best_row]
        # column-wise, so integer parameters stay integers
        params = {key: _py(ins[key].loc[best_row]) for key in ins.columns
                  if key in strat.params}
        s_fold = resolve_settings(strat, params, **settings)
        upto = data.isel(date=slice(0, d))
        res = simulate(strategy_weights(strat, upto, strat.resolve_params(params), s_fold),
                       upto, strategy=strat.name, source_hash=strat.source_hash,
                       params=params, settings=s_fold)
        pieces.append(res.returns.iloc[c:d])
        weights.append(res.weights.iloc[c:d])
        oos_metric = summary(res.returns["net"].iloc[c:d],
                             periods_per_year=s.periods_per_year).get(metric, float("nan"))
        rows.append({"fold": k, "train_start": dates[a], "train_end": dates[b - 1],
                     "test_start": dates[c], "test_end": dates[d - 1], "params": params,
                     "long_only": s_fold.long_only,
                     f"in_sample_{metric}": float(best[metric]),
                     f"oos_{metric}": float(oos_metric)})
    returns, w = pd.concat(pieces), pd.concat(weights)
    first = res.provenance
    oos = Result(returns, w, params={"grid": grid if isinstance(grid, list) else
                                     {k: list(v) for k, v in grid.items()},
                                     "train": train, "test": test, "mode": mode,
                                     "metric": metric, **s.as_params()},
                 provenance={**first, "strategy": f"walk_forward:{strat.name}",
                             "sample": "out_of_sample"})  # its metrics are the OOS record
    oos.metrics = summary(returns["net"], turnover=returns["turnover"], exposures=oos.exposures,
                          periods_per_year=s.periods_per_year, risk_free=s.risk_free)
    ci = bootstrap_sharpe_ci(returns["net"].to_numpy(), n_boot, block, seed=seed,
                             periods_per_year=s.periods_per_year)
    oos.metrics.update(sharpe_ci_low=ci[0], sharpe_ci_high=ci[1])
    return WalkForward(pd.DataFrame(rows), oos, ci)


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
