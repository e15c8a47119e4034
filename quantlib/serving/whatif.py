"""What-if backtests from the dashboards: a published strategy rerun with changed parameters.

1. :func:`check_params` keeps the change inside the researcher's ``allowed_params``
   (``{"p": {"min": a, "max": b, "step": s}}`` or ``{"p": {"choices": [...]}}``).
2. :func:`request_id` is the content address the rerun will have (same strategy, source
   hash, snapshot and quantlib version, new params); if the results store holds it, the
   answer comes from there at once.
3. Otherwise :func:`submit` sends :func:`execute` to the Dask cluster
   (``DASK_SCHEDULER_ADDRESS`` if set, else :func:`quantlib.cluster.connect`); the worker
   reruns the strategy (demo results through :func:`quantlib.serving.demo.rerun_demo`,
   registered strategies through :func:`quantlib.backtest.run` on the pinned snapshot),
   saves the result unpublished with the requesting user as author and returns its id.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from quantlib.errors import StrategyError

__all__ = ["check_params", "request_id", "execute", "submit", "cluster_client"]

log = logging.getLogger(__name__)

_CLIENT: Any = None
_LOCK = threading.Lock()


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


def execute(spec: dict[str, Any]) -> str:
    """Run one what-if (on a Dask worker); save it unpublished; return its result id."""
    from quantlib.results import has_result, save_result

    meta, changes, url = spec["meta"], spec["changes"], spec["results_url"]
    rid = request_id(meta, changes)
    if has_result(rid, url):
        return rid
    params = {**(meta.get("params") or {}), **changes}
    if meta.get("source_hash") == "demo":
        from quantlib.serving.demo import rerun_demo

        result = rerun_demo(params, strategy=meta["strategy"],
                            snapshot=meta.get("snapshot") or "demo-snapshot")
    else:
        result = _run_registered(meta, params)
    result.info.update({"author": spec["user"], "published": False,
                        "title": f"What-if: {meta.get('title') or meta.get('strategy')}",
                        "description": f"what-if of {meta.get('result_id')} with {changes}",
                        "tags": ["what-if"]})
    return save_result(result, url)


def _run_registered(meta: dict[str, Any], params: dict[str, Any]) -> Any:
    from quantlib.backtest import run
    from quantlib.datasets import load_dataset

    snapshot = meta.get("snapshot")
    selection = meta.get("data")
    if not snapshot or not selection:
        raise StrategyError("what-if needs the catalog selection the result was run on",
                            found=f"snapshot={snapshot!r}, data={selection!r}",
                            fix="publish a result computed on quantlib.load_dataset(...)",
                            snapshot=snapshot)
    data = load_dataset(snapshot=snapshot, compute=True, **selection)
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
    spec = {"meta": meta, "changes": changes, "user": user, "results_url": results_url}
    return cluster_client().submit(execute, spec, pure=False, retries=1,
                                   key=f"whatif-{request_id(meta, changes)}-{user}")
