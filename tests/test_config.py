"""Configuration: defaults, file loading, schema errors, environment overrides."""

from __future__ import annotations

import pytest

from quantlib.config import load_config
from quantlib.errors import ConfigError


def test_defaults_and_env_overrides(monkeypatch, _isolated_home):
    cfg = load_config()
    assert cfg["markets"] == ["KR", "US", "EU"]
    assert cfg.store_url == str(_isolated_home / "store")
    assert cfg.results_url == str(_isolated_home / "results")
    monkeypatch.setenv("QUANTLIB_STORE", "s3://bucket/prefix")
    assert load_config().store_url == "s3://bucket/prefix"


def test_file_is_merged_over_defaults(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("markets: [KR]\ncluster: {max_workers: 4}\n")
    cfg = load_config(p)
    assert cfg["markets"] == ["KR"]
    assert cfg["cluster"]["max_workers"] == 4
    assert cfg["cluster"]["min_workers"] == 1  # default kept


def test_schema_error_names_file_and_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("cluster: {max_workers: 0}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert str(p) in msg and "field=cluster.max_workers" in msg
    assert "0 is less than the minimum of 1" in msg


def test_unknown_key_and_missing_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("secret_key: abc\n")
    with pytest.raises(ConfigError, match="Additional properties are not allowed"):
        load_config(p)
    with pytest.raises(ConfigError, match="configuration file must exist"):
        load_config(tmp_path / "nope.yaml")


def test_config_loads_without_building_the_iri_parsers():
    """jsonschema's optional IRI checker (rfc3987-syntax) costs seconds per process start.

    quantlib's schemas use no ``format`` keyword; loading and validating the config in a
    fresh process must not import it, and a later import of it still works.
    """
    import subprocess
    import sys

    code = ("import sys; from quantlib.config import load_config; load_config(); "
            "print('rfc3987_syntax' in sys.modules); import rfc3987_syntax; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "ok"]
