"""Shared inputs for the backtest tests: synthetic panels and the real bokeh sample prices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from quantlib.backtest.synthetic import make_dataset


@pytest.fixture(scope="session")
def panel() -> xr.Dataset:
    """Three markets with holidays, listings and delistings (about 2.4 years)."""
    return make_dataset(n_assets=40, n_days=600, seed=7, markets=("US", "KR", "EU"))


@pytest.fixture(scope="session")
def small_panel() -> xr.Dataset:
    return make_dataset(n_assets=12, n_days=320, seed=11, markets=("US",))


def bokeh_returns() -> pd.DataFrame:
    """Daily total returns (from adj_close) of AAPL, GOOG, IBM, MSFT, FB (real prices)."""
    import bokeh_sampledata.stocks as stocks

    out = {}
    for sym in ("AAPL", "GOOG", "IBM", "MSFT", "FB"):
        d = getattr(stocks, sym)
        s = pd.Series(d["adj_close"], index=pd.DatetimeIndex(d["date"]), dtype=float)
        out[sym] = s.sort_index().pct_change().iloc[1:]
    return pd.DataFrame(out)


@pytest.fixture(scope="session")
def real_returns() -> pd.DataFrame:
    return bokeh_returns()


def bokeh_dataset() -> xr.Dataset:
    """The bokeh sample prices as a backtest Dataset (union of dates, NaN where absent)."""
    import bokeh_sampledata.stocks as stocks

    frames = {}
    for sym in ("AAPL", "GOOG", "IBM", "MSFT", "FB"):
        d = getattr(stocks, sym)
        frames[sym] = pd.DataFrame({k: d[k] for k in ("open", "close", "volume", "adj_close")},
                                   index=pd.DatetimeIndex(d["date"], name="date")).sort_index()
    dates = sorted(set().union(*[f.index for f in frames.values()]))
    idx = pd.DatetimeIndex(dates, name="date")
    ds = {}
    for var in ("open", "close", "volume"):
        ds[var] = pd.DataFrame({s: f[var].reindex(idx) for s, f in frames.items()})
    adj = pd.DataFrame({s: f["adj_close"] for s, f in frames.items()}).reindex(idx)
    ds["returns"] = adj / adj.ffill().shift(1) - 1
    ds["returns"] = ds["returns"].where(adj.notna())
    arr = {k: (("date", "asset"), v.to_numpy(float)) for k, v in ds.items()}
    return xr.Dataset(arr, coords={"date": idx, "asset": list(frames),
                                   "market": ("asset", ["US"] * 5),
                                   "sector": ("asset", ["tech"] * 5)},
                      attrs={"snapshot": "bokeh-sampledata-stocks"})


@pytest.fixture(scope="session")
def real_panel() -> xr.Dataset:
    return bokeh_dataset()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def catalog_store(tmp_path_factory) -> str:
    """A real Icechunk store holding one sandbox delivery (as tests/catalog builds it)."""
    from quantlib.sandbox import generate
    from quantlib.store import CuratedStore

    truth = generate(n_assets=24, years=2, seed=11)
    url = str(tmp_path_factory.mktemp("catalog-store"))
    CuratedStore(url).commit({k: getattr(truth, k) for k in (
        "assets", "symbols", "prices", "corporate_actions", "fx", "statements")},
        message="sandbox truth", tag="v1")
    return url
