"""yahoo-csv on the real bokeh-sampledata stocks file (Quandl WIKI prices, 2000-2013)."""

from __future__ import annotations

import gzip
from pathlib import Path

import bokeh_sampledata
import pandas as pd
import pytest

from quantlib.raw import RawZone
from quantlib.sources import ingest_files
from quantlib.standardize import standardize
from quantlib.validate import validate

STOCKS = Path(bokeh_sampledata.__file__).parent / "_data" / "stocks.csv.gz"


@pytest.fixture(scope="module")
def yahoo(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    raw = RawZone(str(store))
    deliveries = ingest_files(str(STOCKS), "yahoo-csv", "US", raw=raw, fetch_id="y")
    return raw, deliveries, standardize(deliveries, raw)


def test_row_counts_equal_the_file(yahoo):
    raw, [d], b = yahoo
    text = gzip.decompress(STOCKS.read_bytes()).decode()
    lines = text.splitlines()[1:]
    assert d.rows == len(lines) == len(b.prices) == 12154
    per_ticker = pd.Series([line.split(",")[0] for line in lines]).value_counts().to_dict()
    got = b.prices["asset_id"].str.removeprefix("YAHOO:").value_counts().to_dict()
    assert got == per_ticker == {"AAPL": 3270, "IBM": 3270, "MSFT": 3270, "GOOG": 2148,
                                 "FB": 196}
    assert raw.get(d.sha256) == STOCKS.read_bytes()          # stored exactly as delivered
    first = b.prices.iloc[0]
    assert (first["asset_id"], first["date"], first["close"], first["row"]) == (
        "YAHOO:AAPL", pd.Timestamp("2000-03-01"), 130.31, 1)
    assert sorted(b.assets["asset_id"]) == ["YAHOO:AAPL", "YAHOO:FB", "YAHOO:GOOG",
                                            "YAHOO:IBM", "YAHOO:MSFT"]


def test_known_splits_detected(yahoo):
    _, _, b = yahoo
    ca = b.corporate_actions
    splits = ca[ca["kind"] == "split"][["asset_id", "ex_date", "value"]]
    got = [(a, str(d.date()), v) for a, d, v in splits.values.tolist()]
    # AAPL 2:1 in 2000 and 2005 (the 2014 7:1 split is after the data end, 2013-03-01);
    # MSFT 2:1 on 2003-02-18
    assert got == [("YAHOO:AAPL", "2000-06-21", 2.0), ("YAHOO:AAPL", "2005-02-28", 2.0),
                   ("YAHOO:MSFT", "2003-02-18", 2.0)]


def test_dividends_from_adj_close(yahoo):
    _, _, b = yahoo
    ca = b.corporate_actions
    aapl = ca[(ca["asset_id"] == "YAHOO:AAPL") & (ca["kind"] == "dividend")]
    # Apple's $2.65 quarterly dividends from Aug 2012 (derived within a cent or two)
    assert [str(d.date()) for d in aapl["ex_date"]] == ["2012-08-09", "2012-11-07",
                                                         "2013-02-07"]
    assert aapl["value"].between(2.55, 2.80).all()
    assert (ca["kind"] == "dividend").sum() > 80       # IBM and MSFT pay quarterly
    assert ca["known_at"].dt.tz is not None


def test_yahoo_batch_validates(yahoo):
    _, deliveries, b = yahoo
    out = validate(b, deliveries=deliveries)
    r = out.report
    assert r["reconciliation"]["mismatches"] == []
    # every big move in the sample is explained by a detected split
    assert r["by_check"].get("unexplained_jump", 0) == 0
    assert r["markets"]["US"]["bad_fraction"] < 0.01


@pytest.mark.parametrize(("convention", "expected"), [
    ("total_return", (27.39 + 3.08) / 29.97 - 1), ("adj_close", 27.39 / (29.97 - 3.08) - 1)])
def test_returns_conventions_on_msft_special_dividend(yahoo, convention, expected):
    """MSFT paid 3.08 (3.00 special + 0.08) on 2004-11-15. quantlib books
    (close + dividend) / prev_close - 1, which is this file's Adj Close convention too;
    the Yahoo-style option close / (prev_close - dividend) - 1 books 0.19 % more."""
    import numpy as np

    from quantlib.pit import build_prices
    from quantlib.standardize import CanonicalBatch

    _, _, b = yahoo
    ca = b.corporate_actions
    div = ca[(ca["asset_id"] == "YAHOO:MSFT") & (ca["ex_date"] == "2004-11-15")]
    assert div["value"].tolist() == [pytest.approx(3.08, abs=5e-3)]  # was 3.03 before
    ds = build_prices(b.prices, b.assets, CanonicalBatch.empty().fx, markets=["US"],
                      corporate_actions=ca, start="2000-03-01", end="2013-03-01",
                      base_currency="USD", returns_convention=convention)
    r = ds["returns"].sel(asset="YAHOO:MSFT").to_series()
    assert r.loc["2004-11-15"] == pytest.approx(expected, abs=2e-5)
    assert ds["returns"].attrs["convention"] == convention
    assert "prev_close" in ds["returns"].attrs["formula"]
    text = gzip.decompress(STOCKS.read_bytes()).decode()
    rows = [line.split(",") for line in text.splitlines()[1:] if line.startswith("MSFT,")]
    vendor = pd.Series([float(x[-1]) for x in rows],
                       index=pd.DatetimeIndex([x[1] for x in rows])).sort_index().pct_change()
    gap = (r - vendor.reindex(r.index)).abs()
    if convention == "total_return":   # the vendor's Adj Close returns, every day
        assert gap.max() < 5e-5
    else:
        assert gap.loc["2004-11-15"] == pytest.approx(0.0019, abs=1e-4)
    assert np.isfinite(r.iloc[1:]).all()
