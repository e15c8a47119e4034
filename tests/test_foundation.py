"""The project's foundation: layout, environment drift, linters, type checker, CLI.

ruff and mypy run here so a plain ``pytest`` is the whole CI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from quantlib.cli import main

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few packages differently from PyPI.
CONDA_NAMES = {"python-duckdb": "duckdb", "redis-py": "redis"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", req)
    assert m, req
    name = m.group(1).lower().replace("_", "-")
    spec = m.group(3).split(";")[0].replace(" ", "")
    return CONDA_NAMES.get(name, name), spec


def _pyproject_deps() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(_split(r) for r in data["project"]["dependencies"])


def _environment_deps() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, spec = _split(item)
            if name in {"python", "pip", "nodejs"}:
                continue
            out[name] = spec
    return out


def test_layout_matches_design_card():
    for name in ["notebooks", "quantlib", "catalogs", "dashboards", "hub-config", "tests",
                 "pyproject.toml", "environment.yml", "README.md", "bench", "docs",
                 ".ci/run", ".python-version", "uv.lock"]:
        assert (ROOT / name).exists(), name
    assert (ROOT / ".python-version").read_text().strip() == "3.12"


def test_environment_yml_matches_pyproject():
    py, env = _pyproject_deps(), _environment_deps()
    missing = sorted(set(py) - set(env))
    extra = sorted(set(env) - set(py))
    differ = sorted(n for n in set(py) & set(env) if py[n] != env[n])
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not differ, "version floors differ: " + ", ".join(
        f"{n}: pyproject {py[n]!r} vs environment.yml {env[n]!r}" for n in differ)


def test_drift_check_detects_a_difference(tmp_path, monkeypatch):
    """The drift check itself must be able to fail."""
    assert _split("dask[array]>=2025.1") == ("dask", ">=2025.1")
    assert _split("python-duckdb>=1.1") == ("duckdb", ">=1.1")
    assert _split("numpy>=2.1") != _split("numpy>=2.2")


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run([ruff, "check", "quantlib", "tests", "bench", "dashboards"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 90 s on CI; a clean clone has no mypy cache and the box may be loaded
def test_mypy_clean():
    proc = subprocess.run([sys.executable, "-m", "mypy", "quantlib", "dashboards"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_cli_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ["data", "backtest", "cluster", "schedule", "platform", "dashboards"]:
        assert cmd in out


def test_cli_console_script_exits_nonzero_on_bad_usage():
    exe = Path(sys.executable).parent / "quantlib"
    proc = subprocess.run([str(exe), "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such command" in proc.stderr


def test_cli_maps_quantlib_errors_to_exit_codes(capsys, tmp_path, monkeypatch):
    import click

    from quantlib import cli as cli_mod
    from quantlib.errors import ConfigError

    @cli_mod.cli.command("boom-test")
    def _boom() -> None:
        raise ConfigError("store URL must be set", fix="pass --store", file="x.yaml")

    try:
        code = main(["boom-test"])
    finally:
        cli_mod.cli.commands.pop("boom-test")
    assert code == ConfigError.exit_code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: store URL must be set [file=x.yaml]. Fix: pass --store"
    assert isinstance(cli_mod.cli, click.Group)
