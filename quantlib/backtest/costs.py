"""Transaction cost models (a small declarative class, found by name in a registry).

The default, :data:`DEFAULT_COSTS`, is meant to be realistic for liquid equities:
1 bp commission + 5 bps half-spread per unit of traded weight, square-root market
impact ``0.1 * sigma_daily * sqrt(traded value / ADV value)`` (sigma over 60
sessions, ADV over 20 sessions in base currency through ``fx_rate``, on a portfolio of
10 million in base currency)
and a 50 bps/year borrow fee on short weight. ``costs=None`` is frictionless;
``costs="flat:10"`` is a flat 10 bps per unit traded and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quantlib.errors import BacktestError

__all__ = ["CostModel", "DEFAULT_COSTS", "COST_MODELS", "resolve_costs"]


@dataclass(frozen=True)
class CostModel:
    """Per-trade and holding costs.

    Parameters
    ----------
    commission_bps, half_spread_bps : float
        Paid per unit of traded weight (``10`` bps = 0.1% of the traded value).
    impact_coef : float
        ``k`` in ``cost = k * sigma * sqrt(Q / ADV)`` per unit traded; 0 disables impact.
    borrow_bps_annual : float
        Fee on short weight, charged daily as ``bps / 1e4 / periods_per_year``.
    capital : float
        Portfolio value in base currency; sets ``Q`` for the impact term.
    adv_window, vol_window : int
        Sessions for average daily traded value and daily volatility (data up to t).

    Examples
    --------
    >>> CostModel.flat(10).linear_rate   # same as costs="flat:10"
    0.001
    """

    commission_bps: float = 1.0
    half_spread_bps: float = 5.0
    impact_coef: float = 0.1
    borrow_bps_annual: float = 50.0
    capital: float = 1e7
    adv_window: int = 20
    vol_window: int = 60

    @classmethod
    def flat(cls, bps: float) -> CostModel:
        """Only a flat fee of ``bps`` per unit of traded weight."""
        return cls(commission_bps=float(bps), half_spread_bps=0.0, impact_coef=0.0,
                   borrow_bps_annual=0.0)

    @property
    def linear_rate(self) -> float:
        """Fraction of traded value paid as commission + half-spread."""
        return (self.commission_bps + self.half_spread_bps) / 1e4

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (stored with a result's params)."""
        return asdict(self)

    def arrays(self, close: np.ndarray, volume: np.ndarray | None, returns: np.ndarray,
               periods_per_year: int, fx: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, float]:
        """``(lin_cost (T,N), impact (T,N), borrow_daily)`` for the kernel; data up to t only.

        ``fx`` (base currency per unit of each asset's currency, known at t) puts the
        average daily traded value in the base currency of ``capital``; without it the
        prices are taken to be in the base currency already.

        Examples
        --------
        A KRW listing trading the same dollar value as a USD one costs the same impact:

        >>> rng = np.random.default_rng(0)
        >>> r = rng.normal(0, 0.02, (80, 1))
        >>> usd = 100 * np.cumprod(1 + r, axis=0)
        >>> vol = np.full((80, 1), 1e5)
        >>> _, a, _ = DEFAULT_COSTS.arrays(usd, vol, r, 252)
        >>> _, b, _ = DEFAULT_COSTS.arrays(usd * 1300, vol, r, 252, fx=np.full((80, 1), 1 / 1300))
        >>> bool(np.allclose(a, b))
        True
        """
        T, N = close.shape
        lin = np.broadcast_to(np.float64(self.linear_rate), (T, N))  # zero-stride views
        impact = np.broadcast_to(np.float64(0.0), (T, N))
        if self.impact_coef > 0 and volume is not None:
            from quantlib.backtest.signals import rolling_mean_np, rolling_std_np

            value = close * volume if fx is None else close * volume * fx
            adv = rolling_mean_np(value, self.adv_window, self.adv_window // 2)
            sigma = rolling_std_np(returns, self.vol_window, self.vol_window // 3)
            with np.errstate(invalid="ignore", divide="ignore"):
                imp = self.impact_coef * sigma * np.sqrt(self.capital / adv)
            # where history is too short, assume a 2% daily vol and the median liquidity
            fallback = self.impact_coef * 0.02 * np.sqrt(self.capital / np.nanmedian(adv)) \
                if np.isfinite(adv).any() else 0.0
            impact = np.where(np.isfinite(imp), imp, fallback)
        borrow = self.borrow_bps_annual / 1e4 / periods_per_year
        return lin, impact, borrow


DEFAULT_COSTS = CostModel()
COST_MODELS: dict[str, CostModel] = {
    "default": DEFAULT_COSTS,
    "frictionless": CostModel.flat(0.0),
    "retail": CostModel(commission_bps=5, half_spread_bps=10, impact_coef=0.2,
                        borrow_bps_annual=300, capital=1e5),
}


def resolve_costs(costs: Any) -> CostModel:
    """The cost model a ``costs=`` setting names.

    ``"default"`` (:data:`DEFAULT_COSTS`, the default everywhere), another registered
    name, ``None`` (frictionless), ``"flat:<bps>"`` (only a flat fee of ``bps`` per unit
    traded: :meth:`CostModel.flat`), a dict of :class:`CostModel` fields (the default
    model with those fields changed) or a :class:`CostModel`. A bare number is refused:
    it reads as either of the last two.

    Examples
    --------
    >>> resolve_costs(None).linear_rate, resolve_costs("flat:10").linear_rate
    (0.0, 0.001)
    >>> resolve_costs({"commission_bps": 10}).linear_rate  # default model, 10 bps commission
    0.0015
    >>> resolve_costs(10)
    Traceback (most recent call last):
    ...
    quantlib.errors.BacktestError: costs must name its model; found costs=10 [field=costs]. Fix: a flat 10 bps and nothing else: costs='flat:10' (or CostModel.flat(10)); the default model with 10 bps commission: costs={'commission_bps': 10}
    """
    if costs is None:
        return COST_MODELS["frictionless"]
    if isinstance(costs, CostModel):
        return costs
    if isinstance(costs, str):
        return _named(costs)
    if isinstance(costs, (int, float)) and not isinstance(costs, bool):
        n = f"{costs:g}"
        raise BacktestError("costs must name its model", found=f"costs={costs!r}",
                            fix=f"a flat {n} bps and nothing else: costs='flat:{n}' (or "
                                f"CostModel.flat({n})); the default model with {n} bps "
                                f"commission: costs={{'commission_bps': {n}}}", field="costs")
    if isinstance(costs, dict):
        try:
            return CostModel(**costs)
        except TypeError as exc:
            raise BacktestError("cost settings must be CostModel fields", found=str(exc),
                                fix="see quantlib.backtest.CostModel") from exc
    raise BacktestError("costs must be None, a name, 'flat:<bps>', a dict or a CostModel",
                        found=type(costs).__name__, fix="pass costs='default'")


def _named(costs: str) -> CostModel:
    kind, sep, bps = costs.partition(":")
    if sep and kind.strip() == "flat":
        try:
            return CostModel.flat(float(bps))
        except ValueError:
            raise BacktestError("a flat cost names its bps as a number", found=repr(costs),
                                fix="pass costs='flat:10'", field="costs") from None
    if costs not in COST_MODELS:
        raise BacktestError(f"cost model must be one of {sorted(COST_MODELS)} or 'flat:<bps>'",
                            found=repr(costs), fix="pass a registered name or a CostModel",
                            field="costs")
    return COST_MODELS[costs]
