"""Strategy registry, the ``@register_strategy`` decorator and the built-in strategies.

A strategy is a small declarative object: a name, documented parameters with
defaults and ranges, default simulation settings, and a function
``weights(data, **params) -> DataArray (date, asset)`` of target weights decided on
each row from data up to that row. Sweepable strategies may add a ``batch``
function computing many parameter sets at once as a ``(P, date, asset)`` array.
One contract test (``tests/backtest/test_strategy_contract.py``) runs over
every registered strategy.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from quantlib.backtest import signals as sg
from quantlib.errors import StrategyError

__all__ = ["Param", "Strategy", "register_strategy", "get_strategy", "list_strategies",
           "STRATEGIES", "HIDDEN_VARIABLES"]

#: variables strategies never see, and why (they hold information from after each row)
HIDDEN_VARIABLES: dict[str, str] = {
    "adj_close": "it is back-adjusted with every split and dividend up to the end of the "
                 "panel, so each row knows future corporate actions",
}


@dataclass(frozen=True)
class Param:
    """One documented strategy parameter (default, range, meaning).

    The default's type is the parameter's declared type: a value is coerced to it
    (``"126"`` -> 126 for an ``int``, ``"true"`` -> True for a ``bool``) or refused with
    an error naming the parameter.

    Examples
    --------
    >>> Param(252, "lookback", 2, 2000).check("window", "126", "xs_momentum")
    126
    >>> Param(252, "lookback", 2, 2000).check("window", "abc", "xs_momentum")
    Traceback (most recent call last):
    ...
    quantlib.errors.StrategyError: parameter window must be a whole number (int); found window='abc' [field=window, job=xs_momentum]. Fix: pass e.g. window=252 (see xs_momentum's params)
    """

    default: Any
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    #: sessions of history the signal needs before its first value (a lookback window)
    lookback: bool = False

    def coerce(self, name: str, value: Any, strategy: str) -> Any:
        """``value`` converted to the type of the default (see the class docstring)."""
        kind = type(self.default)
        if value is None or self.default is None or kind not in (bool, int, float):
            return value
        ok, out = _convert(value, kind)
        if not ok:
            what = {bool: "True or False", int: "a whole number (int)",
                    float: "a number (float)"}[kind]
            raise StrategyError(f"parameter {name} must be {what}", found=f"{name}={value!r}",
                                fix=f"pass e.g. {name}={self.default!r} (see {strategy}'s "
                                    f"params)", field=name, job=strategy)
        return out

    def check(self, name: str, value: Any, strategy: str) -> Any:
        """The coerced ``value`` if it is a valid choice / inside the range, else raise."""
        value = self.coerce(name, value, strategy)
        if self.choices is not None and value not in self.choices:
            raise StrategyError(f"parameter {name} must be one of {list(self.choices)}",
                                found=repr(value), fix=f"see {strategy}'s params",
                                field=name, job=strategy)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        if (self.min is not None and value < self.min) or (
                self.max is not None and value > self.max):
            raise StrategyError(f"parameter {name} must be in [{self.min}, {self.max}]",
                                found=repr(value), fix=f"see {strategy}'s params",
                                field=name, job=strategy)
        return value


@dataclass
class Strategy:
    """A registered strategy (see the module docstring)."""

    name: str
    func: Callable[..., xr.DataArray]
    params: dict[str, Param]
    doc: str = ""
    sim_defaults: dict[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], str | None] | None = None
    batch_func: Callable[..., np.ndarray] | None = None
    signal_func: Callable[..., xr.DataArray] | None = None
    metrics_func: Callable[..., np.ndarray] | None = None
    #: portfolio sweeps: ``(data, param_sets, static) -> (nets, turnover)`` ``(P, T)``, each
    #: set's weights built inside one parallel kernel (see :mod:`~quantlib.backtest.batched`)
    portfolio_func: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def source_hash(self) -> str:
        """sha256 (16 hex) of the strategy's source code (function, batch, signal)."""
        h = hashlib.sha256()
        for fn in (self.func, self.batch_func, self.signal_func, self.metrics_func,
                   self.check):
            if fn is not None:
                try:
                    h.update(inspect.getsource(fn).encode())
                except (OSError, TypeError):
                    h.update(fn.__code__.co_code)
        return h.hexdigest()[:16]

    def resolve_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults merged with ``params``; unknown or out-of-range values raise."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise StrategyError(f"unknown parameter for strategy {self.name!r}",
                                found=", ".join(unknown),
                                fix=f"use one of {sorted(self.params)}", job=self.name)
        full = {k: p.default for k, p in self.params.items()}
        full.update(params)
        full = {k: self.params[k].check(k, v, self.name) for k, v in full.items()}
        if self.check is not None:
            msg = self.check(full)
            if msg:
                raise StrategyError(f"invalid parameters for strategy {self.name!r}",
                                    found=msg, fix="change the parameters", job=self.name)
        return full

    def weights(self, data: xr.Dataset, **params: Any) -> xr.DataArray:
        """Target weights for ``params`` (validated), from the variables strategies may
        read (:data:`HIDDEN_VARIABLES` removed)."""
        full = self.resolve_params(params)
        out = self._call(self.func, data, **full)
        return out.transpose("date", "asset").rename("target_weights")

    def _call(self, fn: Callable[..., Any], data: xr.Dataset, *args: Any, **kw: Any) -> Any:
        hidden = [v for v in HIDDEN_VARIABLES if v in data]
        try:
            return fn(data.drop_vars(hidden) if hidden else data, *args, **kw)
        except KeyError as exc:
            name = next((v for v in HIDDEN_VARIABLES if v in str(exc)), None)
            if name is None:
                raise
            raise StrategyError(f"strategies cannot read {name}: {HIDDEN_VARIABLES[name]}",
                                found=f"strategy {self.name!r} reads data[{name!r}]",
                                fix="use returns (total return) or close", field=name,
                                job=self.name) from exc

    def batch(self, data: xr.Dataset, param_sets: list[dict[str, Any]],
              per_asset: bool = False) -> np.ndarray:
        """``(P, date, asset)`` weights (or per-asset positions) for many parameter sets.

        Uses the strategy's batch function when it has one (shared work computed
        once); otherwise loops over the parameter sets.
        """
        full = [self.resolve_params(p) for p in param_sets]
        if self.batch_func is not None:
            return self._call(self.batch_func, data, full, per_asset=per_asset)
        fn = self.signal_func if per_asset else self.func
        if fn is None:
            raise StrategyError(f"strategy {self.name!r} has no per-asset signal",
                                found="per_asset=True", fix="use per_asset=False",
                                job=self.name)
        return np.stack([np.asarray(self._call(fn, data, **p).transpose("date", "asset").values,
                                    float) for p in full])

    def describe(self) -> dict[str, Any]:
        """Name, doc and parameter table (for dashboards and the CLI)."""
        return {"name": self.name, "doc": self.doc, "params": {
            k: {"default": p.default, "doc": p.doc, "min": p.min, "max": p.max,
                "choices": list(p.choices) if p.choices else None}
            for k, p in self.params.items()}, "sim_defaults": self.sim_defaults}


STRATEGIES: dict[str, Strategy] = {}


def _convert(value: Any, kind: type) -> tuple[bool, Any]:
    """``(ok, value as kind)`` for bool/int/float parameters."""
    if kind is bool:
        if isinstance(value, (bool, np.bool_)):
            return True, bool(value)
        text = str(value).strip().lower()
        return text in ("true", "false", "1", "0"), text in ("true", "1")
    if isinstance(value, (bool, np.bool_)):
        return False, value
    try:
        num = float(value)
    except (TypeError, ValueError):
        return False, value
    if kind is int:
        return num.is_integer(), int(num) if num.is_integer() else value
    return True, num


def register_strategy(name: str, params: dict[str, Param] | None = None,
                      sim_defaults: dict[str, Any] | None = None,
                      check: Callable[[dict[str, Any]], str | None] | None = None,
                      replace: bool = False) -> Callable[[Callable[..., xr.DataArray]], Strategy]:
    """Decorator registering ``func(data, **params) -> target weights`` under ``name``.

    Examples
    --------
    >>> @register_strategy("doc_equal", params={"gross": Param(1.0, "total weight", 0, 2)},
    ...                    replace=True)
    ... def doc_equal(data, gross):
    ...     return sg.equal_weight(data["close"].notnull(), gross)
    >>> get_strategy("doc_equal").resolve_params({})
    {'gross': 1.0}
    >>> _ = STRATEGIES.pop("doc_equal")
    """
    def deco(func: Callable[..., xr.DataArray]) -> Strategy:
        if name in STRATEGIES and not replace:
            raise StrategyError("strategy names must be unique", found=repr(name),
                                fix="pick another name or pass replace=True", job=name)
        strat = Strategy(name, func, dict(params or {}), inspect.getdoc(func) or "",
                         dict(sim_defaults or {}), check)
        STRATEGIES[name] = strat
        return strat
    return deco


def get_strategy(strategy: str | Strategy) -> Strategy:
    """Look up a registered strategy by name (or pass a Strategy through)."""
    if isinstance(strategy, Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise StrategyError("strategy must be registered", found=repr(strategy),
                            fix=f"use one of {sorted(STRATEGIES)} or @register_strategy",
                            job=str(strategy))
    return STRATEGIES[strategy]


def list_strategies() -> list[str]:
    """Names of all registered strategies.

    Examples
    --------
    >>> from quantlib import backtest
    >>> "xs_momentum" in backtest.list_strategies()
    True
    """
    return sorted(STRATEGIES)


# --------------------------------------------------------------------------- helpers
def _universe(data: xr.Dataset) -> xr.DataArray:
    if "in_universe" in data:
        return data["in_universe"].astype(bool)
    return data["close"].ffill("date").notnull()


def sleeve(signal: xr.DataArray, data: xr.Dataset) -> xr.DataArray:
    """Per-asset sleeves: weight = signal / number of assets in the universe that day."""
    uni = _universe(data)
    n = uni.sum("asset")
    return (signal.fillna(0.0) * uni / n.where(n > 0)).fillna(0.0)


def select(score: xr.DataArray, data: xr.Dataset, quantile: int, long_short: bool
           ) -> xr.DataArray:
    """Equal weight the top ``1/quantile`` by score (minus the bottom, if long-short).

    Works on numpy arrays inside (only the decision rows when run by the engine).
    """
    a = np.asarray(score.transpose("date", "asset").values, dtype=float)
    rows = sg._active_rows(a.shape[0])
    return select_rows(score, rows, a if rows is None else a[rows], data, quantile, long_short)


def select_rows(like: xr.DataArray, rows: np.ndarray | None, sub: np.ndarray,
                data: xr.Dataset, quantile: int, long_short: bool) -> xr.DataArray:
    """:func:`select` from the scores ``sub`` of the decision ``rows`` alone (``None``:
    every row), as :func:`~quantlib.backtest.signals.returns_over_at` gives them; the
    ``(date, asset)`` weights are 0 on the other rows, whose memory is never touched."""
    if "in_universe" in data:
        uni = data["in_universe"].transpose("date", "asset").values
        sub = np.where(np.asarray(uni if rows is None else uni[rows], bool), sub, np.nan)

    def kernel(x: np.ndarray) -> np.ndarray:
        def ew(mask: np.ndarray, gross: float) -> np.ndarray:
            n = mask.sum(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(n > 0, gross * mask / np.maximum(n, 1), 0.0)

        top = ew(sg._quantile_select_np(x, quantile, "top"), 0.5 if long_short else 1.0)
        if not long_short:
            return top
        return top - ew(sg._quantile_select_np(x, quantile, "bottom"), 0.5)

    like = like.transpose("date", "asset")
    if rows is None:
        w = kernel(sub)
    else:
        w = np.zeros(like.shape)  # calloc: the rows not written stay unmapped zero pages
        w[rows] = kernel(sub)
    out = like.copy(deep=False, data=w)
    out.name = "target_weights"
    return out


_Q = Param(10, "number of quantiles; the top one is held", 2, 100)
_LS = Param(False, "also short the bottom quantile (long-short, gross 1)",
            choices=(False, True))
from quantlib.backtest import builtins as _builtins  # noqa: E402,F401  (registers built-ins)
