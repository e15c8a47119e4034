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
    out = quantlib_cmd("backtest", "run", "ma_crossover", "-p", "fast=5", "-p", "slow=30",
                       "--assets", "8", "--days", "200", "--markets", "",
                       "--publish", "CLI demo", "--tag", "cli", env_home=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["published"] == doc["result_id"]
    monkeypatch.setenv("QUANTLIB_HOME", str(tmp_path))
    [meta] = list_results()
    assert meta["title"] == "CLI demo" and meta["params"]["fast"] == 5
    bad = quantlib_cmd("backtest", "run", "ma_crossover", "-p", "fast", env_home=tmp_path)
    assert bad.returncode == 2 and "parameters must look like name=value" in bad.stderr
