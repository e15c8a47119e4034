"""Property tests of the PIT kernels against independent pandas references."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlib.pit import kernels as K

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def bitemporal(draw):
    """Events (series, period, known_at, value) and a (date x clock) decision matrix."""
    n_series = draw(st.integers(1, 4))
    n_clocks = draw(st.integers(1, 3))
    n_dates = draw(st.integers(1, 12))
    base = np.sort(np.array(draw(st.lists(st.integers(0, 200), min_size=n_dates,
                                          max_size=n_dates, unique=True))))
    shifts = np.array(draw(st.lists(st.integers(-15, 15), min_size=n_clocks, max_size=n_clocks)))
    decision = base[:, None] * 10 + shifts[None, :]          # increasing per column
    rows = draw(st.lists(st.tuples(st.integers(0, n_series - 1), st.integers(0, 5),
                                   st.integers(-100, 2200)), max_size=40,
                         unique_by=lambda r: r))
    series = np.array([r[0] for r in rows], dtype=np.intp)
    period = np.array([r[1] for r in rows], dtype=np.int64)
    known = np.array([r[2] for r in rows], dtype=np.int64)
    values = np.array(draw(st.lists(st.floats(-1e6, 1e6), min_size=len(rows),
                                    max_size=len(rows))), dtype=float)
    clock_of = np.array(draw(st.lists(st.integers(0, n_clocks - 1), min_size=n_series,
                                      max_size=n_series)), dtype=np.intp)
    return series, period, known, values, decision.astype(np.int64), clock_of


def reference_asof(series, period, known, values, decision, clock_of):
    """Independent computation with two pandas.merge_asof passes.

    1. the latest period known at each decision time: merge_asof on the running max of
       period per series (events sorted by known_at);
    2. that period's latest revision known at the decision time: merge_asof by
       (series, period).
    """
    n_dates, n_series = decision.shape[0], clock_of.shape[0]
    left = pd.DataFrame({"date": np.repeat(np.arange(n_dates), n_series),
                         "series": np.tile(np.arange(n_series), n_dates)})
    left["t"] = decision[left["date"], clock_of[left["series"]]]
    out = np.full((n_dates, n_series), np.nan)
    if len(series) == 0:
        return out
    ev = pd.DataFrame({"series": series, "period": period, "t": known, "value": values})
    ev = ev.sort_values(["series", "t", "period"]).reset_index(drop=True)
    ev["best_period"] = ev.groupby("series")["period"].cummax()
    latest = pd.merge_asof(left.sort_values("t"), ev.sort_values("t")[["t", "series",
                                                                       "best_period"]],
                           on="t", by="series", direction="backward")
    latest = latest.dropna(subset=["best_period"])
    latest["period"] = latest["best_period"].astype(np.int64)
    rev = pd.merge_asof(latest.sort_values("t"), ev.sort_values("t")[["t", "series", "period",
                                                                      "value"]],
                        on="t", by=["series", "period"], direction="backward")
    out[rev["date"].to_numpy(), rev["series"].to_numpy()] = rev["value"].to_numpy()
    return out


@SETTINGS
@given(bitemporal())
def test_asof_matches_merge_asof_reference(case):
    series, period, known, values, decision, clock_of = case
    pos = K.asof_index(series, known, period, decision, clock_of)
    got = K.take_or_nan(values, pos)
    want = reference_asof(series, period, known, values, decision, clock_of)
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(bitemporal())
def test_asof_take_matches_reference_and_rank_grid(case):
    series, period, known, values, decision, clock_of = case
    got_v, got_p = K.asof_take(series, known, period, decision, clock_of, [values, period],
                               [np.nan, K.NAT])
    np.testing.assert_array_equal(got_v, reference_asof(series, period, known, values,
                                                        decision, clock_of))
    ranks, by_rank = K.asof_ranks(series, known, period, decision, clock_of)
    np.testing.assert_array_equal(got_p, K.take_ranked(period[by_rank], ranks, fill=K.NAT))


@SETTINGS
@given(bitemporal(), st.integers(0, 11), st.randoms(use_true_random=False))
def test_values_known_after_decision_cannot_change_panel(case, cut, rnd):
    series, period, known, values, decision, clock_of = case
    cut = min(cut, decision.shape[0] - 1)
    before = K.take_or_nan(values, K.asof_index(series, known, period, decision, clock_of))
    horizon = decision[cut, clock_of[series]]                 # each event's own clock
    late = known > horizon
    values2, period2, known2 = values.copy(), period.copy(), known.copy()
    for i in np.flatnonzero(late):
        values2[i] = rnd.uniform(-1e9, 1e9)
        period2[i] = rnd.randint(-3, 10)
        known2[i] = horizon[i] + rnd.randint(1, 500)           # still after the decision
    after = K.take_or_nan(values2, K.asof_index(series, known2, period2, decision, clock_of))
    np.testing.assert_array_equal(after[:cut + 1], before[:cut + 1])


def test_restatement_does_not_displace_newer_period():
    # series 0: Q1 (period 1) at t=10 -> 100; Q2 at t=20 -> 200; Q1 restated at t=30 -> 110;
    # Q2 restated at t=40 -> 210
    series = np.zeros(4, dtype=np.intp)
    known = np.array([10, 20, 30, 40])
    period = np.array([1, 2, 1, 2])
    values = np.array([100.0, 200.0, 110.0, 210.0])
    decision = np.array([[5], [10], [25], [30], [39], [45]])
    got = K.take_or_nan(values, K.asof_index(series, known, period, decision, np.array([0])))
    assert got[:, 0].tolist()[1:] == [100.0, 200.0, 200.0, 200.0, 210.0]
    assert np.isnan(got[0, 0])


@st.composite
def bars(draw):
    n, m = draw(st.integers(1, 15)), draw(st.integers(1, 3))
    close = np.array(draw(st.lists(st.one_of(st.floats(1, 1000), st.just(np.nan)),
                                   min_size=n * m, max_size=n * m))).reshape(n, m)
    split = np.array(draw(st.lists(st.sampled_from([1.0, 1.0, 1.0, 2.0, 0.5, 5.0]),
                                   min_size=n * m, max_size=n * m))).reshape(n, m)
    div = np.array(draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.5, 0.25]),
                                 min_size=n * m, max_size=n * m))).reshape(n, m)
    return close, split, div


def reference_returns(close, split, div):
    """Loop: walk each asset, carrying the share count and cash since the last bar."""
    out = np.full(close.shape, np.nan)
    for j in range(close.shape[1]):
        prev, shares, cash = None, 1.0, 0.0
        for t in range(close.shape[0]):
            shares *= split[t, j]
            cash += div[t, j] * shares
            if np.isnan(close[t, j]):
                continue
            if prev is not None:
                out[t, j] = (close[t, j] * shares + cash) / prev - 1.0
            prev, shares, cash = close[t, j], 1.0, 0.0
    return out


@SETTINGS
@given(bars())
def test_total_returns_match_loop_reference(case):
    close, split, div = case
    np.testing.assert_allclose(K.total_returns(close, split, div),
                               reference_returns(close, split, div), rtol=1e-9, atol=1e-12)


def test_total_returns_hand_computed():
    close = np.array([[100.0], [52.0], [50.0]])
    split = np.array([[1.0], [2.0], [1.0]])
    div = np.array([[0.0], [0.0], [2.0]])
    r = K.total_returns(close, split, div)[:, 0]
    # 2:1 split: 2 * 52 / 100 - 1 = 0.04; dividend: (50 + 2) / 52 - 1 = 0
    assert np.isnan(r[0]) and r[1] == np.float64(2 * 52 / 100 - 1) and r[2] == 0.0


@SETTINGS
@given(bars())
def test_adj_close_ratios_are_total_returns(case):
    close, split, div = case
    adj = close * K.adjustment_factor(close, split, div)
    r = K.total_returns(close, split, div)
    prev = K.previous_valid_index(np.isfinite(close))
    cols = np.broadcast_to(np.arange(close.shape[1]), close.shape)
    ratio = adj / adj[np.maximum(prev, 0), cols] - 1.0
    ok = np.isfinite(r)
    np.testing.assert_allclose(ratio[ok], r[ok], rtol=1e-9, atol=1e-12)
    last = K._last_valid(close)
    last_adj = K._last_valid(adj)
    np.testing.assert_allclose(last_adj, last, rtol=1e-12)


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 4), st.data())
def test_restamp_never_forward_fills_and_respects_decision(n, m, data):
    known = np.array(data.draw(st.lists(st.integers(0, 300), min_size=n * m, max_size=n * m)),
                     dtype=np.int64).reshape(n, m)
    known = np.sort(known, axis=0)
    missing = np.array(data.draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m))
                       ).reshape(n, m)
    known[missing] = K.NAT
    decision = np.arange(0, 320, 20, dtype=np.int64)[:, None]
    target = K.restamp_index(known, decision, np.zeros(m, dtype=np.intp))
    vals = np.arange(n * m, dtype=float).reshape(n, m)
    grid = K.scatter_rows(vals, target, decision.shape[0])
    assert np.isfinite(grid).sum() <= (~missing).sum()
    for i, j in zip(*np.nonzero(target >= 0), strict=True):
        d = target[i, j]
        assert decision[d, 0] >= known[i, j]
        assert d == 0 or decision[d - 1, 0] < known[i, j]
    assert np.all(target[missing] == -1)


def test_base_returns_hand_computed():
    r = np.array([[np.nan], [0.10], [np.nan], [0.0]])
    bar = np.array([[True], [True], [False], [True]])
    fx = np.array([[1.0], [1.1], [1.2], [1.21]])
    out = K.base_returns(r, fx, bar)[:, 0]
    assert np.isnan(out[0]) and np.isnan(out[2])
    np.testing.assert_allclose(out[[1, 3]], [1.1 * 1.1 - 1, 1.21 / 1.1 - 1])
