"""`quantlib data refresh|ingest|status` in subprocesses: output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from quantlib.pipeline import bokeh_stocks_path

pytestmark = pytest.mark.slow


def _quantlib(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantlib.cli", *args], env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


def test_cli_refresh_ingest_status(tmp_path):
    store = str(tmp_path / "store")
    run = _quantlib("data", "refresh", "--store", store, "--sandbox", "--markets", "US,EU",
                    "--assets", "8", "--years", "1", "--tag", "cli-first", "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "tag cli-first" in run.stdout and "markets: US, EU, FX" in run.stdout
    run = _quantlib("data", "ingest", bokeh_stocks_path(), "--format", "yahoo-csv",
                    "--market", "US", "--store", store)
    assert run.returncode == 0, run.stderr
    st = _quantlib("data", "status", "--store", store, "--json")
    assert st.returncode == 0, st.stderr
    info = json.loads(st.stdout)
    assert len(info["versions"]) == 2
    assert info["versions"][1]["tags"] == ["cli-first"]
    sources = {(f["market"], f["source"]) for f in info["freshness"]}
    assert ("US", "file-drop") in sources and ("EU", "ftp-eu") in sources
    text = _quantlib("data", "status", "--store", store)
    assert "versions: 2" in text.stdout
    bad = _quantlib("data", "refresh", "--store", store, "--markets", "US,CH")
    assert bad.returncode == 2
    assert "market must be one of KR, US, EU, JP; found 'CH'" in bad.stderr


def test_cli_rejected_refresh_exits_nonzero(tmp_path):
    from quantlib.sandbox import start_sandbox

    store = str(tmp_path / "store")
    # a sandbox started here writes $QUANTLIB_HOME/run/sandbox.json; the CLI reads it
    with start_sandbox(n_assets=8, years=1, markets=("US",), seed=3) as sb:
        sb.faults.add("garbage_values", "v1/prices*", times=None, protocol="http")
        run = _quantlib("data", "refresh", "--store", store, "--markets", "US",
                        "--max-bad-fraction", "0.0001", "--no-progress")
    assert run.returncode == 4, run.stderr
    assert run.stderr.startswith("error: ")
    assert "nothing was published (rejected: US)" in run.stderr
    st = _quantlib("data", "status", "--store", store, "--json")
    info = json.loads(st.stdout)
    assert info["versions"] == []
    assert info["quarantine"][0]["market"] == "US" and info["quarantine"][0]["rows"] > 0
