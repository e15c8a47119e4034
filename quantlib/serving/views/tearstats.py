"""Relative statistics and risk tables of one result against its benchmark (display side).

The formulas live in :mod:`quantlib.backtest.metrics` (alpha, beta, information ratio,
VaR/CVaR, CAGR, volatility); this module applies them to what a tear sheet shows:

- :func:`relative_stats`: alpha, beta, information ratio, tracking error, up/down
  capture and correlation of daily net returns against a benchmark;
- :func:`worst_drawdowns`: the ``n`` deepest drawdown episodes (peak, trough, recovery,
  depth, length), as pyfolio's drawdown table;
- :func:`rolling_beta`: beta over a trailing window;
- :func:`return_distribution`: a histogram of daily returns with the VaR/CVaR marks;
- :func:`default_benchmark` / :func:`catalog_benchmark`: the benchmark a tear sheet uses,
  configurable per platform (``tearsheet_benchmark``): the result's own stored benchmark,
  the equal-weight universe, or the result's market index (capitalization-weighted)
  built from the catalog data the result was run on.

Conventions are empyrical's (the tests cross-check every value against empyrical-reloaded
and quantstats): 252 periods a year, zero risk-free rate, sample standard deviations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from quantlib.backtest import metrics as bm
from quantlib.errors import ConfigError

__all__ = ["relative_stats", "worst_drawdowns", "rolling_beta", "return_distribution",
           "equal_weight_index", "market_index", "catalog_benchmark", "default_benchmark",
           "asset_labels", "label_assets", "BENCHMARK_KINDS"]

#: what ``tearsheet_benchmark`` may say: the stored series first, then a catalog index
BENCHMARK_KINDS = ("auto", "stored", "equal_weight", "market", "none")


def _aligned(net: pd.Series, bench: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    both = pd.concat([net.rename("r"), bench.rename("b")], axis=1).dropna()
    return both["r"].to_numpy(float), both["b"].to_numpy(float)


def _capture(r: np.ndarray, b: np.ndarray, mask: np.ndarray, ppy: int) -> float:
    if not mask.any():
        return float("nan")
    denom = float(bm.cagr(b[mask], ppy))
    return float(bm.cagr(r[mask], ppy)) / denom if denom else float("nan")


def relative_stats(net: pd.Series, bench: pd.Series, periods_per_year: int = 252
                   ) -> dict[str, float]:
    """Alpha, beta, information ratio, tracking error, up/down capture, correlation.

    ``up_capture`` is the CAGR of the strategy over the benchmark's up days divided by
    the benchmark's CAGR over those days (empyrical ``up_capture``); ``down_capture``
    likewise over down days (below 1 means it lost less than the benchmark).
    ``tracking_error`` is the annualized sample standard deviation of the active return.

    Examples
    --------
    >>> idx = pd.bdate_range("2024-01-01", periods=4)
    >>> b = pd.Series([0.01, -0.02, 0.03, -0.01], index=idx)
    >>> s = relative_stats(2 * b, b)
    >>> round(s["beta"], 6), round(s["correlation"], 6), round(s["tracking_error"], 4)
    (2.0, 1.0, 0.352)
    """
    r, b = _aligned(net, bench)
    alpha, beta = bm.alpha_beta(r, b, 0.0, periods_per_year)
    active = r - b
    return {
        "alpha": alpha, "beta": beta,
        "information_ratio": bm.information_ratio(r, b, periods_per_year),
        "tracking_error": float(np.std(active, ddof=1) * np.sqrt(periods_per_year)),
        "up_capture": _capture(r, b, b > 0, periods_per_year),
        "down_capture": _capture(r, b, b < 0, periods_per_year),
        "correlation": float(np.corrcoef(r, b)[0, 1]),
    }


def _episodes(wealth: pd.Series) -> list[dict[str, Any]]:
    """Every drawdown episode of a wealth curve (first row: the starting capital)."""
    peak = wealth.cummax()
    under = (wealth / peak - 1.0) < 0
    out, start = [], None
    dates = wealth.index
    for i, u in enumerate(under.to_numpy()):
        if u and start is None:
            start = i - 1
        if start is not None and (not u or i == len(under) - 1):
            end = i if not u else None
            seg = wealth.iloc[start:(end if end is not None else i) + 1]
            trough = int(np.argmin(seg.to_numpy())) + start
            out.append({"peak": dates[start], "trough": dates[trough],
                        "recovery": dates[end] if end is not None else pd.NaT,
                        "depth": float(wealth.iloc[trough] / wealth.iloc[start] - 1.0),
                        "sessions": (end if end is not None else i) - start})
            start = None
    return out


def worst_drawdowns(net: pd.Series, n: int = 5) -> pd.DataFrame:
    """The ``n`` deepest drawdown episodes, deepest first (pyfolio's drawdown table).

    Columns: ``peak`` (last date at the high), ``trough``, ``recovery`` (first date back
    at the high, NaT if not yet), ``depth`` (fraction, < 0), ``sessions`` (peak to
    recovery, or to the last date while under water).

    Examples
    --------
    >>> idx = pd.bdate_range("2024-01-01", periods=6)
    >>> t = worst_drawdowns(pd.Series([0.1, -0.2, 0.3, -0.05, -0.05, 0.2], index=idx))
    >>> t["depth"].round(4).tolist(), t["sessions"].tolist()
    ([-0.2, -0.0975], [2, 3])
    """
    r = net.fillna(0.0)
    start = r.index[0] - pd.Timedelta(days=1) if len(r) else pd.Timestamp(0)
    wealth = pd.concat([pd.Series([1.0], index=[start]), (1.0 + r).cumprod()])
    table = pd.DataFrame(_episodes(wealth),
                         columns=["peak", "trough", "recovery", "depth", "sessions"])
    return table.sort_values("depth").head(n).reset_index(drop=True)


def rolling_beta(net: pd.Series, bench: pd.Series, window: int = 126) -> pd.Series:
    """Beta of ``net`` on ``bench`` over a trailing ``window`` of sessions (NaN before).

    Examples
    --------
    >>> idx = pd.bdate_range("2024-01-01", periods=5)
    >>> b = pd.Series([0.01, -0.02, 0.03, -0.01, 0.02], index=idx)
    >>> rolling_beta(0.5 * b, b, window=3).round(6).tolist()[2:]
    [0.5, 0.5, 0.5]
    """
    both = pd.concat([net.rename("r"), bench.rename("b")], axis=1)
    cov = both["r"].rolling(window).cov(both["b"])
    return (cov / both["b"].rolling(window).var()).rename("rolling beta")


def return_distribution(net: pd.Series, bins: int = 60, cutoff: float = 0.05
                        ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Histogram of daily returns (``left``, ``right``, ``count``) and the VaR/CVaR marks.

    Examples
    --------
    >>> hist, marks = return_distribution(pd.Series(np.linspace(-0.05, 0.05, 101)), bins=10)
    >>> int(hist["count"].sum()), round(marks["var"], 4), round(marks["cvar"], 4)
    (101, -0.045, -0.0475)
    """
    r = net.to_numpy(float)
    r = r[np.isfinite(r)]
    counts, edges = np.histogram(r, bins=bins)
    hist = pd.DataFrame({"left": edges[:-1], "right": edges[1:], "count": counts})
    return hist, {"var": bm.value_at_risk(r, cutoff),
                  "cvar": bm.conditional_value_at_risk(r, cutoff), "cutoff": cutoff}


def equal_weight_index(data: Any) -> pd.Series:
    """Equal-weight daily return of the assets in the universe on each date.

    ``data`` holds ``returns`` (date x asset) and optionally ``in_universe``; an asset
    counts on a date when it is in the universe and has a return.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"returns": (("date", "asset"), [[0.1, 0.3], [0.2, np.nan]])},
    ...                 coords={"date": pd.bdate_range("2024-01-01", periods=2),
    ...                         "asset": ["A", "B"]})
    >>> equal_weight_index(ds).round(4).tolist()
    [0.2, 0.2]
    """
    r = data["returns"]
    if "in_universe" in data:
        r = r.where(data["in_universe"].astype(bool))
    return r.mean("asset", skipna=True).to_series().rename("benchmark")


def market_index(data: Any) -> pd.Series:
    """Capitalization-weighted daily return: weights are yesterday's ``close`` x shares.

    Uses ``shares_outstanding`` (PIT fundamentals) where the data has it; otherwise, or
    where no asset has a capitalization yet, the equal-weight universe.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"returns": (("date", "asset"), [[0.0, 0.0], [0.1, 0.4]]),
    ...                  "close": (("date", "asset"), [[10.0, 10.0], [11.0, 14.0]]),
    ...                  "shares_outstanding": (("date", "asset"), [[3.0, 1.0]] * 2)},
    ...                 coords={"date": pd.bdate_range("2024-01-01", periods=2),
    ...                         "asset": ["A", "B"]})
    >>> round(float(market_index(ds).iloc[1]), 4)
    0.175
    """
    ew = equal_weight_index(data)
    if "shares_outstanding" not in data or "close" not in data:
        return ew
    cap = (data["close"] * data["shares_outstanding"]).shift(date=1)
    if "in_universe" in data:
        cap = cap.where(data["in_universe"].astype(bool))
    r = data["returns"]
    cap = cap.where(np.isfinite(r) & (cap > 0))
    weighted = ((r * cap).sum("asset") / cap.sum("asset")).to_series()
    return weighted.where(cap.sum("asset").to_series() > 0, ew).rename("benchmark")


def catalog_benchmark(meta: dict[str, Any], kind: str) -> pd.Series:
    """The ``kind`` index (``equal_weight`` or ``market``) over the data ``meta`` was run on.

    Reads the pinned snapshot and selection the result records (``meta["snapshot"]``,
    ``meta["data"]``) through :func:`quantlib.load_dataset`.

    Raises
    ------
    ConfigError
        If the result does not record the catalog selection it read.
    """
    selection, snapshot = meta.get("data"), meta.get("snapshot")
    if not isinstance(selection, dict) or not snapshot:
        raise ConfigError("a catalog benchmark needs the data selection the result read",
                          found=f"snapshot={snapshot!r}, data={selection!r}",
                          fix="use tearsheet_benchmark: stored, or publish a result computed "
                              "on quantlib.load_dataset(...)", field="tearsheet_benchmark")
    from quantlib.datasets import load_dataset

    data = load_dataset(snapshot=snapshot, compute=True, **selection)
    return (market_index if kind == "market" else equal_weight_index)(data)


def default_benchmark(meta: dict[str, Any], returns: pd.DataFrame, kind: str = "auto"
                      ) -> tuple[pd.Series | None, str]:
    """The benchmark a tear sheet shows for a result, and its label.

    ``kind``: ``stored`` (the ``benchmark`` column the result was saved with),
    ``equal_weight`` / ``market`` (built from the catalog, :func:`catalog_benchmark`),
    ``none``, or ``auto``: stored if the result has one, else the market index from the
    catalog when the result records its data selection, else none.

    Examples
    --------
    >>> r = pd.DataFrame({"net": [0.01], "benchmark": [0.02]},
    ...                  index=pd.bdate_range("2024-01-01", periods=1))
    >>> s, label = default_benchmark({}, r)
    >>> float(s.iloc[0]), label
    (0.02, 'benchmark stored with the result')
    >>> default_benchmark({}, r[["net"]])
    (None, 'no benchmark')
    """
    if kind not in BENCHMARK_KINDS:
        raise ConfigError("tearsheet_benchmark must be one of " + ", ".join(BENCHMARK_KINDS),
                          found=repr(kind), fix="set one of them in the platform config",
                          field="tearsheet_benchmark")
    stored = returns["benchmark"] if "benchmark" in returns else None
    if kind in ("auto", "stored") and stored is not None and stored.notna().any():
        return stored, "benchmark stored with the result"
    if kind == "auto":
        kind = "market" if isinstance(meta.get("data"), dict) and meta.get("snapshot") else "none"
    if kind in ("none", "stored"):
        return None, "no benchmark"
    bench = catalog_benchmark(meta, kind).reindex(returns.index)
    label = "market index (cap-weighted, catalog)" if kind == "market" else \
        "equal-weight universe (catalog)"
    return bench, label


def label_assets(asset_ids: list[str], assets: pd.DataFrame, symbols: pd.DataFrame
                 ) -> dict[str, str]:
    """``asset_id -> "SYMBOL · Name"`` from the canonical ``assets`` and ``symbols`` frames.

    The symbol is the latest one valid for the asset; an id the frames do not know keeps
    its id as label.

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["KR1"], "name": ["Samsung"]})
    >>> s = pd.DataFrame({"asset_id": ["KR1", "KR1"], "symbol": ["005930", "005931"],
    ...                   "valid_from": pd.to_datetime(["2020-01-01", "2024-01-01"])})
    >>> label_assets(["KR1", "X"], a, s)
    {'KR1': '005931 · Samsung', 'X': 'X'}
    """
    names = dict(zip(assets.get("asset_id", []), assets.get("name", []), strict=True))
    latest: dict[str, str] = {}
    if len(symbols):
        last = symbols.sort_values("valid_from").groupby("asset_id")["symbol"].last()
        latest = {str(k): str(v) for k, v in last.items()}
    out = {}
    for aid in asset_ids:
        parts = [p for p in (latest.get(aid), names.get(aid)) if isinstance(p, str) and p]
        out[aid] = " · ".join(parts) if parts else aid
    return out


def asset_labels(asset_ids: list[str], snapshot: str | None) -> dict[str, str]:
    """Labels (symbol and name) of ``asset_ids`` from the data version ``snapshot``.

    Results computed outside the catalog (no readable snapshot in the configured store)
    keep their ids as labels.
    """
    from quantlib.config import load_config
    from quantlib.errors import QuantlibError
    from quantlib.storage import resolve_location
    from quantlib.store import CuratedStore

    url = load_config().store_url
    fs, curated = resolve_location(url).open_fs("curated")
    if not snapshot or not fs.exists(curated):  # never create one here
        return {a: a for a in asset_ids}
    try:
        store = CuratedStore(url)
        assets = store.read_table("assets", snapshot)
        symbols = store.read_table("symbols", snapshot)
    except (QuantlibError, OSError, ValueError, KeyError, RuntimeError):
        return {a: a for a in asset_ids}
    return label_assets(asset_ids, assets, symbols)
