"""Named Dask cluster profiles (``small``, ``large``...) read from YAML, schema-checked.

A profile says what one worker pod requests from Kubernetes, how many threads it
runs, the adaptive bounds, the idle timeout after which the operator deletes the
cluster, and which node pool (by label) the pods land on. The built-in file is
``quantlib/cluster/profiles.yaml``; ``QUANTLIB_CLUSTER_PROFILES`` or the ``path``
argument points at another one.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from quantlib.errors import ClusterError
from quantlib.yamlfile import load_schema, load_yaml

__all__ = ["load_profiles", "get_profile", "DEFAULT_PROFILES", "PROFILES_SCHEMA_PATH"]

_HERE = Path(__file__).parent
DEFAULT_PROFILES = _HERE / "profiles.yaml"
PROFILES_SCHEMA_PATH = _HERE / "profiles.schema.json"


@cache
def _schema() -> dict[str, Any]:
    return load_schema(PROFILES_SCHEMA_PATH)


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
    raw = load_yaml(p, _schema(), what="the cluster profiles file", error=ClusterError,
                    fix=f"see {PROFILES_SCHEMA_PATH.name}",
                    fix_missing="create it or unset QUANTLIB_CLUSTER_PROFILES")
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
