"""Reader ``yahoo-csv``: Yahoo-style daily stock CSVs (the bokeh-sampledata stocks file).

Columns ``Ticker`` (optional: else the file name's stem), ``Date``, ``Open``, ``High``,
``Low``, ``Close``, ``Volume``, ``Adj Close``; the file may be gzip-compressed. Market
``US`` (XNYS, USD); the stable asset id is ``YAHOO:<ticker>`` (no ISIN in the file).

Corporate actions are derived from the adjustment factor ``f_t = adj_close_t / close_t``:
on each date the ratio ``r = f_t / f_{t-1}`` differs from 1 an action went ex that day.

1. ``r`` near a standard split ratio (2, 3, 3/2, 7, ... or their inverses) or
   ``r > 1.5`` / ``r < 1/1.5``: a split of ``r`` new shares per old share (rounded to the
   nearest fraction with a denominator of at most 10);
2. otherwise, when ``|r - 1| > DIVIDEND_TOLERANCE``: a cash dividend, inverted from the
   file's adjustment convention (:data:`ADJ_CONVENTION`):

   - ``"total_return"`` (the bokeh-sampledata / Quandl WIKI file): the Adj Close ratio is
     ``(close_t + dividend) / close_{t-1}``, so ``dividend = close_t * (r - 1)``
     (MSFT 2004-11-15: 3.08, its 3.00 special + 0.08 regular dividend);
   - ``"adj_close"`` (Yahoo's own factor ``1 - dividend / close_{t-1}``): the ratio is
     ``close_t / (close_{t-1} - dividend)``, so ``dividend = close_{t-1} * (1 - 1 / r)``.

Derived actions are known from the start of the ex date (local midnight, as UTC).

Returns: the PIT panels book the total return ``(close + dividend) / prev_close - 1`` on
the ex date (:func:`quantlib.pit.kernels.total_returns`, recorded in the ``returns``
variable's ``attrs``). With this file that equals the vendor's Adj Close returns. A user
who wants returns that match a Yahoo-style Adj Close, ``close / (prev_close - dividend) -
1`` (0.19 % more on MSFT's 3.08), builds prices with
``build_prices(..., returns_convention="adj_close")``. docs/conventions.md lists both.
"""

from __future__ import annotations

import gzip
from fractions import Fraction

import numpy as np
import pandas as pd

from quantlib.calendars import market as market_info
from quantlib.errors import StandardizeError
from quantlib.raw import Delivery
from quantlib.standardize.batch import CanonicalBatch, conform
from quantlib.standardize.common import (
    listed_known_at,
    midnight_utc,
    price_known_at,
    read_csv_text,
    to_date,
    to_float,
    unparsed,
)

__all__ = ["read_yahoo", "derive_actions", "YAHOO_COLUMNS", "SPLIT_RATIOS",
           "DIVIDEND_TOLERANCE", "ASSET_PREFIX", "ADJ_CONVENTION"]

YAHOO_COLUMNS = ["Date", "Open", "High", "Low", "Close", "Volume", "Adj Close"]
SPLIT_RATIOS = (5 / 4, 4 / 3, 3 / 2, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0)
DIVIDEND_TOLERANCE = 1e-5
ASSET_PREFIX = "YAHOO:"
#: how the files' Adj Close folds in a dividend (see the module docstring)
ADJ_CONVENTION = "total_return"


def read_yahoo(data: bytes, d: Delivery) -> CanonicalBatch:
    """Standardize one Yahoo-style CSV (plain or gzip).

    Examples
    --------
    >>> from quantlib.raw import Delivery
    >>> text = "Date,Open,High,Low,Close,Volume,Adj Close\\n"
    >>> text += "2005-02-25,89,89.5,88,88.99,100,22.0\\n2005-02-28,44.5,45,44,44.86,200,22.18\\n"
    >>> d = Delivery("drop", "US", "AAPL.csv", "yahoo-csv", "0" * 64, 0, 2,
    ...              pd.Timestamp("2013-03-02", tz="UTC"), "f", "raw/00/0")
    >>> b = read_yahoo(text.encode(), d)
    >>> b.prices["asset_id"].unique().tolist(), len(b.prices)
    (['YAHOO:AAPL'], 2)
    >>> b.corporate_actions[["kind", "value", "row"]].values.tolist()
    [['split', 2.0, 2]]
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    header = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    has_ticker = "Ticker" in [c.strip() for c in header.split(",")]
    expected = (["Ticker"] if has_ticker else []) + YAHOO_COLUMNS
    f = read_csv_text(data, d, encoding="utf-8", sep=",", expected=expected)
    if not has_ticker:
        stem = d.file.rsplit("/", 1)[-1].split(".", 1)[0]
        f["Ticker"] = stem.upper()
    f["asset_id"] = ASSET_PREFIX + f["Ticker"]
    dates = to_date(f["Date"], "%Y-%m-%d")
    prices = conform("prices", pd.DataFrame({
        "asset_id": f["asset_id"], "date": dates, "open": to_float(f["Open"]),
        "high": to_float(f["High"]), "low": to_float(f["Low"]), "close": to_float(f["Close"]),
        "volume": to_float(f["Volume"]), "known_at": price_known_at("US", dates),
        "source": f["source"], "file": f["file"], "row": f["row"]}))
    adj = to_float(f["Adj Close"])
    actions = [derive_actions(g, adj.loc[g.index]) for _, g in prices.groupby("asset_id",
                                                                               sort=False)]
    assets, symbols = _reference(prices, f["Ticker"])
    bad = unparsed("prices", f, prices, {"date": "Date", "open": "Open", "high": "High",
                                         "low": "Low", "close": "Close", "volume": "Volume"})
    return CanonicalBatch(assets=assets, symbols=symbols, prices=prices, unparsed=bad,
                          corporate_actions=conform("corporate_actions", pd.concat(actions))
                          if actions else CanonicalBatch.empty().corporate_actions)


def _reference(prices: pd.DataFrame, tickers: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = market_info("US")
    first = prices.sort_values("date", kind="stable").drop_duplicates("asset_id")
    listed = first["date"]
    assets = pd.DataFrame({
        "asset_id": first["asset_id"], "market": m.code, "mic": m.mic, "currency": m.currency,
        "sector": "", "name": tickers.loc[first.index], "listed": listed, "delisted": pd.NaT,
        "known_at": listed_known_at(listed), "source": first["source"],
        "file": first["file"], "row": first["row"]})
    symbols = pd.DataFrame({
        "asset_id": first["asset_id"], "symbol": tickers.loc[first.index], "valid_from": listed,
        "valid_to": pd.NaT, "source": first["source"], "file": first["file"],
        "row": first["row"]})
    return conform("assets", assets), conform("symbols", symbols)


def _split_value(r: float) -> float | None:
    for k in SPLIT_RATIOS:
        for cand in (k, 1 / k):
            if abs(r / cand - 1) < 5e-3:
                return float(Fraction(cand).limit_denominator(10))
    if r > 1.5 or r < 1 / 1.5:
        return float(Fraction(r).limit_denominator(10))
    return None


def derive_actions(prices: pd.DataFrame, adj_close: pd.Series,
                   convention: str = ADJ_CONVENTION) -> pd.DataFrame:
    """Splits and cash dividends of one asset from its close and adjusted close.

    Parameters
    ----------
    prices : DataFrame
        Canonical prices of one asset (with provenance), in date order.
    adj_close : Series
        Adjusted closes aligned with ``prices``.
    convention : {"total_return", "adj_close"}
        How the vendor's Adj Close folds in a dividend (see the module docstring).

    Examples
    --------
    >>> p = pd.DataFrame({"asset_id": "X", "date": pd.to_datetime(["2024-03-04",
    ...     "2024-03-05", "2024-03-06"]), "close": [100.0, 99.0, 50.0], "source": "s",
    ...     "file": "f", "row": [1, 2, 3]})
    >>> a = derive_actions(p, pd.Series([49.5, 49.5, 50.0]))
    >>> a[["kind", "value", "row"]].values.tolist()
    [['dividend', 1.0, 2], ['split', 2.0, 3]]

    A dividend of 10 (close 100 -> 95) as each convention adjusts it:

    >>> q = p.iloc[:2].assign(close=[100.0, 95.0])
    >>> [derive_actions(q, pd.Series(adj), c)["value"].tolist() for adj, c in
    ...  (([95 / 1.05, 95.0], "total_return"), ([90.0, 95.0], "adj_close"))]
    [[10.0], [10.0]]
    """
    if convention not in ("total_return", "adj_close"):
        raise StandardizeError("Adj Close convention must be 'total_return' or 'adj_close'",
                               found=repr(convention), fix="see quantlib.standardize.yahoo")
    order = prices.sort_values("date", kind="stable").index
    p = prices.loc[order]
    close = p["close"].to_numpy(dtype="float64")
    factor = adj_close.loc[order].to_numpy(dtype="float64") / close
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = factor[1:] / factor[:-1]
    rows = []
    for i in np.flatnonzero(np.isfinite(ratio) & (np.abs(ratio - 1) > DIVIDEND_TOLERANCE)):
        r = float(ratio[i])
        split = _split_value(r)
        paid = close[i + 1] * (r - 1) if convention == "total_return" else close[i] * (1 - 1 / r)
        kind, value = ("split", split) if split is not None else ("dividend",
                                                                  round(float(paid), 6))
        rows.append((i + 1, kind, value))
    idx = [p.index[j] for j, _, _ in rows]
    ex = p.loc[idx, "date"]
    return pd.DataFrame({
        "asset_id": p.loc[idx, "asset_id"], "ex_date": ex,
        "kind": [k for _, k, _ in rows], "value": [v for _, _, v in rows],
        "known_at": midnight_utc("US", ex) if len(ex) else pd.Series([], dtype="datetime64[ns, UTC]"),
        "source": p.loc[idx, "source"], "file": p.loc[idx, "file"], "row": p.loc[idx, "row"]})
