"""The :class:`Result` of a backtest: returns, weights, costs, exposures, provenance.

A result is plain data. Its stored layout (``meta.json`` plus Parquet files) belongs
to :mod:`quantlib.results.layout`; :meth:`Result.save` / :meth:`Result.load` /
:meth:`Result.meta` delegate there and round-trip exactly. The backtest never imports
the results package otherwise: a cache is injected (:class:`ResultCache`, e.g.
``quantlib.results.ResultStore``).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from quantlib.errors import StoreError

__all__ = ["Result", "ResultCache", "canonical_json", "to_jsonable", "result_id_for"]

RETURN_COLUMNS = ("net", "gross", "turnover", "costs")


def to_jsonable(obj: Any) -> Any:
    """Turn params/metrics into plain JSON types (tuples -> lists, numpy -> python, NaN -> None).

    Examples
    --------
    >>> to_jsonable({"w": (5, 20), "x": np.float64(0.5), "n": float("nan")})
    {'w': [5, 20], 'x': 0.5, 'n': None}
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(obj).isoformat()
    return obj


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, no spaces) used for hashing.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": (1, 2)})
    '{"a":[1,2],"b":1}'
    """
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def result_id_for(strategy: str, source_hash: str, params: dict[str, Any],
                  snapshot: str | None, quantlib_version: str,
                  data: dict[str, Any] | None = None, data_fingerprint: str | None = None
                  ) -> str:
    """Content address of a backtest request: sha256 of its canonical JSON, 16 hex digits.

    ``data`` is the selection read from the snapshot (markets, start, end, decision
    clock; see :func:`quantlib.load_dataset`): the same snapshot read for other markets
    or dates is another request. ``data_fingerprint`` is the content hash of data that
    is not an untouched catalog read (a subset, values edited in memory, a hand-built
    panel; see :func:`quantlib.backtest.engine.data_address`).

    Examples
    --------
    >>> rid = result_id_for("ma_crossover", "abc", {"fast": 5}, "snap1", "0.1.0")
    >>> len(rid), rid == result_id_for("ma_crossover", "abc", {"fast": 5}, "snap1", "0.1.0")
    (16, True)
    """
    key = {"strategy": strategy, "source_hash": source_hash, "params": params,
           "snapshot": snapshot, "quantlib_version": quantlib_version}
    if data:
        key["data"] = data
    if data_fingerprint:
        key["data_fingerprint"] = data_fingerprint
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()[:16]


@runtime_checkable
class ResultCache(Protocol):
    """Where :func:`quantlib.backtest.engine.run` looks up and keeps results by id.

    ``quantlib.results.ResultStore`` is the store-backed one; anything with these two
    methods works (the engine never imports the results package).
    """

    def get(self, result_id: str) -> Result | None:
        """The stored result ``result_id``, or ``None``."""

    def put(self, result: Result) -> str:
        """Store ``result``; return its ``result_id``."""


@dataclass
class Result:
    """Outcome of one backtest.

    Attributes
    ----------
    returns : pandas.DataFrame
        Indexed by ``date``; columns ``net``, ``gross``, ``turnover``, ``costs``
        (fractions of portfolio value per session) and optionally ``benchmark``.
    weights : pandas.DataFrame
        End-of-session weights, ``date`` x asset (after drift, after trading). May be
        given as a callable that returns them (``simulate`` does: they are computed on
        first access, and ``metrics`` likewise).
    exposures : pandas.DataFrame
        Per session: ``long``, ``short``, ``gross``, ``net``, ``n_holdings``.
    params : dict
        The strategy parameters and simulation settings.
    provenance : dict
        ``strategy``, ``source_hash``, ``snapshot``, ``quantlib_version``, ``created_at``;
        the data read: ``data`` (catalog selection) or ``data_fingerprint`` (content hash),
        and ``synthetic`` (generated data, see :func:`quantlib.backtest.engine.data_address`);
        ``sample="out_of_sample"`` for a walk-forward's stitched record.
    metrics : dict
        Summary statistics (see :func:`quantlib.backtest.metrics.summary`).
    info : dict
        Publication fields: ``author``, ``published``, ``title``, ``description``,
        ``tags``, ``allowed_params``, ``replaces`` (results this one replaced on publish),
        ``in_sample`` (secondary in-sample metrics, see :meth:`attach_in_sample`).

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=3, name="date")
    >>> r = Result(returns=pd.DataFrame({"net": [0.0, 0.01, -0.02], "gross": [0.0, 0.01, -0.02],
    ...            "turnover": [1.0, 0.0, 0.0], "costs": [0.0, 0.0, 0.0]}, index=idx),
    ...            weights=pd.DataFrame({"A": [1.0, 1.0, 1.0]}, index=idx),
    ...            params={"fast": 5}, provenance={"strategy": "demo", "source_hash": "x",
    ...            "snapshot": "s", "quantlib_version": "0.1.0"})
    >>> len(r.result_id)
    16
    """

    returns: pd.DataFrame
    weights: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    exposures: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in RETURN_COLUMNS if c not in self.returns.columns]
        if missing:
            raise StoreError("result returns must have net, gross, turnover, costs columns",
                             found=f"missing {missing}", fix="build results with simulate()")
        self.params = json.loads(canonical_json(self.params))
        for name in _LAZY:  # computed on first access (see __getattr__)
            if callable(self.__dict__[name]):
                self.__dict__["_lazy_" + name] = self.__dict__.pop(name)
        if self.exposures is None:
            self.exposures = exposures_from_weights(self.weights)
        for frame in (self.returns, self.__dict__.get("weights"), self.exposures):
            if frame is not None:
                _date_index(frame)

    def __getattr__(self, name: str) -> Any:
        """``weights`` and ``metrics`` given as callables (the engine's lazy ones) are
        computed on first access and kept."""
        source = self.__dict__.pop("_lazy_" + name, None) if name in _LAZY else None
        if source is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = source() if callable(source) else source  # unpickled: the value itself
        if name == "weights":
            _date_index(value)
        self.__dict__[name] = value
        return value

    # -- identity ---------------------------------------------------------------------
    @property
    def result_id(self) -> str:
        """Content address: strategy, its source hash, params, the data read, quantlib version.

        The data part is the snapshot plus the selection for an untouched catalog read,
        and the content fingerprint otherwise (``provenance["data_fingerprint"]``).
        """
        p = self.provenance
        return result_id_for(p.get("strategy", "custom"), p.get("source_hash", ""),
                             self.params, p.get("snapshot"), p.get("quantlib_version", ""),
                             p.get("data"), p.get("data_fingerprint"))

    @property
    def net(self) -> pd.Series:
        """Daily net returns (after costs)."""
        return self.returns["net"]

    @property
    def gross(self) -> pd.Series:
        """Daily gross returns (before costs)."""
        return self.returns["gross"]

    @property
    def n_assets(self) -> int:
        """Number of assets (columns of ``weights``; read without computing lazy weights)."""
        lazy = self.__dict__.get("_lazy_weights")
        return int(lazy.shape[1] if lazy is not None else self.weights.shape[1])

    def meta(self) -> dict[str, Any]:
        """The ``meta.json`` document (JSON types only; :func:`quantlib.results.layout.meta_of`)."""
        from quantlib.results.layout import meta_of  # the results package owns the layout

        return meta_of(self)

    def attach_in_sample(self, other: Result,
                         label: str = "in sample: full-history rerun") -> Result:
        """Record ``other``'s metrics as this result's secondary, in-sample numbers.

        For a walk-forward result (``provenance["sample"] == "out_of_sample"``): its own
        metrics stay the headline; the full-history rerun with the chosen parameters is
        shown beside them, labelled ``label``. Returns ``self``.

        Examples
        --------
        >>> idx = pd.date_range("2024-01-01", periods=2, name="date")
        >>> def one(x):
        ...     return Result(pd.DataFrame({"net": [0.0, x], "gross": [0.0, x], "turnover": [1.0, 0],
        ...                   "costs": [0.0, 0]}, index=idx), pd.DataFrame({"A": [1.0, 1.0]}, index=idx),
        ...                   provenance={"strategy": "s", "sample": "out_of_sample"},
        ...                   metrics={"sharpe": x})
        >>> meta = one(0.1).attach_in_sample(one(0.2)).meta()
        >>> meta["sample"], meta["metrics"]["sharpe"], meta["in_sample"]["metrics"]["sharpe"]
        ('out_of_sample', 0.1, 0.2)
        """
        self.info["in_sample"] = to_jsonable({"label": label, "result_id": other.result_id,
                                              "params": other.params,
                                              "metrics": other.metrics})
        return self

    # -- display (quantlib.backtest.display) -------------------------------------------
    def plot(self, **kwargs: Any) -> Any:
        """Summary, equity and drawdown plots (see :func:`quantlib.backtest.display.result_view`)."""
        from quantlib.backtest.display import result_view

        return result_view(self, **kwargs)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        """A result shown as a notebook cell's value renders :meth:`plot` (in a kernel only)."""
        if "ipykernel" not in sys.modules:
            return None
        return self.plot()._repr_mimebundle_(include, exclude)

    # -- persistence: the layout, writer and reader are quantlib.results.layout's -----
    def save(self, url: str) -> str:
        """Write this result into the folder ``url`` (a store URL); return ``url``.

        Delegates to :func:`quantlib.results.layout.write_result` (Parquet objects first,
        ``meta.json`` last, so a folder with a ``meta.json`` is always complete).
        """
        from quantlib.results.layout import write_result
        from quantlib.storage import resolve_location

        loc = resolve_location(url)
        write_result(self, loc.filesystem(), loc.fs_path())
        return url

    @classmethod
    def load(cls, url: str) -> Result:
        """Read a result written by :meth:`save` (:func:`quantlib.results.layout.read_result`)."""
        from quantlib.results.layout import read_result
        from quantlib.storage import resolve_location

        loc = resolve_location(url)
        return read_result(loc.filesystem(), loc.fs_path())


_LAZY = ("weights", "metrics")


def _date_index(frame: pd.DataFrame) -> None:
    if isinstance(frame.index, pd.DatetimeIndex) and frame.index.freq is not None:
        frame.index = frame.index._with_freq(None)
    frame.index.name = "date"


def exposures_from_weights(weights: pd.DataFrame) -> pd.DataFrame:
    """Long, short, gross, net exposure and number of holdings per session.

    Examples
    --------
    >>> w = pd.DataFrame({"A": [0.5], "B": [-0.25]})
    >>> exposures_from_weights(w).iloc[0].tolist()
    [0.5, -0.25, 0.75, 0.25, 2.0]
    """
    w = weights.to_numpy(dtype=float, na_value=np.nan)
    if np.isnan(w).any():
        w = np.nan_to_num(w)
    long = np.maximum(w, 0.0).sum(axis=1)
    short = np.minimum(w, 0.0).sum(axis=1)
    return pd.DataFrame({"long": long, "short": short, "gross": long - short,
                         "net": long + short,
                         "n_holdings": np.count_nonzero(w, axis=1).astype(float)},
                        index=weights.index)
