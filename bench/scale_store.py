"""A full-size US panel store for the read benchmark, written chunk by chunk.

The pipeline's full build at full size is being reworked elsewhere (#12 part 3), so the
read benchmark writes its store directly through the store's own writers: the long
tables with :func:`quantlib.store.tables.write_table`, the FX panel with
:func:`quantlib.store.panels.fx_to_panel`, and the price panel with the curated store's
panel writer (``_write_panel``: the pipeline's 128 dates x 512 assets chunks) given a
dask-backed Dataset, so it is generated and written one block of 512 assets at a time
(about 200 MB in flight per block, whatever the universe size). One commit, tagged.

Values are synthetic but shaped like the real thing: each asset is listed and delisted
on its own dates (NaN outside, ~45 % listed after the start or delisted before the end),
random halts (0.1 % of sessions without a bar), a random-walk close with splits and
quarterly dividends, open/high/low around it, log-normal volume, ``known_at`` = the
session's close + 15 min, and 0.05 % of bars corrected 1-5 sessions later (their
``known_at`` then), so the PIT re-stamping has work to do. ``returns`` is computed by the
store's own :func:`quantlib.store.panels.total_returns`.
"""

from __future__ import annotations

import time

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from quantlib import calendars
from quantlib.store import CuratedStore
from quantlib.store.curated import _PANEL_CHUNK_ASSETS, _write_panel
from quantlib.store.panels import NAT_INT, fx_to_panel, total_returns
from quantlib.store.tables import write_table

__all__ = ["write_us_store", "asset_frame"]

SECTORS = ("Energy", "Materials", "Industrials", "Financials", "Health Care", "Technology")


def asset_frame(n_assets: int, dates: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    """Canonical ``assets`` rows: ~55 % listed over the whole span, the rest listed
    and/or delisted inside it."""
    rng = np.random.default_rng(seed)
    n = len(dates)
    listed_row = np.where(rng.random(n_assets) < 0.7, 0, rng.integers(0, n - 20, n_assets))
    dead = rng.random(n_assets) < 0.3
    delisted_row = np.where(dead, np.minimum(listed_row + rng.integers(20, n, n_assets),
                                             n - 1), -1)
    ids = [f"US{i:010d}" for i in range(n_assets)]
    listed = dates[listed_row]
    # an asset listed at the start was listed before it (its first bar is the first row)
    listed = listed.where(listed_row > 0, dates[0] - pd.Timedelta(days=3650))
    delisted = pd.DatetimeIndex(np.where(delisted_row >= 0,
                                         dates[np.maximum(delisted_row, 0)].to_numpy(),
                                         np.datetime64("NaT")))
    return pd.DataFrame({
        "asset_id": ids, "market": "US", "mic": "XNYS", "currency": "USD",
        "sector": np.asarray(SECTORS)[rng.integers(0, len(SECTORS), n_assets)],
        "name": [f"Synthetic {i}" for i in range(n_assets)], "listed": listed,
        "delisted": delisted,
        "known_at": pd.Timestamp(dates[-1]).tz_localize("UTC") + pd.Timedelta(hours=22)})


def _block(seed: int, j: int, n_cols: int, listed_row: np.ndarray, delisted_row: np.ndarray,
           close_ns: np.ndarray) -> dict[str, np.ndarray]:
    """Every stored variable of one block of assets (all dates)."""
    rng = np.random.default_rng([seed, j])
    n = len(close_ns)
    rows = np.arange(n)[:, None]
    alive = (rows >= listed_row[None, :]) & ((delisted_row[None, :] < 0)
                                              | (rows <= delisted_row[None, :]))
    bar = alive & (rng.random((n, n_cols)) > 0.001)
    split = np.where(rng.random((n, n_cols)) < 0.0002, 2.0, 1.0)
    logp = np.cumsum(rng.normal(0.0003, 0.02, (n, n_cols)), axis=0) \
        + np.log(rng.uniform(5, 300, n_cols))[None, :] - np.cumsum(np.log(split), axis=0)
    close = np.where(bar, np.round(np.exp(logp), 2), np.nan)
    dividend = np.where(bar & (rows % 63 == (np.arange(n_cols) % 63)[None, :]),
                        np.round(close * 0.005, 4), 0.0)
    spread = np.abs(rng.normal(0, 0.01, (n, n_cols)))
    out = {"open": np.round(close * (1 + rng.normal(0, 0.005, (n, n_cols))), 2),
           "high": np.round(close * (1 + spread), 2), "low": np.round(close * (1 - spread), 2),
           "close": close,
           "volume": np.where(bar, np.round(rng.lognormal(11, 1.5, (n, n_cols))), np.nan),
           "split": split, "dividend": dividend,
           "returns": total_returns(close, split, dividend)}
    lag = np.where(rng.random((n, n_cols)) < 0.0005, rng.integers(1, 6, (n, n_cols)), 0)
    known = close_ns[np.minimum(rows + lag, n - 1)] + 15 * 60 * 10**9
    out["known_at"] = np.where(bar, known, NAT_INT).astype("int64")
    return out


def _lazy_panel(assets: pd.DataFrame, dates: pd.DatetimeIndex, seed: int) -> xr.Dataset:
    """The US panel as dask arrays, one (all dates x 512 assets) block per task."""
    closes = calendars.session_closes("US", dates)
    close_ns = pd.DatetimeIndex(closes).tz_convert("UTC").tz_localize(None) \
        .as_unit("ns").to_numpy().view("int64")
    listed_row = np.searchsorted(dates.to_numpy(), pd.DatetimeIndex(assets["listed"]).to_numpy())
    dl = pd.DatetimeIndex(assets["delisted"])
    delisted_row = np.where(dl.isna(), -1, np.searchsorted(dates.to_numpy(), dl.to_numpy()))
    n, w = len(dates), _PANEL_CHUNK_ASSETS
    names = ("open", "high", "low", "close", "volume", "split", "dividend", "returns",
             "known_at")
    parts: dict[str, list[da.Array]] = {v: [] for v in names}
    for j, a0 in enumerate(range(0, len(assets), w)):
        a1 = min(a0 + w, len(assets))
        blk = dask.delayed(_block, pure=True)(seed, j, a1 - a0, listed_row[a0:a1],
                                               delisted_row[a0:a1], close_ns)
        for v in names:
            dtype = np.int64 if v == "known_at" else np.float64
            parts[v].append(da.from_delayed(blk[v], (n, a1 - a0), dtype=dtype))
    ds = xr.Dataset({v: (("date", "asset"), da.concatenate(p, axis=1)) for v, p in parts.items()},
                    coords={"date": dates.to_numpy(),
                            "asset": assets["asset_id"].to_numpy(dtype=str)})
    ds["known_at"].attrs["description"] = "ns since 1970-01-01 UTC; -2**63 = no bar (NaT)"
    ds.attrs["market"] = "US"
    return ds


def write_us_store(url: str, n_assets: int = 14_000, years: int = 20, seed: int = 7,
                   end: str = "2025-12-31") -> dict[str, float]:
    """Write a US-only curated store of ``n_assets`` x ``years`` of sessions; one commit
    tagged ``scale``. Returns sizes and the write time."""
    t0 = time.perf_counter()
    stop = pd.Timestamp(end)
    dates = calendars.sessions("US", stop - pd.DateOffset(years=years) + pd.Timedelta(days=1),
                               stop)
    dates = pd.DatetimeIndex(dates).as_unit("ns")
    assets = asset_frame(n_assets, dates, seed)
    symbols = pd.DataFrame({"asset_id": assets["asset_id"],
                            "symbol": [f"S{i}" for i in range(n_assets)],
                            "valid_from": assets["listed"], "valid_to": pd.NaT})
    fx_dates = dates[-300:]
    fx = pd.DataFrame({"date": np.repeat(fx_dates, 2), "currency": ["EUR", "KRW"] * len(fx_dates),
                       "rate": [1.1, 0.00075] * len(fx_dates),
                       "known_at": pd.DatetimeIndex(np.repeat(fx_dates, 2)).tz_localize("UTC")
                       + pd.Timedelta(hours=22)})
    st = CuratedStore(url)
    session = st.repo.writable_session("main")
    root = zarr.open_group(session.store, mode="a")
    write_table(root, "assets", assets)
    write_table(root, "symbols", symbols)
    _write_panel(session, "fx", fx_to_panel(fx))
    with dask.config.set(scheduler="threads"):
        _write_panel(session, "prices/US", _lazy_panel(assets, dates, seed))
    snap = session.commit(f"synthetic US panel {n_assets} x {len(dates)}")
    st.repo.create_tag("scale", snap)
    return {"assets": n_assets, "dates": len(dates), "write_s": time.perf_counter() - t0}
