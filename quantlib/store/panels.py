"""Long canonical frames <-> per-market (date, asset) panels.

The pivot kernels work on plain numpy (integer codes -> 2-D arrays); pandas and
xarray only appear at the edges. A market's panel has one row per session of that
market between its first and last bar (plus any bar date off the calendar, so nothing
is lost) and one column per asset of that market.

Variables: ``open high low close volume`` (float64, NaN where no bar), ``split`` (new
shares per old share on the ex date, 1.0 otherwise), ``dividend`` (cash per share on the
ex date, 0.0 otherwise), ``returns`` (total return in local currency from the asset's
previous bar: ``split * (close + dividend) / previous_close - 1``) and ``known_at``
(int64 nanoseconds since the epoch, UTC; ``-2**63`` = NaT where no bar).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from quantlib import calendars
from quantlib.errors import StoreError

__all__ = ["PRICE_VARS", "NAT_INT", "prices_to_panels", "fx_to_panel", "panel_to_prices",
           "panel_to_fx", "previous_valid", "total_returns", "ns_values", "market_dates",
           "actions_grid"]

PRICE_VARS = ("open", "high", "low", "close", "volume")
NAT_INT = np.iinfo(np.int64).min


def ns_values(values: pd.Series | pd.Index) -> np.ndarray:
    """Naive datetime64[ns] array (drops a UTC zone after converting)."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").to_numpy()


def previous_valid(values: np.ndarray) -> np.ndarray:
    """Last non-NaN value strictly before each row, per column (NaN if none).

    Examples
    --------
    >>> previous_valid(np.array([[1.0], [np.nan], [3.0], [4.0]])).ravel().tolist()
    [nan, 1.0, 1.0, 3.0]
    """
    n = values.shape[0]
    valid = ~np.isnan(values)
    pos = np.where(valid, np.arange(n)[:, None], -1)
    last = np.maximum.accumulate(pos, axis=0)
    prev = np.full_like(last, -1)
    prev[1:] = last[:-1]
    out = np.take_along_axis(values, np.maximum(prev, 0), axis=0)
    return np.where(prev >= 0, out, np.nan)


def total_returns(close: np.ndarray, split: np.ndarray, dividend: np.ndarray) -> np.ndarray:
    """Total return from the previous bar: ``split * (close + dividend) / prev - 1``.

    Examples
    --------
    >>> c = np.array([[10.0], [5.5], [6.0]])
    >>> s = np.array([[1.0], [2.0], [1.0]])
    >>> d = np.array([[0.0], [0.0], [0.3]])
    >>> np.round(total_returns(c, s, d).ravel(), 4).tolist()
    [nan, 0.1, 0.1455]
    """
    prev = previous_valid(close)
    with np.errstate(divide="ignore", invalid="ignore"):
        return split * (close + dividend) / prev - 1.0


def market_dates(market: str, bar_dates: np.ndarray) -> pd.DatetimeIndex:
    """A market's panel dates for some bar dates: its sessions from the first to the
    last bar, plus any bar date off the calendar."""
    if len(bar_dates) == 0:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    first, last = bar_dates.min(), bar_dates.max()
    sessions = calendars.sessions(market, first, last)
    return pd.DatetimeIndex(sessions).as_unit("ns").union(
        pd.DatetimeIndex(np.unique(bar_dates)).as_unit("ns"))


def actions_grid(actions: pd.DataFrame, dates: pd.DatetimeIndex, assets: pd.Index
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Split and dividend grids over ``dates`` x ``assets``; an ex date off the grid
    moves to the next date (after the last date: dropped)."""
    split = np.ones((len(dates), len(assets)))
    dividend = np.zeros((len(dates), len(assets)))
    if actions.empty or len(dates) == 0:
        return split, dividend
    col = assets.get_indexer(actions["asset_id"])
    row = np.searchsorted(dates.to_numpy(), ns_values(actions["ex_date"]), side="left")
    keep = (col >= 0) & (row < len(dates))
    kind = actions["kind"].to_numpy()[keep]
    value = actions["value"].to_numpy(dtype="float64")[keep]
    r, c = row[keep], col[keep]
    is_split = kind == "split"
    np.multiply.at(split, (r[is_split], c[is_split]), value[is_split])
    is_div = kind == "dividend"
    np.add.at(dividend, (r[is_div], c[is_div]), value[is_div])
    return split, dividend


def _market_panel(market: str, bar_dates: np.ndarray, col: np.ndarray,
                  values: dict[str, np.ndarray], known: np.ndarray, actions: pd.DataFrame,
                  assets: pd.Index) -> xr.Dataset:
    """One market's panel from its bars (dates, asset column codes, value columns)."""
    dates = market_dates(market, bar_dates)
    row = np.searchsorted(dates.to_numpy(), bar_dates)
    shape = (len(dates), len(assets))
    taken = np.zeros(shape, dtype=bool)
    taken[row, col] = True
    if int(taken.sum()) != len(bar_dates):
        counts = np.zeros(shape, dtype=np.int64)
        np.add.at(counts, (row, col), 1)
        r, c = np.argwhere(counts > 1)[0]
        raise StoreError("prices must hold one bar per (asset_id, date)",
                         found="duplicate bars", fix="deduplicate in validation first",
                         market=market, asset=str(assets[c]), date=str(dates[r].date()))
    data: dict[str, tuple[tuple[str, str], np.ndarray]] = {}
    for var in PRICE_VARS:
        grid = np.full(shape, np.nan)
        grid[row, col] = values[var]
        data[var] = (("date", "asset"), grid)
    known_grid = np.full(shape, NAT_INT, dtype="int64")
    known_grid[row, col] = known
    split, dividend = actions_grid(actions, dates, assets)
    data["split"] = (("date", "asset"), split)
    data["dividend"] = (("date", "asset"), dividend)
    data["returns"] = (("date", "asset"), total_returns(data["close"][1], split, dividend))
    data["known_at"] = (("date", "asset"), known_grid)
    ds = xr.Dataset(data, coords={"date": dates.to_numpy(),
                                  "asset": np.asarray(assets, dtype=str)})
    ds["known_at"].attrs["description"] = "ns since 1970-01-01 UTC; -2**63 = no bar (NaT)"
    ds.attrs["market"] = market
    return ds


def prices_to_panels(prices: pd.DataFrame, assets: pd.DataFrame,
                     corporate_actions: pd.DataFrame | None = None) -> dict[str, xr.Dataset]:
    """Pivot canonical long prices into one (date, asset) Dataset per market.

    ``assets`` (canonical ``assets`` frame) maps each asset to its market; every asset of
    a market gets a column even without bars. The asset ids are hashed once
    (``pd.factorize``); everything after works on integer codes.

    Raises
    ------
    StoreError
        If a bar's asset is missing from ``assets``, or an (asset, date) repeats.
    """
    market_of = pd.Series(assets["market"].astype(str).to_numpy(),
                          index=assets["asset_id"].astype(str).to_numpy())
    market_of = market_of[~market_of.index.duplicated(keep="last")]
    codes, uniques = pd.factorize(prices["asset_id"])
    uniques = pd.Index(np.asarray(uniques, dtype=object).astype(str))
    unique_market = market_of.reindex(uniques)
    if unique_market.isna().any():
        raise StoreError("every priced asset must be in the assets table",
                         found="no assets row", fix="commit the assets frame with the prices",
                         asset=str(uniques[unique_market.isna().to_numpy()][0]))
    actions = corporate_actions if corporate_actions is not None else pd.DataFrame(
        {"asset_id": [], "ex_date": pd.DatetimeIndex([]), "kind": [], "value": []})
    bar_dates = ns_values(prices["date"])
    known = ns_values(prices["known_at"]).view("int64")
    values = {var: prices[var].to_numpy(dtype="float64") for var in PRICE_VARS}
    bar_market = unique_market.to_numpy()[codes]
    out: dict[str, xr.Dataset] = {}
    for market in sorted(set(unique_market)):
        ids = pd.Index(sorted(market_of.index[market_of.to_numpy() == market]))
        sel = np.flatnonzero(bar_market == market)
        col = ids.get_indexer(uniques)[codes[sel]]
        out[market] = _market_panel(market, bar_dates[sel], col,
                                    {v: a[sel] for v, a in values.items()}, known[sel],
                                    actions, ids)
    return out


def fx_to_panel(fx: pd.DataFrame) -> xr.Dataset:
    """Pivot canonical FX rows into a (date, currency) Dataset with ``rate`` and ``known_at``."""
    dates = pd.DatetimeIndex(np.unique(ns_values(fx["date"])))
    currencies = pd.Index(sorted(fx["currency"].astype(str).unique()))
    row = dates.get_indexer(ns_values(fx["date"]))
    col = currencies.get_indexer(fx["currency"].astype(str))
    rate = np.full((len(dates), len(currencies)), np.nan)
    rate[row, col] = fx["rate"].to_numpy(dtype="float64")
    known = np.full(rate.shape, NAT_INT, dtype="int64")
    known[row, col] = ns_values(fx["known_at"]).view("int64")
    return xr.Dataset({"rate": (("date", "currency"), rate),
                       "known_at": (("date", "currency"), known)},
                      coords={"date": dates.to_numpy(),
                              "currency": np.asarray(currencies, dtype=str)})


def _stack(ds: xr.Dataset, key: str, cols: tuple[str, ...], other: str) -> pd.DataFrame:
    present = ~np.isnan(np.asarray(ds[key].values))
    r, c = np.nonzero(present)
    out = {other: np.asarray(ds[other].values)[c].astype(str),
           "date": np.asarray(ds["date"].values)[r].astype("datetime64[ns]")}
    for var in cols:
        out[var] = np.asarray(ds[var].values)[r, c]
    known = np.asarray(ds["known_at"].values)[r, c].astype("int64").view("datetime64[ns]")
    frame = pd.DataFrame(out)
    frame[other] = frame[other].astype("str")
    frame["known_at"] = pd.DatetimeIndex(known).tz_localize("UTC")
    return frame


def panel_to_prices(ds: xr.Dataset) -> pd.DataFrame:
    """Back from a market panel to canonical long prices (bars where ``close`` exists),
    sorted by asset then date."""
    frame = _stack(ds, "close", PRICE_VARS, "asset").rename(columns={"asset": "asset_id"})
    frame = frame[["asset_id", "date", *PRICE_VARS, "known_at"]]
    return frame.sort_values(["asset_id", "date"], kind="stable").reset_index(drop=True)


def panel_to_fx(ds: xr.Dataset) -> pd.DataFrame:
    """Back from the FX panel to canonical long FX rows, sorted by date then currency."""
    frame = _stack(ds, "rate", ("rate",), "currency")
    frame = frame[["date", "currency", "rate", "known_at"]]
    return frame.sort_values(["date", "currency"], kind="stable").reset_index(drop=True)
