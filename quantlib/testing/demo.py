"""Seeded demo results for testing the dashboards and the results API (test support only).

:func:`demo_result` builds a realistic :class:`quantlib.backtest.Result` (a long-only
portfolio on a seeded random universe, with a benchmark, costs and turnover) without
needing the data store or the backtest engine; :func:`populate_demo_store` saves and
publishes a handful of them through :mod:`quantlib.results`, so the store layout is
the real one. Every demo result is marked synthetic (``meta["synthetic"]``), so it is
published only with ``allow_synthetic=True`` and its title starts with ``[synthetic]``.

:func:`rerun_demo` is a what-if runner (see :mod:`quantlib.serving.views.whatif`): a dev hub
whose dashboards service has ``QUANTLIB_WHATIF_RUNNER=quantlib.testing.demo:rerun_demo``
reruns demo results with it; the product's own runner reruns registered strategies on
the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from quantlib.backtest.metrics import summary

__all__ = ["demo_result", "rerun_demo", "populate_demo_store", "DEMO_ALLOWED_PARAMS"]

DEMO_ALLOWED_PARAMS: dict[str, Any] = {
    "lookback": {"min": 20, "max": 250, "step": 10},
    "top_k": {"min": 5, "max": 30, "step": 5},
}


def rerun_demo(meta: dict[str, Any], params: dict[str, Any],
               progress: Callable[..., None] = lambda *a: None) -> Any:
    """What-if runner for demo results: recompute one from its stored meta and new ``params``.

    Examples
    --------
    >>> r = demo_result(seed=2, years=1, n_assets=5)
    >>> meta = {"strategy": "demo_momentum", "snapshot": "demo-snapshot"}
    >>> rerun_demo(meta, r.params).result_id == r.result_id
    True
    """
    p = dict(params)
    progress("running", 1, 1)
    return demo_result(seed=p.pop("seed"), years=p.pop("years"),
                       n_assets=p.pop("n_assets"), strategy=meta["strategy"], params=p,
                       snapshot=meta.get("snapshot") or "demo-snapshot")


def demo_result(*, seed: int = 0, years: float = 10.0, n_assets: int = 30,
                strategy: str = "demo_momentum", params: dict[str, Any] | None = None,
                snapshot: str = "demo-snapshot", author: str | None = None) -> Any:
    """A seeded demo backtest result with ``years`` of business-day returns.

    Examples
    --------
    >>> r = demo_result(seed=1, years=1, n_assets=5)
    >>> list(r.returns.columns)
    ['net', 'gross', 'turnover', 'costs', 'benchmark']
    >>> r.result_id == demo_result(seed=1, years=1, n_assets=5).result_id
    True
    >>> r.meta()["synthetic"]
    True
    """
    from quantlib.backtest.result import Result

    params = {**(params or {"lookback": 120, "top_k": 10}),
              "seed": seed, "years": years, "n_assets": n_assets}
    rng = np.random.default_rng([seed, int(params.get("lookback", 0)),
                                 int(params.get("top_k", 0))])
    n_days = int(round(years * 252))
    dates = pd.bdate_range(end="2025-12-31", periods=n_days, name="date")
    market = rng.standard_t(5, n_days) * 0.008 + 0.0003
    assets = [f"US{i:010d}" for i in range(n_assets)]
    beta = rng.uniform(0.6, 1.4, n_assets)
    asset_ret = market[:, None] * beta + rng.standard_normal((n_days, n_assets)) * 0.012
    k = max(1, min(n_assets, int(params.get("top_k", 10))))
    lookback = max(2, int(params.get("lookback", 120)))
    score = pd.DataFrame(asset_ret).rolling(lookback, min_periods=1).mean().to_numpy()
    picks = np.argsort(-score, axis=1)[:, :k]
    w = np.zeros((n_days, n_assets))
    np.put_along_axis(w, picks, 1.0 / k, axis=1)
    w[:, :] = np.vstack([w[:1] * 0, w[:-1]])  # trade on yesterday's decision
    turnover = np.abs(np.diff(w, axis=0, prepend=0.0)).sum(axis=1)
    gross = (w * asset_ret).sum(axis=1) + 0.00015
    costs = turnover * 0.0005
    returns = pd.DataFrame({"net": gross - costs, "gross": gross, "turnover": turnover,
                            "costs": costs, "benchmark": market}, index=dates)
    weights = pd.DataFrame(w, index=dates, columns=assets)
    metrics = summary(returns["net"], turnover=returns["turnover"])
    metrics["avg_turnover"] = float(turnover.mean())
    metrics["total_costs"] = float(costs.sum())
    return Result(returns=returns, weights=weights, params=params, metrics=metrics,
                  provenance={"strategy": strategy, "source_hash": "demo", "snapshot": snapshot,
                              "synthetic": True,
                              "quantlib_version": "demo",
                              "created_at": str(dates[-1].date()) + "T22:00:00+00:00"},
                  info={"author": author} if author else {})


def populate_demo_store(url: str, *, n_published: int = 4, years: float = 10.0,
                        unpublished_author: str | None = "ann") -> list[str]:
    """Publish ``n_published`` demo results (plus one unpublished) into the store at ``url``.

    Returns the result ids, published ones first, the unpublished one last.
    """
    from quantlib.results import publish, save_result

    ids = []
    strategies = ("demo_momentum", "demo_reversal", "demo_value", "demo_lowvol")
    for i in range(n_published):
        res = demo_result(seed=i, years=years, strategy=strategies[i % len(strategies)],
                          params={"lookback": 60 + 20 * i, "top_k": 10})
        ids.append(publish(res, title=f"Demo {strategies[i % len(strategies)]} #{i}",
                           description="seeded demo result", tags=["demo"],
                           author="ann" if i % 2 == 0 else "bob",
                           allowed_params=DEMO_ALLOWED_PARAMS, url=url,
                           allow_synthetic=True))
    if unpublished_author:
        res = demo_result(seed=99, years=min(years, 3.0), strategy="secret_sauce",
                          params={"lookback": 30, "top_k": 5}, author=unpublished_author)
        res.info["title"] = "Work in progress"
        ids.append(save_result(res, url))
    return ids
