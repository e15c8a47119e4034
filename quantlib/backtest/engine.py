"""``simulate`` (target weights -> Result) and ``run`` (strategy + params -> Result).

Timing: a target weight on row ``t`` is decided at session t's decision time from
data up to t. With ``execution="close"`` (default) it trades at t's close and
earns from t to the next session; with ``execution="open"`` it trades at the next
session's open (``open`` required) and earns from that open on. A session then has
two legs: overnight (previous close to open) and intraday (open to close, always the
clean ``close / open - 1``); a split or dividend going ex that session belongs to
whoever holds over its open, so it is booked in the overnight leg as the factor
``(1 + returns) * prev_close / close`` (= ``split * (1 + dividend / close)``) and a
buy-and-hold earns the same total return under both executions. Weights drift
between rebalances; assets with no bar on a session (holiday, not listed) cannot
trade that session and carry their weight with a zero return; assets outside the
PIT universe are never bought (their targets are set to 0); a delisted holding is
closed at its last close. Multi-market data is simulated in the base currency
through ``returns_base`` when present.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from quantlib.backtest import kernels
from quantlib.backtest.constraints import (
    constrain_rows,
    constraint_args,
    group_codes,
    rebalance_mask,
)
from quantlib.backtest.result import Result, ResultCache, to_jsonable
from quantlib.backtest.settings import Settings, resolve_settings, split_settings
from quantlib.errors import BacktestError, QuantlibWarning

__all__ = ["simulate", "run", "as_dataset", "strategy_weights", "data_address",
           "data_fingerprint", "data_selection", "SIM_DEFAULTS"]

#: the platform's default simulation settings, by name (see :class:`Settings`)
SIM_DEFAULTS: dict[str, Any] = {**Settings().as_params(), "costs": "default"}


def as_dataset(data: Any) -> xr.Dataset:
    """Accept an ``xarray.Dataset`` or a mapping of DataArrays; check ``close``/``returns``."""
    if isinstance(data, Mapping) and not isinstance(data, xr.Dataset):
        data = xr.Dataset(dict(data))
    if not isinstance(data, xr.Dataset):
        raise BacktestError("data must be an xarray.Dataset or a mapping of DataArrays",
                            found=type(data).__name__, fix="pass catalog prices or make_dataset()")
    for var in ("close", "returns"):
        if var not in data:
            raise BacktestError("backtest data must hold close and returns (date x asset)",
                                found=f"variables {sorted(map(str, data.data_vars))}",
                                fix="merge the catalog's prices entry", field=var)
    if data.sizes.get("date", 0) == 0 or data.sizes.get("asset", 0) == 0:
        attrs = {k: data.attrs[k] for k in ("markets", "start", "end") if k in data.attrs}
        raise BacktestError("backtest data must hold at least one session and one asset",
                            found=f"{data.sizes.get('date', 0)} dates x "
                                  f"{data.sizes.get('asset', 0)} assets {attrs or ''}".strip(),
                            fix="choose start/end (and markets) inside the store's history, "
                                "e.g. quantlib.load_dataset(start=..., end=...)")
    return data.transpose("date", "asset", ...)


def _np(data: xr.Dataset, name: str) -> np.ndarray | None:
    if name not in data:
        return None
    return np.asarray(data[name].values, dtype=float)


def simulate(target_weights: xr.DataArray, data: Any, *, strategy: str = "custom",
             source_hash: str | None = None, params: dict[str, Any] | None = None,
             settings: Settings | None = None, **kwargs: Any) -> Result:
    """Simulate a portfolio that trades to ``target_weights``; see the module docstring.

    Parameters
    ----------
    target_weights : xarray.DataArray
        ``(date, asset)`` weights decided on each row (NaN means 0).
    data : xarray.Dataset
        Per the backtest data contract (``close``, ``returns``; optional ``open``,
        ``volume``, ``in_universe``, ``returns_base``, coords ``market``/``sector``).
    settings : Settings, optional
        Resolved settings (:func:`~quantlib.backtest.settings.resolve_settings`);
        otherwise the keyword settings below are resolved (platform defaults under them).
    rebalance : {"D", "W", "M", "Q"} or int, default "D"
    execution : {"close", "open"}, default "close"
    costs : None, "default", "flat:<bps>", dict or CostModel, default "default"
        ``None`` is frictionless; the default model is
        :data:`quantlib.backtest.costs.DEFAULT_COSTS` (1 bp commission + 5 bps
        half-spread, square-root impact, 50 bps/yr borrow); ``"flat:10"`` is 10 bps per
        unit traded and nothing else; a dict changes fields of the default model.
    long_only, gross_leverage, net_leverage, max_weight, neutral
        See :class:`~quantlib.backtest.constraints.Constraints`.
    periods_per_year : int, default 252
    risk_free : float, default 0.0
        Per-period risk-free rate for Sharpe/Sortino.
    benchmark : str or pandas.Series, optional
        An asset id, ``"equal_weight"``, or a return series, for beta/alpha/IR.

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(5, 60, seed=2, markets=())
    >>> tw = ds["close"] * 0 + 0.2
    >>> res = simulate(tw, ds, costs=None)
    >>> res.returns.shape[0], round(float(res.weights.iloc[-1].sum()), 6)
    (60, 1.0)
    """
    data = as_dataset(data)
    if settings is not None and kwargs:
        raise BacktestError("pass settings as a Settings object or as keywords, not both",
                            found=", ".join(sorted(kwargs)), fix="fold them into settings")
    s = settings if settings is not None else resolve_settings(**kwargs)
    tw = target_weights.transpose("date", "asset")
    if tw.shape != data["close"].shape:
        raise BacktestError("target weights must be aligned with the data (date x asset)",
                            found=f"{tw.shape} vs data {data['close'].shape}",
                            fix="compute weights on the same Dataset")
    arrays = kernel_args(np.asarray(tw.values, dtype=float), prepare_static(data, s))
    no_weights = (*arrays, False)  # keep_weights=False: Result.weights is lazy
    _, gross, net, costs, turnover, expo = kernels.simulate_kernel(*no_weights)
    dates = pd.DatetimeIndex(data["date"].values, name="date")
    assets = pd.Index([str(a) for a in data["asset"].values], name="asset")
    returns = pd.DataFrame({"net": net, "gross": gross, "turnover": turnover, "costs": costs},
                           index=dates)
    bench = _benchmark(s.benchmark, data, dates)
    if bench is not None:
        returns["benchmark"] = bench
    all_params = {**(params or {}), **s.as_params()}
    from quantlib import __version__

    address, values = _address(data)
    prov = {"strategy": strategy, "source_hash": source_hash or _weights_hash(tw),
            **address, "quantlib_version": __version__,
            "created_at": dt.datetime.now(dt.UTC).isoformat()}
    exposures = pd.DataFrame({"long": expo[:, 0], "short": expo[:, 1],
                              "gross": expo[:, 0] - expo[:, 1], "net": expo[:, 0] + expo[:, 1],
                              "n_holdings": expo[:, 2]}, index=dates)
    warn_if_idle(expo[:, 2], data, strategy, params or {})
    guards = [values[k] for k in SIM_VARIABLES if k in values]
    return Result(returns, LazyWeights(arrays, dates, assets, guards),  # type: ignore[arg-type]
                  params=to_jsonable(all_params), provenance=prov, exposures=exposures,
                  metrics=LazyMetrics(returns, exposures, s))  # type: ignore[arg-type]


#: the data variables :func:`prepare_static` reads (a lazy result checks them unchanged)
SIM_VARIABLES = ("close", "returns", "returns_base", "open", "volume", "fx_rate")


class LazyWeights:
    """End-of-session weights of a simulation, computed when first read.

    :func:`simulate` keeps no ``(T, N)`` weights: a :class:`Result` materializes them on
    first access of ``Result.weights`` by rerunning the simulation kernel on the same
    arrays (the same operations in the same order: the same numbers), which costs about
    one simulation. ``guards`` are the data variables the simulation read with their
    XXH64 at run time: if one was edited in place since, the weights would describe other
    data, so reading them raises :class:`~quantlib.errors.BacktestError`.
    """

    def __init__(self, args: tuple[Any, ...], dates: pd.DatetimeIndex, assets: pd.Index,
                 guards: list[tuple[np.ndarray, int]]) -> None:
        self.args, self.dates, self.assets, self.guards = args, dates, assets, guards
        self.shape = (len(dates), len(assets))

    def __call__(self) -> pd.DataFrame:
        for arr, vh in self.guards:
            if kernels.xxh64(arr) != vh:
                raise BacktestError("the data a result was simulated on must be unchanged "
                                    "to derive its weights later",
                                    found="a variable it read was edited in place since",
                                    fix="rerun the backtest (or read res.weights before "
                                        "editing the data)")
        w = kernels.simulate_kernel(*(*self.args, True))[0]
        return pd.DataFrame(w, index=self.dates, columns=self.assets, copy=False)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled as the frame itself
        return (_identity, (self(),))


class LazyMetrics:
    """:func:`~quantlib.backtest.metrics.summary` of a simulation, computed when first read."""

    def __init__(self, returns: pd.DataFrame, exposures: pd.DataFrame, s: Settings) -> None:
        self.returns, self.exposures, self.s = returns.copy(), exposures.copy(), s

    def __call__(self) -> dict[str, Any]:
        from quantlib.backtest.metrics import summary

        r = self.returns
        return summary(r["net"], benchmark=r.get("benchmark"), turnover=r["turnover"],
                       exposures=self.exposures, periods_per_year=self.s.periods_per_year,
                       risk_free=self.s.risk_free)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_identity, (self(),))


def _identity(x: Any) -> Any:
    return x


def warn_if_idle(holdings: np.ndarray, data: xr.Dataset, strategy: str,
                 params: dict[str, Any]) -> None:
    """``QuantlibWarning`` naming cause and fix when a backtest cannot mean anything.

    Causes: a lookback parameter (:class:`~quantlib.backtest.Param` ``lookback=True``) at
    least as long as the data, a ``quantile`` larger than the assets with a bar on any
    day, or a portfolio that never holds anything (``holdings`` all 0: the number of
    holdings per session, or the weights).

    Examples
    --------
    >>> import warnings
    >>> ds = xr.Dataset({"close": (("date", "asset"), np.ones((3, 2)))})
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     warn_if_idle(np.zeros((3, 2)), ds, "xs_momentum", {"window": 10, "quantile": 5})
    >>> print(seen[0].message)  # doctest: +NORMALIZE_WHITESPACE
    strategy 'xs_momentum' never holds anything: window=10 looks back at least as far as
    the data reaches (3 sessions); fix: pass window < 3 or load more history. quantile=5
    holds the top 1/5 of at most 2 assets a day, which is none; fix: pass quantile <= 2
    or a wider universe.
    """
    from quantlib.backtest.strategies import STRATEGIES

    T = data.sizes["date"]
    strat = STRATEGIES.get(strategy)
    causes = []
    for name, p in (strat.params.items() if strat is not None else ()):
        v = params.get(name)
        if p.lookback and isinstance(v, int) and v >= T:
            causes.append(f"{name}={v} looks back at least as far as the data reaches ({T} "
                          f"sessions); fix: pass {name} < {T} or load more history")
    q = params.get("quantile")
    n_max = _max_bars(np.asarray(data["close"].values, float), q) if isinstance(q, int) else 0
    if isinstance(q, int) and q > n_max:
        causes.append(f"quantile={q} holds the top 1/{q} of at most {n_max} assets a day, "
                      f"which is none; fix: pass quantile <= {n_max} or a wider universe")
    never = not np.any(np.nan_to_num(holdings) != 0)
    if not causes and not never:
        return
    if not causes:
        causes.append("its target weights are 0 on every rebalance row; fix: check that "
                      "the signal has values (lookbacks, fundamentals present) and that "
                      "assets pass its filters")
    head = "never holds anything" if never else "cannot mean what it says"
    warnings.warn(f"strategy {strategy!r} {head}: " + ". ".join(causes) + ".",
                  QuantlibWarning, stacklevel=3)


def _max_bars(close: np.ndarray, q: int) -> int:
    """Most assets with a bar on one day; the last day alone when it already has ``q``."""
    last = int(np.isfinite(close[-1]).sum())
    return last if last >= q else int(np.isfinite(close).sum(axis=1).max())


def prepare_static(data: xr.Dataset, s: Settings) -> dict[str, Any]:
    """Everything the kernel needs that does not depend on the target weights."""
    cons = s.constraints
    close = np.asarray(data["close"].values, dtype=float)
    r_local = np.asarray(data["returns"].values, dtype=float)
    rb = _np(data, "returns_base")
    r = r_local if rb is None else rb
    groups = None
    if cons.neutral:
        if cons.neutral not in data.coords:
            raise BacktestError(f"{cons.neutral}-neutral needs the asset coordinate",
                                found=f"coords {sorted(map(str, data.coords))}", fix="add it",
                                field=cons.neutral)
        groups = group_codes(np.asarray(data[cons.neutral].values).astype(str))
    uni = np.asarray(data["in_universe"].values, bool) if "in_universe" in data else None
    rebalance = rebalance_mask(data["date"].values, s.rebalance)
    decision = rebalance.copy()
    delist_row = _delisting_rows(close, data)
    lin, impact, borrow = s.costs.arrays(close, _np(data, "volume"), r_local,
                                         s.periods_per_year, fx=_np(data, "fx_rate"))
    if s.execution == "close":
        # tradable = a bar (finite close): the kernel tests the prices, no (T, N) mask
        r_pre, r_post, tradable = r, np.broadcast_to(np.float64(0.0), r.shape), close
    elif s.execution == "open":
        opn = _np(data, "open")
        if opn is None:
            raise BacktestError("execution='open' needs an open price variable",
                                found="no 'open' in data", fix="use execution='close'",
                                field="open")
        prev_close = pd.DataFrame(close).ffill().shift(1).to_numpy()
        r_pre = np.where(np.isfinite(opn), opn * _action_factor(r_local, close, prev_close)
                         / prev_close - 1.0, np.nan)
        r_pre = np.where(np.isfinite(r), r_pre, np.nan)
        r_post = np.where(np.isfinite(r_pre), (1 + r) / (1 + r_pre) - 1.0, 0.0)
        tradable = opn
        rebalance = np.concatenate([[False], rebalance[:-1]])  # executed next open
    else:
        raise BacktestError("execution must be 'close' or 'open'", found=repr(s.execution),
                            fix="pass execution='close'")
    rows = np.nonzero(decision)[0]
    target_row = np.full(len(decision), -1, np.int64)
    target_row[rows] = np.arange(len(rows))
    if s.execution == "open":
        target_row = np.concatenate([[-1], target_row[:-1]])  # executed next open
    return {"r_pre": np.ascontiguousarray(r_pre), "r_post": r_post,
            "rebalance": rebalance, "tradable": tradable, "lin": lin, "impact": impact,
            "borrow": float(borrow), "delist_row": delist_row, "universe": uni,
            "force_rows": _force_rows(delist_row, len(rebalance)),
            "groups": groups, "cons": cons, "cons_args": constraint_args(cons, groups),
            "execution": s.execution, "rebalance_decision": decision,
            "target_rows": rows, "target_row": target_row}


def _action_factor(r_local: np.ndarray, close: np.ndarray, prev_close: np.ndarray
                   ) -> np.ndarray:
    """Corporate-action factor of each bar: ``(1 + returns) * prev_close / close``.

    It is ``split * (close + dividend) / close`` on an ex date and 1 otherwise, read off
    the total return so that any dataset following the backtest data contract carries it.
    With ``execution="open"`` it scales the overnight leg (the holder over the ex date's
    open owns the split shares and the dividend, reinvested at the open in proportion
    ``dividend / close``) and leaves open-to-close clean: ``close / open - 1``.

    Examples
    --------
    A 2:1 split and a 1.0 dividend (close 50) on the second bar:

    >>> close, prev = np.array([[50.0]]), np.array([[99.0]])
    >>> r = 2 * (50.0 + 1.0) / 99.0 - 1
    >>> float(np.round(_action_factor(np.array([[r]]), close, prev)[0, 0], 12))
    2.04
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (1.0 + r_local) * prev_close / close
    return np.where(np.isfinite(f) & (f > 0), f, 1.0)


def kernel_args(target: np.ndarray, st: dict[str, Any]) -> tuple[Any, ...]:
    """Kernel arguments for one target-weight array (T, N) given :func:`prepare_static`."""
    # only rebalance rows are ever read: constrain those, pass them alone
    rows = st["target_rows"]
    sub = np.asarray(target, dtype=float)[rows]  # a copy: constrained in place below
    if st["universe"] is not None:
        sub = np.where(st["universe"][rows], sub, 0.0)
    sub = np.ascontiguousarray(sub)
    constrain_rows(sub, *st["cons_args"])  # NaN -> 0; the batched sweep's kernel too
    return (st["r_pre"], st["r_post"], sub, st["target_row"], st["rebalance"],
            st["tradable"], st["lin"], st["impact"], st["borrow"], st["delist_row"],
            np.zeros(sub.shape[1]), st["execution"] != "close", st["force_rows"])


def _delisting_rows(close: np.ndarray, data: xr.Dataset) -> np.ndarray:
    """Each asset's forced-close row: its last bar if it is delisted there, else -1."""
    T, N = close.shape
    last = kernels.last_bar_rows(np.ascontiguousarray(close))  # no (T, N) mask
    if "in_universe" in data:
        gone = ~np.asarray(data["in_universe"].values[-1], bool)
    else:
        gone = last < T - 6  # no bar in the last week of data: delisted
    delisted = (last >= 0) & gone & (last < T - 1)
    return np.where(delisted, last, -1).astype(np.int64)


def _force_rows(delist_row: np.ndarray, T: int) -> np.ndarray:
    out = np.zeros(T, bool)
    out[delist_row[delist_row >= 0]] = True
    return out


def _benchmark(spec: Any, data: xr.Dataset, dates: pd.DatetimeIndex) -> np.ndarray | None:
    if spec is None:
        return None
    r = data["returns_base"] if "returns_base" in data else data["returns"]
    if isinstance(spec, pd.Series):
        return spec.reindex(dates).fillna(0.0).to_numpy(dtype=float)
    if spec == "equal_weight":
        return np.nan_to_num(np.nanmean(np.asarray(r.values, float), axis=1))
    if spec in data["asset"].values:
        return np.nan_to_num(np.asarray(r.sel(asset=spec).values, float))
    raise BacktestError("benchmark must be an asset id, 'equal_weight' or a return series",
                        found=repr(spec), fix="pass benchmark='equal_weight'")


def _weights_hash(tw: xr.DataArray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(np.nan_to_num(tw.values, nan=0.0),
                                               dtype=float).tobytes()).hexdigest()[:16]


def data_fingerprint(data: xr.Dataset) -> str:
    """Content hash of everything a backtest can read from ``data`` (``content-<hex>``).

    Covers each data variable (name, dims, dtype, values), the ``date`` and ``asset``
    labels and every other coordinate, so a subset (``isel``/``sel``), a dropped or added
    variable, or a value edited in memory gives another fingerprint. Numpy values are
    hashed with XXH64 (:func:`~quantlib.backtest.kernels.xxh64`, ~9 GB/s: a few ms for a
    1,000 x 2,520 panel) and each variable's name, dims, dtype, shape and value hash go
    through sha256; a dask-backed variable contributes its graph name, which dask derives
    from the content it was built from, so a lazy read is not computed.

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(4, 30, seed=1, markets=())
    >>> fp = data_fingerprint(ds)
    >>> fp == data_fingerprint(ds.copy(deep=True)), fp == data_fingerprint(ds.isel(asset=[0, 1]))
    (True, False)
    """
    return _fingerprint(data)[0]


def _fingerprint(data: xr.Dataset) -> tuple[str, dict[str, tuple[np.ndarray, int]]]:
    """:func:`data_fingerprint` and, per numpy-backed data variable, its values and their
    XXH64 (what a lazily expanded result checks to refuse data edited in place since)."""
    import hashlib

    items = [(f"var:{k}", data[k].variable) for k in sorted(map(str, data.data_vars))]
    items += [(f"coord:{k}", data[k].variable) for k in sorted(map(str, data.coords))]
    big = sum(v.nbytes for _, v in items if not hasattr(v.data, "dask")) > 64 * 2**20
    if big:  # the numba hash releases the GIL: one variable per thread
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            parts = list(pool.map(_variable_digest, items))
    else:
        parts = [_variable_digest(item) for item in items]
    fp = "content-" + hashlib.sha256(b"".join(d for d, _ in parts)).hexdigest()[:16]
    values = {name[4:]: (var.values, vh) for (name, var), (_, vh) in zip(items, parts, strict=True)
              if vh is not None and name.startswith("var:")}
    return fp, values


def _variable_digest(item: tuple[str, Any]) -> tuple[bytes, int | None]:
    """sha256 of a variable's name, dims, dtype, shape and the XXH64 of its values."""
    import hashlib

    name, arr = item
    h = hashlib.sha256(f"{name}|{arr.dims}|{arr.dtype}|{arr.shape}|".encode())
    vh = None
    if hasattr(arr.data, "dask"):
        h.update(str(arr.data.name).encode())
    elif arr.dtype.kind in "OUS":
        h.update(kernels.xxh64("\x1f".join(map(str, np.ravel(arr.values))).encode())
                 .to_bytes(8, "little"))
    else:
        vh = kernels.xxh64(arr.values)
        h.update(vh.to_bytes(8, "little"))
    return h.digest(), vh


def run(strategy: Any, data: Any, *, cache: ResultCache | None = None, **params: Any
        ) -> Result:
    """Run a registered (or decorated) strategy and simulate it.

    Keyword arguments that are simulation settings (see :func:`simulate`) go to the
    engine; the rest are strategy parameters. ``cache`` (a :class:`ResultCache`, e.g.
    ``quantlib.results.ResultStore(url)``) serves an identical request (same strategy
    source, params, settings, data snapshot, quantlib version) without recomputation,
    and keeps new results there.

    Raises
    ------
    BacktestError
        If ``cache`` is not a :class:`ResultCache` (a URL or ``True`` from older code).

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(20, 300, seed=3, markets=())
    >>> res = run("ma_crossover", ds, fast=5, slow=50, costs=None)
    >>> res.provenance["strategy"], sorted(res.params)[:3]
    ('ma_crossover', ['benchmark', 'costs', 'execution'])
    """
    from quantlib.backtest.strategies import get_strategy

    if cache is not None and not isinstance(cache, ResultCache):
        raise BacktestError("cache must be a result cache (get/put)", found=repr(cache),
                            fix="pass cache=quantlib.results.ResultStore(url), or "
                                "ResultStore() for the configured results store")
    strat = get_strategy(strategy)
    data = as_dataset(data)
    params, sim = split_settings(params)
    full = strat.resolve_params(params)
    s = resolve_settings(strat, full, **sim)
    if cache is not None:
        probe = _request_id(strat, full, s, data)
        hit = cache.get(probe) if probe else None
        if hit is not None:
            return hit
    res = simulate(strategy_weights(strat, data, full, s), data, strategy=strat.name,
                   source_hash=strat.source_hash, params=full, settings=s)
    if cache is not None:
        cache.put(res)
    return res


def strategy_weights(strat: Any, data: xr.Dataset, params: dict[str, Any], s: Settings
                     ) -> xr.DataArray:
    """Target weights of ``strat`` computed on the decision rows of ``s.rebalance`` only."""
    from quantlib.backtest.signals import decision_rows

    rows = rebalance_mask(data["date"].values, s.rebalance)
    with decision_rows(None if rows.all() else rows):
        return strat.weights(data, **params)


def _request_id(strat: Any, full: dict[str, Any], s: Settings, data: xr.Dataset
                ) -> str | None:
    from quantlib import __version__
    from quantlib.backtest.result import result_id_for

    if isinstance(s.benchmark, pd.Series):
        return None
    params = to_jsonable({**full, **s.as_params()})
    addr = data_address(data)
    return result_id_for(strat.name, strat.source_hash, params, addr["snapshot"], __version__,
                         addr["data"], addr["data_fingerprint"])


def data_address(data: xr.Dataset) -> dict[str, Any]:
    """What a result's content address says about the data it read.

    An untouched catalog read (``quantlib.load_dataset``, whose ``read_fingerprint``
    attribute still equals :func:`data_fingerprint` of the data) is addressed by its
    ``snapshot`` plus the ``data`` selection (markets, dates, decision clock) that a
    rerun reads again; ``data_fingerprint`` is then ``None``. Anything else (a subset, an
    edit in memory, a synthetic or hand-built panel) is addressed by its content:
    ``data`` is ``None`` and ``data_fingerprint`` the content hash. ``synthetic`` is true
    for panels of :func:`quantlib.backtest.synthetic.make_dataset`.

    Examples
    --------
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> ds = make_dataset(4, 30, seed=1, markets=())
    >>> addr = data_address(ds)
    >>> addr["data"], addr["data_fingerprint"] == data_fingerprint(ds), addr["synthetic"]
    (None, True, True)
    """
    return _address(data)[0]


def _address(data: xr.Dataset) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, int]]]:
    fp, values = _fingerprint(data)
    selection = data_selection(data, fingerprint=fp)
    return {"snapshot": data.attrs.get("snapshot") or fp, "data": selection,
            "data_fingerprint": None if selection is not None else fp,
            "synthetic": bool(data.attrs.get("synthetic", False))}, values


def data_selection(data: xr.Dataset, fingerprint: str | None = None) -> dict[str, Any] | None:
    """What a catalog read selected from its snapshot, if ``data`` is that read untouched.

    ``None`` for datasets that are not a :func:`quantlib.load_dataset` read, and for a
    read changed since (subset, edited values, added or dropped variables): its
    ``read_fingerprint`` attribute no longer equals :func:`data_fingerprint` (pass
    ``fingerprint`` when already computed). Part of a result's content address, and what
    a rerun (what-if) reads again.

    Examples
    --------
    >>> ds = xr.Dataset({"close": (("date", "asset"), [[1.0], [2.0]])},
    ...                 coords={"date": pd.date_range("2024-01-01", periods=2), "asset": ["A"]},
    ...                 attrs={"snapshot": "S1", "markets": ["US"], "decision_clock": "own",
    ...                        "start": "2024-01-01", "end": "2024-01-02"})
    >>> ds.attrs["read_fingerprint"] = data_fingerprint(ds)
    >>> data_selection(ds)
    {'markets': ['US'], 'start': '2024-01-01', 'end': '2024-01-02', 'decision_clock': 'own'}
    >>> data_selection(ds.isel(date=[0])) is None
    True
    """
    attrs = data.attrs
    if not {"snapshot", "markets", "read_fingerprint"} <= set(attrs):
        return None
    if (fingerprint or data_fingerprint(data)) != attrs["read_fingerprint"]:
        return None
    keys = ("markets", "start", "end", "decision_clock")
    return {k: to_jsonable(attrs[k]) for k in keys if k in attrs}
