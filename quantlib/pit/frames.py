"""Canonical long frames -> the per-market panels the store keeps (same layout).

The PIT builders take either these panels (``CuratedStore.open_prices(market)``,
``CuratedStore.open_fx()``) or the canonical frames, which go through here first, so
both paths share one implementation.

Per-market price panel: dims ``(date, asset)`` on the market's sessions, variables
``open high low close volume`` (NaN where no bar), ``split`` (1.0 none), ``dividend``
(0.0 none) and ``known_at`` (int64 ns UTC, :data:`~quantlib.pit.kernels.NAT` where no
bar). An ex date off the market's sessions moves to its next session.
FX panel: dims ``(date, currency)``, ``rate`` and ``known_at``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from quantlib import calendars
from quantlib.errors import CatalogError
from quantlib.pit.grid import to_ns
from quantlib.pit.kernels import NAT

__all__ = ["market_panels", "fx_panel", "PRICE_VARS"]

PRICE_VARS = ("open", "high", "low", "close", "volume")


def _dates_of(market: str, bar_dates: np.ndarray) -> pd.DatetimeIndex:
    if bar_dates.size == 0:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    sess = calendars.sessions(market, pd.Timestamp(bar_dates.min()), pd.Timestamp(bar_dates.max()))
    return pd.DatetimeIndex(sess).as_unit("ns").union(
        pd.DatetimeIndex(np.unique(bar_dates)).as_unit("ns"))


def _actions(actions: pd.DataFrame | None, dates: pd.DatetimeIndex, assets: pd.Index
             ) -> tuple[np.ndarray, np.ndarray]:
    split = np.ones((len(dates), len(assets)))
    dividend = np.zeros((len(dates), len(assets)))
    if actions is None or actions.empty or len(dates) == 0:
        return split, dividend
    col = assets.get_indexer(actions["asset_id"].astype(str))
    row = np.searchsorted(dates.to_numpy(), pd.DatetimeIndex(actions["ex_date"]).as_unit("ns")
                          .to_numpy(), side="left")
    keep = (col >= 0) & (row < len(dates))
    kind = actions["kind"].to_numpy()[keep]
    value = actions["value"].to_numpy(dtype="float64")[keep]
    r, c = row[keep], col[keep]
    s, d = kind == "split", kind == "dividend"
    np.multiply.at(split, (r[s], c[s]), value[s])
    np.add.at(dividend, (r[d], c[d]), value[d])
    return split, dividend


def market_panels(prices: pd.DataFrame, assets: pd.DataFrame,
                  corporate_actions: pd.DataFrame | None = None,
                  markets: tuple[str, ...] | list[str] | None = None) -> dict[str, xr.Dataset]:
    """Pivot canonical ``prices`` (+ ``corporate_actions``) into one panel per market.

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["A"], "market": ["US"]})
    >>> p = pd.DataFrame({"asset_id": ["A", "A"], "date": pd.to_datetime(["2024-03-04",
    ...     "2024-03-06"]), "open": 1.0, "high": 1.0, "low": 1.0, "close": [10.0, 11.0],
    ...     "volume": 5.0, "known_at": pd.to_datetime(["2024-03-04 21:15",
    ...     "2024-03-06 21:15"], utc=True)})
    >>> ds = market_panels(p, a)["US"]
    >>> ds["close"].values[:, 0].tolist()
    [10.0, nan, 11.0]
    """
    asset_market = assets.drop_duplicates("asset_id", keep="last").set_index("asset_id")["market"]
    market_of = asset_market.reindex(prices["asset_id"].astype(str)).to_numpy()
    if pd.isna(market_of).any():
        bad = prices["asset_id"].to_numpy()[pd.isna(market_of)][0]
        raise CatalogError("every priced asset must be in the assets table",
                           found="no assets row", fix="add it to assets", asset=bad)
    out = {}
    for m in markets or sorted(asset_market.unique()):
        ids = pd.Index(sorted(asset_market.index[asset_market == m].astype(str)))
        sub = prices[market_of == m]
        acts = None if corporate_actions is None else corporate_actions[
            corporate_actions["asset_id"].astype(str).isin(ids)]
        out[m] = _one_market(m, sub, acts, ids)
    return out


def _one_market(market: str, prices: pd.DataFrame, actions: pd.DataFrame | None,
                ids: pd.Index) -> xr.Dataset:
    bar_dates = pd.DatetimeIndex(prices["date"]).as_unit("ns").to_numpy()
    dates = _dates_of(market, bar_dates)
    row = dates.get_indexer(bar_dates)
    col = ids.get_indexer(prices["asset_id"].astype(str))
    shape = (len(dates), len(ids))
    data = {}
    for var in PRICE_VARS:
        grid = np.full(shape, np.nan)
        grid[row, col] = prices[var].to_numpy(dtype="float64")
        data[var] = (("date", "asset"), grid)
    known = np.full(shape, NAT, dtype=np.int64)
    known[row, col] = to_ns(prices["known_at"])
    split, dividend = _actions(actions, dates, ids)
    data["split"] = (("date", "asset"), split)
    data["dividend"] = (("date", "asset"), dividend)
    data["known_at"] = (("date", "asset"), known)
    return xr.Dataset(data, coords={"date": dates.to_numpy(), "asset": ids.to_numpy(dtype=str)},
                      attrs={"market": market})


def fx_panel(fx: pd.DataFrame | xr.Dataset) -> xr.Dataset:
    """Pivot canonical FX rows into a ``(date, currency)`` panel (a panel passes through).

    Examples
    --------
    >>> f = pd.DataFrame({"date": pd.to_datetime(["2024-03-04"]), "currency": ["KRW"],
    ...     "rate": [0.00075], "known_at": pd.to_datetime(["2024-03-04 22:00"], utc=True)})
    >>> fx_panel(f)["rate"].values.tolist()
    [[0.00075]]
    """
    if isinstance(fx, xr.Dataset):
        return fx
    dates = pd.DatetimeIndex(np.unique(pd.DatetimeIndex(fx["date"]).as_unit("ns")))
    cur = pd.Index(sorted(fx["currency"].astype(str).unique()))
    row = dates.get_indexer(pd.DatetimeIndex(fx["date"]).as_unit("ns"))
    col = cur.get_indexer(fx["currency"].astype(str))
    rate = np.full((len(dates), len(cur)), np.nan)
    rate[row, col] = fx["rate"].to_numpy(dtype="float64")
    known = np.full(rate.shape, NAT, dtype=np.int64)
    known[row, col] = to_ns(fx["known_at"])
    return xr.Dataset({"rate": (("date", "currency"), rate),
                       "known_at": (("date", "currency"), known)},
                      coords={"date": dates.to_numpy(), "currency": cur.to_numpy(dtype=str)})


def as_panels(prices: pd.DataFrame | Mapping[str, xr.Dataset], assets: pd.DataFrame,
              corporate_actions: pd.DataFrame | None, markets: tuple[str, ...]
              ) -> dict[str, xr.Dataset]:
    """Per-market panels from either input form."""
    if isinstance(prices, Mapping):
        missing = [m for m in markets if m not in prices]
        if missing:
            raise CatalogError("a price panel is needed for every requested market",
                               found=f"none for {missing}", fix="drop the market from "
                               "markets or ingest it first", market=missing[0], field="markets")
        return {m: prices[m] for m in markets}
    return market_panels(prices, assets, corporate_actions, markets)
