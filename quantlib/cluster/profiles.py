"""Named Dask cluster profiles (``small``, ``large``...) read from YAML, schema-checked.

A profile says what one worker pod requests from Kubernetes, how many threads it
runs, the adaptive bounds, the idle timeout after which the operator deletes the
cluster, and which node pool (by label) the pods land on. The built-in file is
``quantlib/cluster/profiles.yaml``; ``QUANTLIB_CLUSTER_PROFILES`` or the ``path``
argument points at another one.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from quantlib.errors import ClusterError

__all__ = ["load_profiles", "get_profile", "DEFAULT_PROFILES", "PROFILES_SCHEMA_PATH"]

_HERE = Path(__file__).parent
DEFAULT_PROFILES = _HERE / "profiles.yaml"
PROFILES_SCHEMA_PATH = _HERE / "profiles.schema.json"


@cache
def _schema() -> dict[str, Any]:
    return json.loads(PROFILES_SCHEMA_PATH.read_text())


def load_profiles(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate a profiles file; return ``{name: profile}``.

    Parameters
    ----------
    path : str or path, optional
        YAML file; defaults to ``QUANTLIB_CLUSTER_PROFILES`` or the built-in file.

    Raises
    ------
    ClusterError
        If the file is missing, is not YAML, breaks the schema, or a profile's
        ``min_workers`` exceeds its ``max_workers``; the message names the file and field.

    Examples
    --------
    >>> profiles = load_profiles()
    >>> sorted(profiles)
    ['large', 'small']
    >>> profiles["small"]["worker"]["requests"]
    {'cpu': '1', 'memory': '4Gi'}
    """
    p = Path(path or os.environ.get("QUANTLIB_CLUSTER_PROFILES") or DEFAULT_PROFILES)
    if not p.exists():
        raise ClusterError("cluster profiles file must exist", found="no such file",
                           fix="create it or unset QUANTLIB_CLUSTER_PROFILES", file=str(p))
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ClusterError("cluster profiles must be valid YAML", found=str(exc),
                           fix="correct the YAML syntax", file=str(p)) from exc
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(raw),
                    key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(x) for x in err.absolute_path) or "<root>"
        raise ClusterError("cluster profiles must match the schema", found=err.message,
                           fix=f"see {PROFILES_SCHEMA_PATH.name}", file=str(p), field=where)
    profiles: dict[str, dict[str, Any]] = raw["profiles"]
    for name, prof in profiles.items():
        if prof["min_workers"] > prof["max_workers"]:
            raise ClusterError(
                "min_workers must not exceed max_workers",
                found=f"{prof['min_workers']} > {prof['max_workers']}",
                fix="lower min_workers or raise max_workers", file=str(p),
                field=f"profiles.{name}.min_workers")
    return profiles


def get_profile(name: str, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Return one validated profile by name.

    Raises
    ------
    ClusterError
        If there is no such profile; the message lists the known ones.

    Examples
    --------
    >>> get_profile("large")["max_workers"]
    32
    >>> get_profile("huge")
    Traceback (most recent call last):
    ...
    quantlib.errors.ClusterError: cluster profile must exist; found 'huge' [file=...profiles.yaml, field=profile]. Fix: use one of: large, small
    """
    profiles = load_profiles(path)
    if name not in profiles:
        p = path or os.environ.get("QUANTLIB_CLUSTER_PROFILES") or DEFAULT_PROFILES
        raise ClusterError("cluster profile must exist", found=repr(name),
                           fix="use one of: " + ", ".join(sorted(profiles)),
                           file=str(p), field="profile")
    return profiles[name]
