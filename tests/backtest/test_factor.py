"""Factor analysis against independent pandas/scipy computations and known constructions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from quantlib.backtest.factor import (
    factor_analysis,
    factor_turnover,
    forward_returns_np,
    ic_summary,
    information_coefficient,
    quantile_returns,
)


def make(panel_like, rng, strength):
    r = panel_like["returns"]
    fwd = forward_returns_np(r.values, 1)
    sig = np.where(np.isfinite(fwd), strength * fwd + rng.normal(0, 0.01, fwd.shape), np.nan)
    return r.copy(data=sig)


def test_ic_and_rank_ic_match_pandas_and_scipy(panel, rng):
    sig = make(panel, rng, 0.5)
    ic = information_coefficient(sig, panel["returns"])
    ric = information_coefficient(sig, panel["returns"], rank=True)
    fwd = pd.DataFrame(forward_returns_np(panel["returns"].values, 1))
    s = pd.DataFrame(sig.values)
    for t in (100, 300, 550):
        ok = s.iloc[t].notna() & fwd.iloc[t].notna()
        assert ic.iloc[t] == pytest.approx(np.corrcoef(s.iloc[t][ok], fwd.iloc[t][ok])[0, 1],
                                           rel=1e-10)
        assert ric.iloc[t] == pytest.approx(stats.spearmanr(s.iloc[t][ok], fwd.iloc[t][ok])
                                            .statistic, rel=1e-10)
    summ = ic_summary(ic)
    x = ic.dropna()
    assert summ["mean"] == pytest.approx(x.mean()) and summ["std"] == pytest.approx(x.std())
    assert summ["t_stat"] == pytest.approx(stats.ttest_1samp(x, 0).statistic, rel=1e-10)
    assert summ["mean"] > 0.3


def test_quantile_returns_are_monotone_for_a_predictive_signal(panel, rng):
    sig = make(panel, rng, 1.0)
    qr = quantile_returns(sig, panel["returns"], quantiles=5)
    means = qr.mean()
    assert list(means[[1, 2, 3, 4, 5]].rank()) == [1, 2, 3, 4, 5]
    assert means["spread"] > 0
    t = 300
    fwd = forward_returns_np(panel["returns"].values, 1)[t]
    v = sig.values[t]
    ok = np.isfinite(v) & np.isfinite(fwd)
    labels = pd.qcut(pd.Series(v[ok]).rank(method="first"), 5, labels=False)
    assert qr.loc[qr.index[t], 5] == pytest.approx(fwd[ok][labels.to_numpy() == 4].mean())


def test_noise_signal_has_no_ic(panel, rng):
    noise = panel["returns"].copy(data=rng.normal(size=panel["returns"].shape))
    rep = factor_analysis(noise, panel, horizons=(1, 5))
    assert abs(rep["ic_summary"][1]["mean"]) < 0.03
    assert set(rep["rank_ic_summary"]) == {1, 5}


def test_factor_turnover_and_autocorrelation():
    idx = pd.bdate_range("2024-01-01", periods=3)
    sig = xr.DataArray([[1.0, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1]], dims=("date", "asset"),
                       coords={"date": idx})
    t = factor_turnover(sig, quantiles=2)
    assert np.isnan(t["turnover_top"].iloc[0])
    assert t["turnover_top"].tolist()[1:] == [0.0, 1.0]
    assert t["rank_autocorrelation"].tolist()[1:] == pytest.approx([1.0, -1.0])
