"""Factor analysis for any signal (alphalens-style): IC, rank IC, quantile returns, turnover.

The signal on row ``t`` is compared with the *forward* return from t's close to
the close ``horizon`` sessions later: that is the point of the analysis, so this
module (unlike strategies) reads future returns by design.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from quantlib.backtest.signals import cs_rank_np, cumsum_rows
from quantlib.errors import BacktestError

__all__ = ["forward_returns_np", "ic_np", "information_coefficient", "ic_summary",
           "quantile_returns", "factor_turnover", "factor_analysis"]


def forward_returns_np(returns: np.ndarray, horizon: int = 1) -> np.ndarray:
    """Compounded return over rows ``t+1 .. t+horizon`` (NaN where not all rows exist).

    Examples
    --------
    >>> forward_returns_np(np.array([[0.0], [0.1], [0.1]]), 2).round(4).ravel().tolist()
    [0.21, nan, nan]
    """
    T = returns.shape[0]
    logv = np.concatenate([np.zeros((1,) + returns.shape[1:]),
                           cumsum_rows(np.log1p(np.nan_to_num(returns)))])
    out = np.full(returns.shape, np.nan)
    if horizon < T:
        out[: T - horizon] = np.exp(logv[1 + horizon:] - logv[1: T - horizon + 1]) - 1
    return out


def ic_np(factor: np.ndarray, fwd: np.ndarray, rank: bool = False, min_assets: int = 5
          ) -> np.ndarray:
    """Cross-sectional correlation per row (Pearson, or Spearman with ``rank=True``)."""
    ok = np.isfinite(factor) & np.isfinite(fwd)
    f = np.where(ok, factor, np.nan)
    y = np.where(ok, fwd, np.nan)
    if rank:
        f, y = cs_rank_np(f), cs_rank_np(y)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no valid pair -> NaN
        fm = f - np.nanmean(f, axis=1, keepdims=True)
        ym = y - np.nanmean(y, axis=1, keepdims=True)
        c = np.nansum(fm * ym, axis=1) / np.sqrt(np.nansum(fm * fm, axis=1) *
                                                np.nansum(ym * ym, axis=1))
    return np.where(n >= min_assets, c, np.nan)


def _arr(x: xr.DataArray) -> np.ndarray:
    return np.asarray(x.transpose("date", "asset").values, dtype=float)


def information_coefficient(signal: xr.DataArray, returns: xr.DataArray, horizon: int = 1,
                            rank: bool = False) -> pd.Series:
    """Daily IC (or rank IC) of ``signal`` against ``horizon``-session forward returns."""
    fwd = forward_returns_np(_arr(returns), horizon)
    return pd.Series(ic_np(_arr(signal), fwd, rank), name="rank_ic" if rank else "ic",
                     index=pd.DatetimeIndex(signal["date"].values, name="date"))


def ic_summary(ic: pd.Series) -> dict[str, float]:
    """Mean, std, IR (mean/std), t-statistic, share positive, count of an IC series.

    Examples
    --------
    >>> s = ic_summary(pd.Series([0.1, 0.2, np.nan, 0.0]))
    >>> s["mean"], s["n"]
    (0.1, 3)
    """
    x = ic.dropna().to_numpy(float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "ir": mean / std if std else float("nan"),
            "t_stat": mean / std * np.sqrt(n) if std else float("nan"),
            "pct_positive": float((x > 0).mean()) if n else float("nan"), "n": n}


def _buckets(factor: np.ndarray, quantiles: int) -> np.ndarray:
    """Quantile labels 0..q-1 per row from percentile ranks (-1 where NaN)."""
    pct = cs_rank_np(factor)
    lab = np.floor(pct * quantiles).clip(0, quantiles - 1)
    return np.where(np.isfinite(pct), lab, -1).astype(int)


def quantile_returns(signal: xr.DataArray, returns: xr.DataArray, quantiles: int = 5,
                     horizon: int = 1) -> pd.DataFrame:
    """Mean forward return per date and quantile (columns 1..q) plus ``spread`` (q minus 1)."""
    if quantiles < 2:
        raise BacktestError("quantile analysis needs at least 2 quantiles",
                            found=str(quantiles), fix="pass quantiles=5")
    lab = _buckets(_arr(signal), quantiles)
    fwd = forward_returns_np(_arr(returns), horizon)
    out = np.full((lab.shape[0], quantiles), np.nan)
    for q in range(quantiles):
        sel = (lab == q) & np.isfinite(fwd)
        cnt = sel.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, q] = np.where(cnt > 0, np.where(sel, fwd, 0).sum(axis=1) / cnt, np.nan)
    df = pd.DataFrame(out, columns=list(range(1, quantiles + 1)),
                      index=pd.DatetimeIndex(signal["date"].values, name="date"))
    df["spread"] = df[quantiles] - df[1]
    return df


def factor_turnover(signal: xr.DataArray, quantiles: int = 5, lag: int = 1) -> pd.DataFrame:
    """Share of the top and bottom quantiles' names that were not there ``lag`` rows earlier,
    and the factor's rank autocorrelation (alphalens ``quantile_turnover`` /
    ``factor_rank_autocorrelation``)."""
    a = _arr(signal)
    lab = _buckets(a, quantiles)
    rows = {}
    for name, q in (("top", quantiles - 1), ("bottom", 0)):
        now, before = lab == q, np.zeros_like(lab, bool)
        before[lag:] = lab[:-lag] == q
        n = now.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(n > 0, (now & ~before).sum(axis=1) / n, np.nan)
        t[:lag] = np.nan
        rows[f"turnover_{name}"] = t
    ranks = cs_rank_np(a)
    prev = np.full_like(ranks, np.nan)
    prev[lag:] = ranks[:-lag]
    rows["rank_autocorrelation"] = ic_np(ranks, prev, rank=False, min_assets=3)
    return pd.DataFrame(rows, index=pd.DatetimeIndex(signal["date"].values, name="date"))


def factor_analysis(signal: xr.DataArray, data: xr.Dataset | xr.DataArray,
                    horizons: tuple[int, ...] = (1, 5, 21), quantiles: int = 5
                    ) -> dict[str, Any]:
    """IC and rank IC (daily series + summaries) per horizon, quantile returns, turnover.

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> from quantlib.backtest import signals as sg
    >>> ds = make_dataset(30, 200, seed=4, markets=())
    >>> rep = factor_analysis(sg.returns_over(ds["returns"], 20), ds, horizons=(1,))
    >>> sorted(rep)
    ['ic', 'ic_summary', 'quantile_mean', 'quantile_returns', 'rank_ic', 'rank_ic_summary', 'turnover']
    """
    r = data["returns"] if isinstance(data, xr.Dataset) else data
    ic = {h: information_coefficient(signal, r, h) for h in horizons}
    ric = {h: information_coefficient(signal, r, h, rank=True) for h in horizons}
    qr = quantile_returns(signal, r, quantiles, horizons[0])
    return {"ic": ic, "rank_ic": ric,
            "ic_summary": {h: ic_summary(s) for h, s in ic.items()},
            "rank_ic_summary": {h: ic_summary(s) for h, s in ric.items()},
            "quantile_returns": qr, "quantile_mean": qr.mean(),
            "turnover": factor_turnover(signal, quantiles)}
