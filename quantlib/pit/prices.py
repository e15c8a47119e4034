"""PIT price and FX panels on the global session grid.

Steps of :func:`build_prices`, per market:

1. On the market's own sessions (rows up to ``end``), compute total ``returns`` from the
   unadjusted close, splits and cash dividends (:func:`~quantlib.pit.kernels.total_returns`)
   and the back-adjustment factor as of ``end``
   (:func:`~quantlib.pit.kernels.adjustment_factor`).
2. Re-stamp every bar onto the first global date whose decision time (the asset's clock)
   is at or after the bar's ``known_at`` (:func:`~quantlib.pit.kernels.restamp_index`);
   dates no bar lands on stay NaN (never forward-filled).
3. ``returns_base`` = local return times the change of the FX rate known at the decision
   time, between the asset's previous bar and this one (on the global grid).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from quantlib import calendars
from quantlib.config import load_config
from quantlib.markets import DEFAULT_MARKETS
from quantlib.pit import kernels as K
from quantlib.pit.frames import PRICE_VARS, as_panels, fx_panel
from quantlib.pit.grid import Grid, make_grid

__all__ = ["build_prices", "build_fx", "fx_asof", "finish"]


def _currency_clock(grid: Grid, currency: str) -> int:
    """Clock column an FX rate is judged on: the currency's home market if on the grid."""
    for code, m in calendars.MARKETS.items():
        if m.currency == currency and code in grid.clocks:
            return grid.clock_of(code)
    return 0


def fx_asof(fx: pd.DataFrame | xr.Dataset, grid: Grid, currencies: list[str],
            clocks: np.ndarray, base_currency: str) -> np.ndarray:
    """Rate of each requested (currency, clock) known at each grid decision time.

    Returns an array ``(n_dates, len(currencies))``; the base currency is 1.0 and a
    currency with no rate known yet is NaN.
    """
    panel = fx_panel(fx)
    have = [str(c) for c in panel["currency"].values]
    rate = np.asarray(panel["rate"].values, dtype=np.float64)
    known = np.asarray(panel["known_at"].values).astype(np.int64)
    out = np.full((len(grid.dates), len(currencies)), np.nan)
    for j, (cur, clk) in enumerate(zip(currencies, clocks, strict=True)):
        if cur == base_currency:
            out[:, j] = 1.0
        elif cur in have:
            k = have.index(cur)
            ok = np.isfinite(rate[:, k]) & (known[:, k] != K.NAT)
            pos = K.asof_index(np.zeros(int(ok.sum()), np.intp), known[ok, k], known[ok, k],
                               grid.decision_times, np.array([clk]))
            out[:, j] = K.take_or_nan(rate[ok, k], pos[:, 0])
    return out


def build_fx(fx: pd.DataFrame | xr.Dataset, assets: pd.DataFrame, *,
             markets=DEFAULT_MARKETS, start=None, end=None, decision_clock: str = "own",
             offset_minutes: int | None = None, base_currency: str | None = None
             ) -> xr.Dataset:
    """FX rates known at each decision time, dims ``(date, currency)``.

    ``rate`` is base-currency units per unit of ``currency``. With the ``"own"`` clock a
    currency is judged on its home market's clock (KRW: KR, EUR: EU, USD: US).

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["KR1"], "market": ["KR"], "currency": ["KRW"],
    ...     "sector": ["x"], "listed": pd.to_datetime(["2000-01-03"]),
    ...     "delisted": pd.to_datetime([None])})
    >>> f = pd.DataFrame({"date": pd.to_datetime(["2024-03-04", "2024-03-05"]),
    ...     "currency": "KRW", "rate": [0.00075, 0.00076],
    ...     "known_at": pd.to_datetime(["2024-03-04 06:00", "2024-03-05 08:00"], utc=True)})
    >>> ds = build_fx(f, a, markets=["KR"], start="2024-03-04", end="2024-03-06")
    >>> ds["rate"].sel(currency="KRW").values.tolist()   # KR decisions at 07:00 UTC
    [0.00075, 0.00075, 0.00076]
    """
    base_currency = base_currency or load_config()["base_currency"]
    grid = make_grid(assets, markets=markets, start=start, end=end,
                     decision_clock=decision_clock, offset_minutes=offset_minutes)
    currencies = sorted({calendars.MARKETS[m].currency for m in grid.markets} | {base_currency})
    clocks = np.array([_currency_clock(grid, c) for c in currencies])
    rate = fx_asof(fx, grid, currencies, clocks, base_currency)[grid.start_row:]
    ds = xr.Dataset({"rate": (("date", "currency"), rate)},
                    coords={"date": grid.dates[grid.start_row:].to_numpy(),
                            "currency": np.array(currencies, dtype=str)})
    ds["rate"].attrs.update(units=f"{base_currency} per unit of currency",
                            known_at="rate known at the decision time of each date")
    ds.attrs.update(decision_clock=decision_clock, base_currency=base_currency)
    return ds


def _market_block(panel: xr.Dataset, grid: Grid, end: pd.Timestamp,
                  convention: str = "total_return") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Columns of ``grid.assets`` this market fills, and its re-stamped variables."""
    panel = panel.sel(date=panel["date"] <= np.datetime64(end, "ns"))
    ids = [str(a) for a in panel["asset"].values]
    cols = grid.assets.index.get_indexer(ids)
    sel = cols >= 0
    take = {v: np.asarray(panel[v].values)[:, sel] for v in (*PRICE_VARS, "split", "dividend")}
    known = np.asarray(panel["known_at"].values).astype(np.int64)[:, sel]
    known = np.where(np.isfinite(take["close"]), known, K.NAT)
    take["returns"] = K.total_returns(take["close"], take["split"], take["dividend"],
                                      convention)
    take["adj_close"] = take["close"] * K.adjustment_factor(take["close"], take["split"],
                                                             take["dividend"])
    target = K.restamp_index(known, grid.decision_times, grid.asset_clock[cols[sel]])
    n = len(grid.dates)
    out = {v: K.scatter_rows(take[v], target, n) for v in (*PRICE_VARS, "adj_close", "returns")}
    return cols[sel], out


def build_prices(prices: pd.DataFrame | Mapping[str, xr.Dataset], assets: pd.DataFrame,
                 fx: pd.DataFrame | xr.Dataset, *, corporate_actions: pd.DataFrame | None = None,
                 symbols: pd.DataFrame | None = None, markets=DEFAULT_MARKETS, start=None,
                 end=None, decision_clock: str = "own", offset_minutes: int | None = None,
                 base_currency: str | None = None, returns_convention: str = "total_return"
                 ) -> xr.Dataset:
    """PIT prices on the global session grid, dims ``(date, asset)``.

    Parameters
    ----------
    prices : DataFrame or mapping of market -> Dataset
        Canonical ``prices`` rows, or the store's per-market panels
        (:mod:`quantlib.pit.frames` describes the layout).
    assets, symbols, corporate_actions : DataFrame
        Canonical frames (``corporate_actions`` only with a ``prices`` frame; panels
        carry ``split`` and ``dividend``).
    fx : DataFrame or Dataset
        Canonical FX rows or the store's FX panel.
    markets, start, end, decision_clock, offset_minutes, base_currency
        The panel's markets, date range (inclusive), clock (``"own"``, ``"KR"``, ``"US"``,
        ``"EU"``), decision offset after the close (config default) and base currency.
    returns_convention : {"total_return", "adj_close"}
        How a dividend enters ``returns`` (:data:`~quantlib.pit.kernels.RETURNS_CONVENTIONS`):
        ``(close + dividend) / prev_close - 1`` (default) or the vendors' adjusted-close
        ``close / (prev_close - dividend) - 1``; recorded in ``returns.attrs``.

    Returns
    -------
    xarray.Dataset
        ``open high low close volume adj_close returns returns_base fx_rate``; asset coords
        ``market currency sector symbol``. A bar sits on the first date whose decision
        time is at or after its ``known_at``; other cells are NaN. ``returns`` is the total
        return (splits and cash dividends on the ex date) from the asset's previous bar,
        in local currency; ``returns_base`` adds the change of the FX rate known at each
        decision time; ``fx_rate`` is that rate (base currency per unit of the asset's
        currency, 1 for the base currency, NaN before a rate is known). ``adj_close`` is
        back-adjusted with every split and dividend up to
        ``end`` (it uses adjustment events from after each date): backtest on ``returns``.

    Examples
    --------
    A KR close is known at the US decision the same day; a US close only at the next KR
    decision:

    >>> a = pd.DataFrame({"asset_id": ["KR1", "US1"], "market": ["KR", "US"],
    ...     "currency": ["KRW", "USD"], "sector": "x",
    ...     "listed": pd.to_datetime(["2000-01-03"] * 2), "delisted": pd.NaT})
    >>> p = pd.DataFrame({"asset_id": ["KR1", "US1"], "date": pd.to_datetime(["2024-03-05"] * 2),
    ...     "open": 1.0, "high": 1.0, "low": 1.0, "close": [70000.0, 100.0], "volume": 1.0,
    ...     "known_at": pd.to_datetime(["2024-03-05 06:45", "2024-03-05 21:15"], utc=True)})
    >>> f = pd.DataFrame({"date": pd.to_datetime(["2024-03-04"]), "currency": "KRW",
    ...     "rate": 0.00075, "known_at": pd.to_datetime(["2024-03-04 22:00"], utc=True)})
    >>> kw = dict(markets=["KR", "US"], start="2024-03-04", end="2024-03-06")
    >>> build_prices(p, a, f, decision_clock="US", **kw)["close"].values.tolist()
    [[nan, nan], [70000.0, 100.0], [nan, nan]]
    >>> build_prices(p, a, f, decision_clock="KR", **kw)["close"].values.tolist()
    [[nan, nan], [70000.0, nan], [nan, 100.0]]
    """
    base_currency = base_currency or load_config()["base_currency"]
    grid = make_grid(assets, symbols, markets=markets, start=start, end=end,
                     decision_clock=decision_clock, offset_minutes=offset_minutes)
    panels = as_panels(prices, assets, corporate_actions, grid.markets)
    shape = (len(grid.dates), len(grid.assets))
    names = (*PRICE_VARS, "adj_close", "returns")
    data = {v: np.full(shape, np.nan) for v in names}
    end_ts = grid.dates[-1] if len(grid.dates) else pd.Timestamp(end)
    for m in grid.markets:
        cols, block = _market_block(panels[m], grid, end_ts, returns_convention)
        for v in names:
            data[v][:, cols] = block[v]
    cur = grid.assets["currency"].astype(str).to_numpy()
    pairs = sorted({(c, k) for c, k in zip(cur, grid.asset_clock, strict=True)})
    rates = fx_asof(fx, grid, [c for c, _ in pairs], np.array([k for _, k in pairs]),
                    base_currency)
    col_of = {p: i for i, p in enumerate(pairs)}
    fx_grid = rates[:, [col_of[(c, k)] for c, k in zip(cur, grid.asset_clock, strict=True)]] \
        if len(cur) else np.zeros(shape)
    has_bar = np.isfinite(data["close"])
    data["returns_base"] = K.base_returns(data["returns"], fx_grid, has_bar)
    data["fx_rate"] = fx_grid.astype(float)  # base currency per unit, known at the decision
    ds = finish(data, grid, decision_clock=decision_clock, base_currency=base_currency)
    ds["returns"].attrs.update(
        convention=returns_convention, formula=K.RETURNS_CONVENTIONS[returns_convention],
        description="total return in local currency from the asset's previous bar; splits "
                    "and cash dividends on the ex date (docs/conventions.md)")
    return ds


def finish(data: dict[str, np.ndarray], grid: Grid, **attrs) -> xr.Dataset:
    """Wrap (date x asset) arrays into a Dataset on ``grid``, dropping the lookback rows."""
    r0 = grid.start_row
    a = grid.assets
    ds = xr.Dataset({k: (("date", "asset"), v[r0:]) for k, v in data.items()},
                    coords={"date": grid.dates[r0:].to_numpy(),
                            "asset": a.index.to_numpy(dtype=str),
                            "market": ("asset", a["market"].to_numpy(dtype=str)),
                            "currency": ("asset", a["currency"].to_numpy(dtype=str)),
                            "sector": ("asset", a["sector"].astype(str).to_numpy(dtype=str)),
                            "symbol": ("asset", a["symbol"].to_numpy(dtype=str))})
    ds.attrs.update({k: v for k, v in attrs.items() if v is not None})
    return ds
