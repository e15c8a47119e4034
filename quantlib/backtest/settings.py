"""Simulation settings: one typed, frozen object, resolved in one place.

Every path that simulates a strategy (:func:`~quantlib.backtest.run`,
:func:`~quantlib.backtest.sweep`, :func:`~quantlib.backtest.walk_forward`, the what-if
page through ``run``, the ``quantlib backtest`` CLI) resolves its settings with
:func:`resolve_settings`, in this order:

1. the platform defaults (the field defaults of :class:`Settings`);
2. the strategy's own ``sim_defaults`` (``xs_momentum`` rebalances monthly);
3. a long-short parameter (``long_short=True``) implies ``long_only=False``;
4. what the caller passed.

Values are validated and coerced by their declared type (``periods_per_year="252"`` ->
252) and ``costs`` becomes a :class:`~quantlib.backtest.costs.CostModel`, so the engine
reads typed attributes, never an untyped dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import pandas as pd

from quantlib.backtest.constraints import Constraints
from quantlib.backtest.costs import DEFAULT_COSTS, CostModel, resolve_costs
from quantlib.errors import BacktestError

__all__ = ["Settings", "resolve_settings", "split_settings", "SETTING_NAMES"]

_REBALANCE = ("D", "W", "M", "Q")
_EXECUTION = ("close", "open")


@dataclass(frozen=True)
class Settings:
    """How a portfolio is simulated (see :func:`~quantlib.backtest.simulate`).

    Parameters
    ----------
    rebalance : {"D", "W", "M", "Q"} or int
        Rebalance calendar (decision rows).
    execution : {"close", "open"}
        Trade at the decision session's close or the next session's open.
    costs : CostModel
        Resolved cost model (``resolve_settings`` accepts names, dicts, ``"flat:<bps>"``).
    long_only, gross_leverage, net_leverage, max_weight, neutral
        See :class:`~quantlib.backtest.constraints.Constraints`.
    periods_per_year : int
        Annualization (252 sessions).
    risk_free : float
        Per-period risk-free rate for Sharpe/Sortino.
    benchmark : str, pandas.Series or None
        An asset id, ``"equal_weight"`` or a return series.

    Examples
    --------
    >>> s = resolve_settings(rebalance="M", costs=None)
    >>> s.rebalance, s.costs.linear_rate, s.constraints.long_only
    ('M', 0.0, True)
    """

    rebalance: str | int = "D"
    execution: str = "close"
    costs: CostModel = DEFAULT_COSTS
    long_only: bool = True
    gross_leverage: float | None = 1.0
    net_leverage: float | None = None
    max_weight: float | None = None
    neutral: str | None = None
    periods_per_year: int = 252
    risk_free: float = 0.0
    benchmark: Any = None

    @property
    def constraints(self) -> Constraints:
        """The portfolio constraints these settings imply."""
        return Constraints(long_only=self.long_only, gross_leverage=self.gross_leverage,
                           net_leverage=self.net_leverage, max_weight=self.max_weight,
                           neutral=self.neutral)

    def as_params(self) -> dict[str, Any]:
        """Plain values recorded with a result (costs as a dict, a series benchmark as
        ``"series"``); :func:`resolve_settings` accepts them back.

        Examples
        --------
        >>> resolve_settings(**Settings().as_params()) == Settings()
        True
        """
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["costs"] = self.costs.as_dict()
        if isinstance(self.benchmark, pd.Series):
            out["benchmark"] = "series"
        return out


#: names of the simulation settings (everything else passed to ``run`` is a parameter)
SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))


def split_settings(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(strategy params, simulation settings)`` out of one keyword mapping.

    Examples
    --------
    >>> split_settings({"window": 126, "rebalance": "W"})
    ({'window': 126}, {'rebalance': 'W'})
    """
    params = {k: v for k, v in kwargs.items() if k not in SETTING_NAMES}
    return params, {k: v for k, v in kwargs.items() if k in SETTING_NAMES}


def resolve_settings(strategy: Any = None, params: Mapping[str, Any] | None = None,
                     /, **settings: Any) -> Settings:
    """The settings a simulation uses (see the module docstring for the order).

    Parameters
    ----------
    strategy : str, Strategy or None
        Its ``sim_defaults`` apply under the caller's settings.
    params : mapping, optional
        The strategy parameters (``long_short=True`` implies ``long_only=False``); for a
        sweep, any set with ``long_short`` counts.
    **settings
        Settings by name (a :class:`Settings` field); unknown names raise.

    Examples
    --------
    >>> resolve_settings("xs_momentum").rebalance
    'M'
    >>> resolve_settings("xs_momentum", {"long_short": True}, rebalance="W").long_only
    False
    >>> resolve_settings(gross_leverage="1.5").gross_leverage
    1.5
    """
    unknown = sorted(set(settings) - set(SETTING_NAMES))
    if unknown:
        raise BacktestError("unknown simulation setting", found=", ".join(unknown),
                            fix=f"use one of {sorted(SETTING_NAMES)}", field=unknown[0])
    merged: dict[str, Any] = {}
    if strategy is not None:
        from quantlib.backtest.strategies import get_strategy

        merged.update(get_strategy(strategy).sim_defaults)
    if params and params.get("long_short"):
        merged["long_only"] = False  # a long-short strategy implies a long-short book
    merged.update(settings)
    if isinstance(merged.get("benchmark"), str) and merged["benchmark"] == "series":
        merged["benchmark"] = None  # a recorded series benchmark cannot be replayed
    out = {k: _coerce(k, v) for k, v in merged.items()}
    s = replace(Settings(), **out)
    s.constraints  # noqa: B018 - validates the constraint combination now
    return s


def _coerce(name: str, value: Any) -> Any:
    """One setting validated and converted to its declared type."""
    if name == "costs":
        return resolve_costs(value)
    if name == "benchmark":
        return value
    if name == "rebalance":
        if isinstance(value, str) and value.strip().lstrip("+").isdigit():
            value = int(value)
        if (isinstance(value, int) and not isinstance(value, bool) and value >= 1) \
                or value in _REBALANCE:
            return value
        raise _bad(name, value, "one of 'D', 'W', 'M', 'Q' or a whole number of sessions >= 1",
                   "rebalance='M'")
    if name == "execution":
        if value in _EXECUTION:
            return value
        raise _bad(name, value, "'close' or 'open'", "execution='close'")
    if name == "neutral":
        if value in (None, "market", "sector"):
            return value
        raise _bad(name, value, "None, 'market' or 'sector'", "neutral='sector'")
    if name == "long_only":
        return _as_bool(name, value)
    if name == "periods_per_year":
        return _as_number(name, value, int, "periods_per_year=252")
    if value is None and name in ("gross_leverage", "net_leverage", "max_weight"):
        return None
    return _as_number(name, value, float, f"{name}=1.0")


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise _bad(name, value, "True or False", f"{name}=True")


def _as_number(name: str, value: Any, kind: type, example: str) -> Any:
    if isinstance(value, bool):
        raise _bad(name, value, f"a number ({kind.__name__})", example)
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise _bad(name, value, f"a number ({kind.__name__})", example) from None
    if kind is int:
        if not num.is_integer():
            raise _bad(name, value, "a whole number", example)
        return int(num)
    return num


def _bad(name: str, value: Any, expected: str, example: str) -> BacktestError:
    return BacktestError(f"setting {name} must be {expected}", found=f"{name}={value!r}",
                         fix=f"pass e.g. {example}", field=name)
