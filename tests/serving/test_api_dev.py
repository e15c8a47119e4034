"""The results API on its own: dev mode, in-process cache, CLI guards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from quantlib.results import publish
from quantlib.testing.demo import demo_result

QUANTLIB = str(Path(sys.executable).with_name("quantlib"))


def test_dev_mode_refuses_non_loopback():
    r = subprocess.run([QUANTLIB, "dashboards", "api", "--no-auth", "--host", "0.0.0.0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--no-auth must bind to loopback only" in r.stderr


def test_without_hub_or_no_auth_refuses():
    r = subprocess.run([QUANTLIB, "dashboards", "api"], capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "needs the hub or --no-auth" in r.stderr


def test_dev_api_memory_cache_sees_new_publish(dev_api, results_store):
    store, ids = results_store
    assert requests.get(f"{dev_api}/health", timeout=10).json()["cache"] == "memory"
    first = requests.get(f"{dev_api}/api/v1/results", timeout=10).json()
    assert ids[4] not in {m["result_id"] for m in first}  # dev user is a manager
    again = requests.get(f"{dev_api}/api/v1/results", timeout=10).json()
    assert again == first
    rid = publish(demo_result(seed=11, years=1, strategy="dev_fresh"), title="Dev fresh",
                  author="ann", url=store, allow_synthetic=True)
    later = requests.get(f"{dev_api}/api/v1/results", timeout=10).json()
    assert rid in {m["result_id"] for m in later}
    assert len(later) == len(first) + 1


def test_dashboards_serve_needs_hub_or_no_auth():
    r = subprocess.run([QUANTLIB, "dashboards", "serve"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "the dashboards need the hub or --no-auth" in r.stderr
    r = subprocess.run([QUANTLIB, "dashboards", "serve", "--hub", "--no-auth"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--hub and --no-auth exclude each other" in r.stderr


def test_api_returns_each_metrics_unit(dev_api, results_store):
    """Units travel with the numbers (a duration is days, not a fraction)."""
    store, _ = results_store
    res = demo_result(seed=12, years=1, strategy="dev_units")
    res.metrics.update(max_drawdown_duration=120, n_periods=252)
    rid = publish(res, title="Units", author="ann", url=store, allow_synthetic=True)
    body = requests.get(f"{dev_api}/api/v1/results/{rid}/metrics", timeout=10).json()
    units = body["units"]
    assert set(units) == set(body["metrics"])
    assert (units["max_drawdown_duration"], units["n_periods"], units["cagr"],
            units["sharpe"]) == ("days", "count", "fraction", "ratio")
    meta = requests.get(f"{dev_api}/api/v1/results/{rid}", timeout=10).json()
    assert meta["units"] == units
    listed = requests.get(f"{dev_api}/api/v1/results", timeout=10).json()
    assert next(m for m in listed if m["result_id"] == rid)["units"] == units
