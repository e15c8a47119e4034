"""The ``quantlib backtest`` command, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

from quantlib.results import list_results


def quantlib_cmd(*args: str, env_home) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "QUANTLIB_HOME": str(env_home)}
    return subprocess.run([sys.executable, "-c", "import sys; from quantlib.cli import main; "
                           "sys.exit(main())", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_backtest_list_run_and_publish(tmp_path, monkeypatch):
    out = quantlib_cmd("backtest", "list", env_home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "xs_momentum(window=252, skip=21" in out.stdout
    synthetic = ("backtest", "run", "ma_crossover", "-p", "fast=5", "-p", "slow=30",
                 "--synthetic", "--assets", "8", "--days", "200", "--markets", "",
                 "--publish", "CLI demo", "--tag", "cli")
    refused = quantlib_cmd(*synthetic, env_home=tmp_path)
    assert refused.returncode != 0
    assert "must be computed on real data" in refused.stderr
    assert "--allow-synthetic" in refused.stderr
    monkeypatch.setenv("QUANTLIB_HOME", str(tmp_path))
    assert list_results() == []
    out = quantlib_cmd(*synthetic, "--allow-synthetic", env_home=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["published"] == doc["result_id"] and doc["synthetic"] is True
    [meta] = list_results()
    assert meta["title"] == "[synthetic] CLI demo" and meta["params"]["fast"] == 5
    assert meta["synthetic"] is True
    bad = quantlib_cmd("backtest", "run", "ma_crossover", "-p", "fast", env_home=tmp_path)
    assert bad.returncode == 2 and "parameters must look like name=value" in bad.stderr


def test_backtest_run_reads_the_catalog_by_default(catalog_store, tmp_path, monkeypatch):
    """``backtest run`` used to backtest a synthetic panel unless told --catalog."""
    import quantlib
    from quantlib.backtest import run
    from quantlib.store import CuratedStore

    out = quantlib_cmd("backtest", "run", "xs_momentum", "-p", "window=60", "-p", "skip=5",
                       "--store", catalog_store, "--markets", "US,KR",
                       "--publish", "Momentum on the catalog", env_home=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["snapshot"] == CuratedStore(catalog_store).resolve(None)
    assert doc["synthetic"] is False
    data = quantlib.load_dataset(catalog_store, compute=True, markets=["US", "KR"])
    res = run("xs_momentum", data, window=60, skip=5)
    assert doc["result_id"] == res.result_id == doc["published"]
    assert doc["metrics"]["sharpe"] == res.metrics["sharpe"]
    # units and display: one formatter (durations in days, not 30000.00%)
    assert doc["units"]["max_drawdown_duration"] == "days"
    assert doc["display"]["max_drawdown_duration"] == (
        f"{res.metrics['max_drawdown_duration']} days")
    assert doc["display"]["cagr"] == f"{res.metrics['cagr'] * 100:.2f}%"
    monkeypatch.setenv("QUANTLIB_HOME", str(tmp_path))
    [meta] = list_results()
    assert meta["data"]["markets"] == ["US", "KR"] and not meta["synthetic"]
    missing = quantlib_cmd("backtest", "run", "xs_momentum", "--store",
                           str(tmp_path / "no-store"), env_home=tmp_path)
    assert missing.returncode != 0
    assert "read from the catalog's store by default" in missing.stderr
    assert "--synthetic" in missing.stderr
