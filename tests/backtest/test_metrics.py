"""Every metric cross-checked against empyrical / quantstats on the same inputs.

Where conventions differ the test says so and checks the documented relation:
- max drawdown: both count the starting capital (a first-day loss is a drawdown).
- CAGR: all three use periods / 252 (older quantstats used calendar days / 365).
- information ratio: quantlib annualizes; empyrical excess_sharpe does not.
"""

from __future__ import annotations

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from quantlib.backtest import metrics as m


def generated_series() -> list[pd.Series]:
    rng = np.random.default_rng(42)
    idx = pd.bdate_range("2015-01-01", periods=1500)
    out = []
    for mu, sd in [(0.0004, 0.01), (-0.0002, 0.02), (0.001, 0.005)]:
        out.append(pd.Series(rng.normal(mu, sd, len(idx)), index=idx))
    out.append(pd.Series(rng.standard_t(3, len(idx)) * 0.01, index=idx))
    return out


def cases(real_returns: pd.DataFrame) -> list[tuple[str, pd.Series, pd.Series]]:
    gen = generated_series()
    out = [(f"gen{i}", s, gen[(i + 1) % len(gen)]) for i, s in enumerate(gen)]
    bench = real_returns["IBM"]
    for sym in ("AAPL", "GOOG", "MSFT", "FB"):
        s = real_returns[sym].dropna()
        out.append((sym, s, bench.reindex(s.index).fillna(0.0)))
    return out


@pytest.fixture(scope="module")
def all_cases(real_returns):
    return cases(real_returns)


def test_return_and_risk_metrics_match_empyrical(all_cases):
    for name, r, _ in all_cases:
        a = r.to_numpy()
        assert m.total_return(a) == pytest.approx(ep.cum_returns_final(r), rel=1e-10), name
        assert m.cagr(a) == pytest.approx(ep.annual_return(r), rel=1e-10), name
        assert m.annual_volatility(a) == pytest.approx(ep.annual_volatility(r), rel=1e-10)
        assert m.sharpe(a) == pytest.approx(ep.sharpe_ratio(r), rel=1e-10), name
        assert m.sharpe(a, risk_free=0.0001) == pytest.approx(
            ep.sharpe_ratio(r, risk_free=0.0001), rel=1e-10)
        assert m.sortino(a) == pytest.approx(ep.sortino_ratio(r), rel=1e-10), name
        assert m.sortino(a, risk_free=0.0001) == pytest.approx(
            ep.sortino_ratio(r, required_return=0.0001), rel=1e-10)
        assert m.value_at_risk(a) == pytest.approx(ep.value_at_risk(r), rel=1e-10)
        assert m.conditional_value_at_risk(a) == pytest.approx(
            ep.conditional_value_at_risk(r), rel=1e-10)


def test_drawdown_and_calmar_match_empyrical(all_cases):
    for name, r, _ in all_cases:
        assert m.max_drawdown(r.to_numpy()) == pytest.approx(ep.max_drawdown(r), rel=1e-10), name
        assert m.calmar(r.to_numpy()) == pytest.approx(ep.calmar_ratio(r), rel=1e-10), name
        assert m.max_drawdown(r.to_numpy()) == pytest.approx(qs.stats.max_drawdown(r),
                                                             rel=1e-9), name


def test_first_day_loss_is_a_drawdown():
    r = pd.Series([-0.2, 0.1], index=pd.bdate_range("2020-01-01", periods=2))
    assert m.max_drawdown(r.to_numpy()) == pytest.approx(-0.2)
    assert ep.max_drawdown(r) == pytest.approx(-0.2)


def test_alpha_beta_information_ratio_match_empyrical(all_cases):
    for name, r, b in all_cases:
        alpha, beta = m.alpha_beta(r.to_numpy(), b.to_numpy())
        e_alpha, e_beta = ep.alpha_beta(r, b)
        assert beta == pytest.approx(e_beta, rel=1e-9), name
        assert alpha == pytest.approx(e_alpha, rel=1e-9, abs=1e-12), name
        ir = m.information_ratio(r.to_numpy(), b.to_numpy())
        assert ir == pytest.approx(ep.excess_sharpe(r, b) * np.sqrt(252), rel=1e-9)


def test_hit_rate_and_tables_match_quantstats_and_empyrical(all_cases):
    for name, r, _ in all_cases:
        assert m.hit_rate(r.to_numpy()) == pytest.approx(qs.stats.win_rate(r), rel=1e-12), name
        assert m.sharpe(r.to_numpy()) == pytest.approx(qs.stats.sharpe(r), rel=1e-9), name
        assert m.sortino(r.to_numpy()) == pytest.approx(qs.stats.sortino(r), rel=1e-9), name
        yearly = m.yearly_returns(r)
        np.testing.assert_allclose(yearly.to_numpy(), ep.aggregate_returns(r, "yearly")
                                   .to_numpy(), rtol=1e-10)
        monthly = m.monthly_returns(r).stack().dropna()
        np.testing.assert_allclose(monthly.to_numpy(), ep.aggregate_returns(r, "monthly")
                                   .to_numpy(), rtol=1e-10)


def test_cagr_matches_empyrical_and_quantstats(real_returns):
    r = real_returns["AAPL"].dropna()
    growth = float(np.prod(1 + r))
    assert m.cagr(r.to_numpy()) == pytest.approx(growth ** (252 / len(r)) - 1, rel=1e-12)
    assert m.cagr(r.to_numpy()) == pytest.approx(qs.stats.cagr(r), rel=1e-9)
    # periods_per_year is explicit: weekly data annualizes with 52
    assert m.cagr(r.to_numpy(), 52) == pytest.approx(ep.annual_return(r, "weekly"), rel=1e-10)


def test_drawdown_duration_and_recovery_by_hand():
    r = [0.1, -0.5, 0.2, 1.0, -0.01, -0.01]
    d = m.drawdown_stats(r)
    # wealth: 1, 1.1, .55, .66, 1.32, 1.3068, 1.2937 -> peak idx 1, trough 2, recovered 4
    assert (d["peak"], d["trough"], d["recovered"]) == (1, 2, 4)
    assert d["duration"] == 3 and d["recovery"] == 2
    assert d["max_drawdown"] == pytest.approx(-0.5)
    assert d["longest_duration"] == 2  # 2 periods under the peak in each episode
    unrecovered = m.drawdown_stats([0.1, -0.3, 0.05])
    assert unrecovered["recovered"] is None and np.isnan(unrecovered["recovery"])
    assert unrecovered["duration"] == 2


def test_sweep_metrics_kernel_parity_with_numpy_and_empyrical(real_returns):
    rng = np.random.default_rng(0)
    r = rng.normal(0.0003, 0.01, (800, 50))
    r[rng.random(r.shape) < 0.01] = 0.0
    fast, ref = m.sweep_metrics(r), m.sweep_metrics_numpy(r)
    np.testing.assert_allclose(fast, ref, rtol=1e-9)
    real = real_returns["MSFT"].dropna()
    out = m.sweep_metrics(real.to_numpy()[:, None])[0]
    assert out[2] == pytest.approx(ep.sharpe_ratio(real), rel=1e-9)
    assert out[0] == pytest.approx(ep.cum_returns_final(real), rel=1e-9)


def test_summary_holds_every_metric(real_returns):
    r = real_returns["GOOG"].dropna()
    b = real_returns["IBM"].reindex(r.index).fillna(0)
    s = m.summary(r, benchmark=b, turnover=r * 0 + 0.1)
    for key in ("cagr", "annual_return", "annual_volatility", "sharpe", "sortino",
                "max_drawdown", "max_drawdown_duration", "max_drawdown_recovery", "calmar",
                "hit_rate", "turnover_annual", "alpha", "beta", "information_ratio",
                "var_95", "cvar_95"):
        assert key in s
    assert s["turnover_annual"] == pytest.approx(25.2)
    assert s["sharpe"] == pytest.approx(ep.sharpe_ratio(r), rel=1e-10)


def test_warmup_days_are_not_performance(real_panel):
    """Months without a position used to enter vol, Sharpe, CAGR and the period."""
    from quantlib.backtest import run

    res = run("ma_crossover", real_panel, fast=20, slow=100, costs=None)
    first = int(np.argmax(res.exposures["gross"].to_numpy() > 0))
    assert first >= 99  # no position before the slow average is full (FB lists late)
    assert (res.returns["net"].iloc[:first] == 0).all()
    live = res.returns["net"].iloc[first:]
    s = res.metrics
    assert s["warmup_periods"] == first and s["n_periods"] == len(live)
    assert s["start"] == res.returns.index[first].date().isoformat()
    assert res.meta()["start"].startswith(s["start"])
    assert s["sharpe"] == pytest.approx(ep.sharpe_ratio(live), rel=1e-10)
    assert s["cagr"] == pytest.approx(ep.annual_return(live), rel=1e-10)
    assert s["annual_volatility"] == pytest.approx(ep.annual_volatility(live), rel=1e-10)
    assert s["cagr"] == pytest.approx(qs.stats.cagr(live), rel=1e-9)
    assert s["max_drawdown"] == pytest.approx(ep.max_drawdown(live), rel=1e-10)
    full = res.returns["net"]
    assert s["annual_volatility"] > ep.annual_volatility(full) * 1.01  # zeros diluted it
    assert s["turnover_annual"] == pytest.approx(
        res.returns["turnover"].iloc[first:].mean() * 252, rel=1e-12)


def test_a_series_that_never_holds_has_no_performance():
    idx = pd.bdate_range("2020-01-01", periods=5)
    s = m.summary(pd.Series(0.0, index=idx), turnover=pd.Series(0.0, index=idx))
    assert s["n_periods"] == 0 and s["warmup_periods"] == 5 and s["start"] is None
    assert np.isnan(s["sharpe"]) and np.isnan(s["cagr"])


def test_every_metric_has_a_unit_and_is_formatted_by_it(real_returns):
    r = real_returns["GOOG"].dropna()
    b = real_returns["IBM"].reindex(r.index).fillna(0)
    expo = pd.DataFrame({"gross": 1.0, "n_holdings": 3.0}, index=r.index)
    s = m.summary(r, benchmark=b, turnover=r * 0 + 0.1, exposures=expo)
    assert {k for k in s if k not in m.METRIC_UNITS} == set()
    assert set(m.METRIC_UNITS.values()) <= {*m.UNIT_FORMATS, "date"}
    dur = s["max_drawdown_duration"]
    assert m.metric_unit("max_drawdown_duration") == "days"
    assert m.format_metric("max_drawdown_duration", dur) == f"{dur} days"  # not 30000.00%
    assert m.format_metric("longest_drawdown_duration", 300) == "300 days"
    assert m.format_metric("cagr", 0.1234) == "12.34%"
    assert m.format_metric("sharpe", s["sharpe"]) == f"{s['sharpe']:.2f}"
    assert m.format_metric("turnover_annual", 25.2) == "25.2x"
    assert m.format_metric("n_periods", 1500) == "1500"
    assert m.format_metric("start", s["start"]) == s["start"]
    assert m.format_metric("sharpe", float("nan")) == "—"
