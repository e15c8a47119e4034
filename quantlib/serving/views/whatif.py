"""What-if backtests from the dashboards: a published strategy rerun with changed parameters.

1. :func:`check_params` keeps the change inside the researcher's ``allowed_params``
   (``{"p": {"min": a, "max": b, "step": s}}`` or ``{"p": {"choices": [...]}}``).
2. :func:`request_id` is the content address the rerun will have (same strategy, source
   hash, snapshot and quantlib version, new params); if the results store holds it, the
   answer comes from there at once.
3. Otherwise :func:`submit` sends :func:`execute` to the Dask cluster
   (``DASK_SCHEDULER_ADDRESS`` if set, else :func:`quantlib.cluster.connect`); the worker
   reruns the strategy with the server's what-if runner, a ``"module:function"`` taking
   ``(meta, params, progress)``: :data:`DEFAULT_RUNNER` (:func:`rerun_on_catalog`, the
   registered strategy through :func:`quantlib.backtest.run` on the pinned snapshot and
   selection) unless the server's ``QUANTLIB_WHATIF_RUNNER`` names another; it saves the
   result unpublished with the requesting user as author and returns its id.
4. While it runs, the worker posts its stage to a Dask ``Variable`` named after the
   task (:func:`progress_key`): ``loading data``, ``running`` (step N of M), ``saving``;
   the page reads it with :func:`progress` and shows it with an estimate from the last
   runs (:func:`estimate`).
5. A worker keeps the last catalog panels it loaded (:data:`_DATA`, by snapshot and
   selection), so on a warm cluster a new what-if on a published result's data skips
   the data load: the ``<= 10 s`` floor of issue #14 (``bench/bench_whatif.py``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from quantlib.errors import ConfigError, StrategyError

__all__ = ["check_params", "request_id", "execute", "submit", "cluster_client", "progress_key",
           "progress", "estimate", "record_duration", "rerun_on_catalog", "runner",
           "DEFAULT_RUNNER"]

log = logging.getLogger(__name__)

_CLIENT: Any = None
_LOCK = threading.Lock()
#: per worker process: (snapshot, selection) -> the loaded panel (the last few)
_DATA: OrderedDict[str, Any] = OrderedDict()
_DATA_LOCK = threading.Lock()
#: strategy -> seconds the last what-ifs took (this server process)
_DURATIONS: dict[str, list[float]] = {}
#: how a what-if reruns a result unless ``QUANTLIB_WHATIF_RUNNER`` names another runner
DEFAULT_RUNNER = "quantlib.serving.views.whatif:rerun_on_catalog"


def progress_key(meta: dict[str, Any], changes: dict[str, Any], user: str) -> str:
    """The Dask key (and progress variable name) of a what-if request.

    Examples
    --------
    >>> meta = {"strategy": "s", "source_hash": "h", "params": {}, "snapshot": "x",
    ...         "quantlib_version": "0"}
    >>> progress_key(meta, {}, "mo").startswith("whatif-") and progress_key(meta, {}, "mo").endswith("-mo")
    True
    """
    return f"whatif-{request_id(meta, changes)}-{user}"


def _post(key: str | None, stage: str, step: int = 0, total: int = 0) -> None:
    """Post the worker's stage of ``key`` (no-op outside a Dask worker)."""
    if not key:
        return
    try:
        from distributed import Variable, get_client

        Variable(key, client=get_client()).set(
            json.dumps({"stage": stage, "step": step, "total": total, "at": time.time()}))
    except (ValueError, RuntimeError, OSError):  # not on a worker: nothing to tell
        return


def progress(key: str, client: Any = None) -> dict[str, Any] | None:
    """The latest stage a worker posted for ``key`` (None before the first post)."""
    from distributed import Variable

    try:
        return dict(json.loads(Variable(key, client=client or cluster_client()).get(timeout=0.2)))
    except (TimeoutError, OSError, ValueError):
        return None


def record_duration(strategy: str, seconds: float) -> None:
    """Remember how long a what-if of ``strategy`` took (for :func:`estimate`)."""
    _DURATIONS.setdefault(strategy, []).append(seconds)
    del _DURATIONS[strategy][:-5]


def estimate(strategy: str) -> float | None:
    """Seconds the next what-if of ``strategy`` should take: median of the last runs.

    Examples
    --------
    >>> record_duration("doc", 4.0); record_duration("doc", 2.0); record_duration("doc", 3.0)
    >>> estimate("doc"), estimate("never-ran")
    (3.0, None)
    """
    runs = sorted(_DURATIONS.get(strategy, []))
    return runs[len(runs) // 2] if runs else None


def check_params(allowed: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate what-if parameter changes against ``allowed_params``.

    Raises
    ------
    StrategyError
        If a parameter is not open to what-if or a value is out of its range.

    Examples
    --------
    >>> check_params({"k": {"min": 5, "max": 30, "step": 5}}, {"k": 10})
    {'k': 10}
    >>> check_params({"k": {"min": 5, "max": 30}}, {"k": 40})
    Traceback (most recent call last):
    ...
    quantlib.errors.StrategyError: what-if parameter must lie in its allowed range; found k=40 [field=k]. Fix: choose a value in [5, 30]
    """
    allowed = allowed or {}
    out = {}
    for name, value in changes.items():
        rule = allowed.get(name)
        if rule is None:
            raise StrategyError("only allowed parameters may change in a what-if",
                                found=f"{name} is not in allowed_params", field=name,
                                fix="ask the result's author to allow it when publishing")
        if "choices" in rule and value not in rule["choices"]:
            raise StrategyError("what-if parameter must be one of its choices",
                                found=f"{name}={value!r}", field=name,
                                fix=f"choose one of {rule['choices']}")
        lo, hi = rule.get("min"), rule.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise StrategyError("what-if parameter must lie in its allowed range",
                                found=f"{name}={value!r}", field=name,
                                fix=f"choose a value in [{lo}, {hi}]")
        out[name] = value
    return out


def request_id(meta: dict[str, Any], changes: dict[str, Any]) -> str:
    """Content address of the rerun of ``meta``'s strategy with ``changes`` applied.

    Examples
    --------
    >>> meta = {"strategy": "s", "source_hash": "h", "params": {"k": 1}, "snapshot": "x",
    ...         "quantlib_version": "0.1.0"}
    >>> request_id(meta, {"k": 1}) == request_id(meta, {}), request_id(meta, {"k": 2}) == request_id(meta, {})
    (True, False)
    """
    from quantlib.backtest.result import result_id_for

    params = {**(meta.get("params") or {}), **changes}
    return result_id_for(meta.get("strategy", "custom"), meta.get("source_hash", ""), params,
                         meta.get("snapshot"), meta.get("quantlib_version", ""),
                         meta.get("data"), meta.get("data_fingerprint"))


def runner(name: str | None = None) -> Callable[..., Any]:
    """The what-if runner named ``"module:function"`` (default: the server's configured one).

    Examples
    --------
    >>> runner(DEFAULT_RUNNER) is rerun_on_catalog
    True
    """
    target = name or os.environ.get("QUANTLIB_WHATIF_RUNNER") or DEFAULT_RUNNER
    module, _, attr = target.partition(":")
    if not attr:
        raise ConfigError("a what-if runner must be named 'module:function'",
                          found=repr(target), fix="set QUANTLIB_WHATIF_RUNNER=module:function",
                          field="QUANTLIB_WHATIF_RUNNER")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return fn


def execute(spec: dict[str, Any]) -> str:
    """Run one what-if (on a Dask worker); save it unpublished; return its result id."""
    from quantlib.results import has_result, save_result

    meta, changes, url = spec["meta"], spec["changes"], spec["results_url"]
    key = spec.get("progress_key")
    rid = request_id(meta, changes)
    if has_result(rid, url):
        return rid
    params = {**(meta.get("params") or {}), **changes}
    result = runner(spec.get("runner"))(meta, params, lambda *stage: _post(key, *stage))
    _post(key, "saving the result")
    result.info.update({"author": spec["user"], "published": False,
                        "title": f"What-if: {meta.get('title') or meta.get('strategy')}",
                        "description": f"what-if of {meta.get('result_id')} with {changes}",
                        "tags": ["what-if"]})
    return save_result(result, url)


def _dataset(snapshot: str, selection: dict[str, Any]) -> Any:
    """The catalog panel of ``snapshot`` + ``selection``, loaded once per worker process."""
    from quantlib.datasets import load_dataset

    key = json.dumps([snapshot, selection], sort_keys=True, default=str)
    with _DATA_LOCK:
        if key in _DATA:
            _DATA.move_to_end(key)
            return _DATA[key]
    data = load_dataset(snapshot=snapshot, compute=True, **selection)
    with _DATA_LOCK:
        _DATA[key] = data
        while len(_DATA) > 2:
            _DATA.popitem(last=False)
    return data


def rerun_on_catalog(meta: dict[str, Any], params: dict[str, Any],
                     progress: Callable[..., None] = lambda *stage: None) -> Any:
    """The default what-if runner: ``meta``'s registered strategy with ``params``, on the
    catalog snapshot and selection the result read (``meta["snapshot"]``, ``meta["data"]``).

    ``progress(stage, step, total)`` is told each stage.
    """
    from quantlib.backtest import run

    snapshot = meta.get("snapshot")
    selection = meta.get("data")
    if not snapshot or not selection:
        raise StrategyError("what-if needs the catalog selection the result was run on",
                            found=f"snapshot={snapshot!r}, data={selection!r}",
                            fix="publish a result computed on quantlib.load_dataset(...)",
                            snapshot=snapshot)
    progress("loading data", 1, 2)
    data = _dataset(snapshot, selection)
    progress("running", 2, 2)
    return run(meta["strategy"], data, **params)


def cluster_client() -> Any:
    """The dashboards' shared Dask client (created on first use)."""
    global _CLIENT
    with _LOCK:
        if _CLIENT is None:
            address = os.environ.get("DASK_SCHEDULER_ADDRESS")
            if address:
                from distributed import Client

                _CLIENT = Client(address, timeout=30)
            else:
                from quantlib.cluster import connect

                _CLIENT = connect("local", min_workers=1, max_workers=2,
                                  memory_limit="2GiB", threads_per_worker=1)
            log.info("what-if cluster: %s", _CLIENT)
        return _CLIENT


def submit(meta: dict[str, Any], changes: dict[str, Any], *, user: str, results_url: str) -> Any:
    """Send a what-if to the cluster; return the Dask future (its result: the result id)."""
    check_params(meta.get("allowed_params"), changes)
    key = progress_key(meta, changes, user)
    spec = {"meta": meta, "changes": changes, "user": user, "results_url": results_url,
            "progress_key": key,
            "runner": os.environ.get("QUANTLIB_WHATIF_RUNNER") or DEFAULT_RUNNER}
    return cluster_client().submit(execute, spec, pure=False, retries=1, key=key)
