"""Signal vocabulary: kernels against pandas, and no operator reads later rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from quantlib.backtest import signals as sg
from quantlib.errors import StrategyError


@pytest.fixture
def x(rng):
    a = rng.normal(size=(120, 7))
    a[rng.random(a.shape) < 0.1] = np.nan
    return xr.DataArray(a, dims=("date", "asset"),
                        coords={"date": pd.bdate_range("2020-01-01", periods=120),
                                "sector": ("asset", list("aabbbcc"))})


def test_rolling_kernels_match_pandas(x):
    df = x.to_pandas()
    for w, mp in [(5, 5), (20, 10)]:
        pd.testing.assert_frame_equal(sg.rolling_mean(x, w, mp).to_pandas(),
                                      df.rolling(w, min_periods=mp).mean(), atol=1e-12)
        pd.testing.assert_frame_equal(sg.rolling_std(x, w, mp).to_pandas(),
                                      df.rolling(w, min_periods=mp).std(), atol=1e-10)
        pd.testing.assert_frame_equal(sg.rolling_sum(x, w, mp).to_pandas(),
                                      df.rolling(w, min_periods=mp).sum(), atol=1e-12)
    pd.testing.assert_frame_equal(sg.lag(x, 2).to_pandas(), df.shift(2))
    with pytest.raises(StrategyError, match="lag must look backwards"):
        sg.lag(x, -1)
    with pytest.raises(StrategyError, match="window must be a positive integer"):
        sg.rolling_mean(x, 0)


def test_returns_over_matches_price_ratio(rng):
    r = rng.normal(0, 0.01, (300, 3))
    r[0] = np.nan
    price = 100 * np.cumprod(1 + np.nan_to_num(r), axis=0)
    got = sg.returns_over_np(r, 252, 21)
    t = 280
    assert got[t, 1] == pytest.approx(price[t - 21, 1] / price[t - 252, 1] - 1, rel=1e-12)
    with pytest.raises(StrategyError, match="skip must be in"):
        sg.returns_over_np(r, 20, 20)


def test_cross_sectional_operators(x):
    df = x.to_pandas()
    pd.testing.assert_frame_equal(sg.cs_rank(x).to_pandas(),
                                  df.rank(axis=1, pct=False).sub(1).div(
                                      df.notna().sum(axis=1).sub(1), axis=0), atol=1e-12)
    z = sg.cs_zscore(x).to_pandas()
    exp = df.sub(df.mean(axis=1), axis=0).div(df.std(axis=1, ddof=0), axis=0)
    pd.testing.assert_frame_equal(z, exp, atol=1e-12)
    w = sg.winsorize(x, 0.1, 0.9).to_pandas()
    row = df.iloc[50].dropna()
    assert w.iloc[50].max() == pytest.approx(row.quantile(0.9))
    d = sg.demean(x, "sector").to_pandas()
    for s in "abc":
        cols = [i for i, v in enumerate(x["sector"].values) if v == s]
        assert np.allclose(d.iloc[:, cols].mean(axis=1).dropna(), 0)
    with pytest.raises(StrategyError, match="asset coordinate"):
        sg.demean(x, "industry")


def test_combine_selection_and_weights(x):
    c = sg.combine([x, x * 3], [1, 1])
    np.testing.assert_allclose(c.values, (x * 2).values, equal_nan=True)
    top = sg.top_k(x, 2)
    assert (top.sum("asset") == np.minimum(2, x.notnull().sum("asset"))).all()
    q = sg.quantile_select(x, 3, "bottom")
    vals = x.values[10]
    sel = q.values[10]
    assert vals[sel].max() < np.nanmin(np.where(sel, np.nan, vals))
    w = sg.equal_weight(top)
    assert np.allclose(w.sum("asset").values[x.notnull().sum("asset").values > 0], 1.0)


def test_no_operator_reads_later_rows(x, rng):
    ops = [lambda a: sg.rolling_mean(a, 10, 3), lambda a: sg.rolling_std(a, 10, 3),
           lambda a: sg.rolling_sum(a, 5, 1), lambda a: sg.returns_over(a * 0.01, 20, 5),
           sg.cs_rank, sg.cs_zscore, lambda a: sg.winsorize(a), lambda a: sg.demean(a, "sector"),
           lambda a: sg.top_k(a, 3), lambda a: sg.quantile_select(a, 3), sg.last_known,
           lambda a: sg.lag(a, 1)]
    cut = 60
    y = x.copy(data=np.array(x.values))
    y.values[cut + 1:] = rng.normal(size=y.values[cut + 1:].shape) * 5
    for op in ops:
        a = np.asarray(op(x).values[: cut + 1], float)
        b = np.asarray(op(y).values[: cut + 1], float)
        np.testing.assert_allclose(a, b, equal_nan=True)


def _quantile_by_rank(a: np.ndarray, q: int, which: str) -> np.ndarray:
    """The definition: threshold pandas' average percentile rank (independent of sg)."""
    df = pd.DataFrame(a)
    n = df.notna().sum(axis=1).to_numpy()[:, None]
    k = np.floor(n / q)
    pct = df.rank(axis=1, method="average").sub(1).to_numpy() / np.maximum(n - 1, 1)
    if which == "top":
        mask = pct >= (n - k) / np.maximum(n - 1, 1) - 1e-12
    else:
        mask = pct <= (k - 1) / np.maximum(n - 1, 1) + 1e-12
    return mask & (k > 0) & np.isfinite(a)


@pytest.mark.parametrize("which", ["top", "bottom"])
@pytest.mark.parametrize("q", [2, 3, 10])
def test_quantile_select_partition_equals_rank_threshold(rng, q, which):
    # small integers: many ties, some straddling the cut; NaN rows and sparse rows too
    a = rng.integers(0, 6, size=(400, 23)).astype(float)
    a[rng.random(a.shape) < 0.3] = np.nan
    a[5] = np.nan
    a[6, 1:] = np.nan
    got = sg._quantile_select_np(a, q, which)
    np.testing.assert_array_equal(got, _quantile_by_rank(a, q, which))
    b = rng.normal(size=(50, 1000))  # no ties: exactly floor(n / q) per row
    assert (sg._quantile_select_np(b, q, which).sum(axis=1) == 1000 // q).all()


def test_returns_over_on_decision_rows_equals_full_rows(rng):
    r = rng.normal(0, 0.02, (600, 40))
    r[:100, :5] = np.nan  # listed later
    r[rng.random(r.shape) < 0.05] = np.nan  # holidays
    r[400, 7] = -1.0  # total loss: -1 afterwards over any window that includes it
    full = sg.returns_over_np(r, 252, 21)
    mask = np.zeros(600, bool)
    mask[[10, 260, 299, 300, 420, 599]] = True
    with sg.decision_rows(mask):
        part = sg.returns_over_np(r, 252, 21)
    np.testing.assert_array_equal(part[mask], full[mask])
    assert np.isnan(part[~mask]).all()
    assert part[599, 7] == -1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        logv = np.cumsum(np.log1p(np.nan_to_num(r)), axis=0)  # log-space reference
        ref = np.expm1(logv[599 - 21] - logv[599 - 252])
    np.testing.assert_allclose(full[599, 8:], ref[8:], rtol=1e-11)
