"""Platform configuration: one YAML file, validated against a JSON schema.

Where it comes from, first match wins:

1. the ``path`` argument of :func:`load_config`;
2. the ``QUANTLIB_CONFIG`` environment variable;
3. ``~/.config/quantlib/config.yaml`` if it exists;
4. the built-in defaults below.

Single values can be overridden by environment variables: ``QUANTLIB_STORE``
(the store URL), ``QUANTLIB_RESULTS`` (the results store URL), ``QUANTLIB_HOME``
(the folder holding the default store, results and runtime state).

Secrets (S3 keys, hub secrets) never live in this file: S3 credentials come from
the standard AWS environment variables, read by the S3 client itself.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantlib.markets import DEFAULT_MARKETS, MARKETS
from quantlib.yamlfile import check_schema, read_yaml

__all__ = ["Config", "load_config", "quantlib_home", "CONFIG_SCHEMA", "DEFAULTS"]

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "quantlib platform configuration",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "store": {"type": ["string", "null"], "description": "fsspec URL of the data store"},
        "results": {"type": ["string", "null"], "description": "fsspec URL of the results store"},
        "base_currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "markets": {"type": "array", "items": {"enum": list(MARKETS)}, "minItems": 1,
                    "description": "markets to refresh and show (quantlib/markets.yaml)"},
        "decision_offset_minutes": {"type": "integer", "minimum": 0, "maximum": 720},
        "validation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_bad_row_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                "max_unexplained_jump": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "refresh": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "lookback_sessions": {
                    "type": "integer", "minimum": 0,
                    "description": "an incremental refresh re-fetches this many sessions "
                                   "before the last stored one (vendor corrections)"},
            },
        },
        "s3": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "endpoint_url": {"type": ["string", "null"]},
                "region": {"type": ["string", "null"]},
                "allow_http": {"type": "boolean"},
            },
        },
        "cluster": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "kind": {"enum": ["auto", "local", "kubernetes"]},
                "min_workers": {"type": "integer", "minimum": 0},
                "max_workers": {"type": "integer", "minimum": 1},
                "threads_per_worker": {"type": "integer", "minimum": 1},
                "memory_limit": {"type": "string"},
                "idle_timeout": {"type": "string"},
                "profile": {"type": "string"},
                "start_timeout_s": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "sandbox": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "n_assets": {"type": "integer", "minimum": 5, "maximum": 5000},
                "years": {"type": "number", "exclusiveMinimum": 0, "maximum": 30},
                "seed": {"type": "integer"},
                "end": {"type": "string", "format": "date"},
            },
        },
    },
}

DEFAULTS: dict[str, Any] = {
    "store": None,
    "results": None,
    "base_currency": "USD",
    "markets": list(DEFAULT_MARKETS),
    "decision_offset_minutes": 30,
    "validation": {"max_bad_row_fraction": 0.01, "max_unexplained_jump": 0.6},
    "refresh": {"lookback_sessions": 10},
    "s3": {"endpoint_url": None, "region": "us-east-1", "allow_http": True},
    "cluster": {
        "kind": "auto",
        "min_workers": 1,
        "max_workers": 2,
        "threads_per_worker": 1,
        "memory_limit": "4GiB",
        "idle_timeout": "20 minutes",
        "profile": "small",
        "start_timeout_s": 60.0,
    },
    "sandbox": {"n_assets": 300, "years": 10, "seed": 42, "end": "2025-12-31"},
}


def quantlib_home() -> Path:
    """Folder for the default store, results and runtime state (``QUANTLIB_HOME``).

    Examples
    --------
    >>> import os
    >>> os.environ["QUANTLIB_HOME"] = "/tmp/qh"
    >>> str(quantlib_home())
    '/tmp/qh'
    >>> del os.environ["QUANTLIB_HOME"]
    """
    return Path(os.environ.get("QUANTLIB_HOME", Path.home() / ".quantlib")).expanduser()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Config:
    """Validated platform configuration (see :data:`CONFIG_SCHEMA`)."""

    data: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    path: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def store_url(self) -> str:
        """fsspec URL of the data store (``QUANTLIB_STORE`` wins)."""
        return os.environ.get("QUANTLIB_STORE") or self.data["store"] or str(
            quantlib_home() / "store")

    @property
    def results_url(self) -> str:
        """fsspec URL of the results store (``QUANTLIB_RESULTS`` wins)."""
        return os.environ.get("QUANTLIB_RESULTS") or self.data["results"] or str(
            quantlib_home() / "results")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load, merge over the defaults and validate the platform configuration.

    Parameters
    ----------
    path : str or path, optional
        A YAML file. Defaults to ``QUANTLIB_CONFIG`` or ``~/.config/quantlib/config.yaml``.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or breaks the schema; the message names
        the file and the offending key.

    Examples
    --------
    >>> cfg = load_config()
    >>> cfg["base_currency"]
    'USD'
    """
    chosen = path or os.environ.get("QUANTLIB_CONFIG")
    user_default = Path("~/.config/quantlib/config.yaml").expanduser()
    if chosen is None and user_default.exists():
        chosen = user_default
    raw: dict[str, Any] = {}
    if chosen is not None:
        raw = read_yaml(chosen, what="configuration file",
                        fix_missing="create it or unset QUANTLIB_CONFIG") or {}
    validate_config(raw, source=str(chosen) if chosen else "<defaults>")
    merged = _merge(DEFAULTS, raw)
    return Config(merged, str(chosen) if chosen else None)


def validate_config(raw: Any, source: str = "<config>") -> None:
    """Validate a configuration mapping against :data:`CONFIG_SCHEMA`.

    Examples
    --------
    >>> validate_config({"markets": ["KR", "CH"]})
    Traceback (most recent call last):
    ...
    quantlib.errors.ConfigError: configuration must match its schema; found 'CH' is not one of ['KR', 'US', 'EU', 'JP'] [file=<config>, field=markets.1]. Fix: see quantlib.config.CONFIG_SCHEMA
    """
    check_schema(raw, CONFIG_SCHEMA, source=source, what="configuration",
                 fix="see quantlib.config.CONFIG_SCHEMA")
