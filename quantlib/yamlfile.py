"""The one loader of YAML files validated by a JSON schema.

Every data file quantlib reads as configuration (``quantlib/markets.yaml``, the platform
config, ``catalogs/schedules.yaml``, cluster profiles, ``hub-config/platform.yaml``) goes
through :func:`load_yaml`: it reads the file, parses it safely, validates it against a
Draft 2020-12 schema and raises the caller's error class naming the file and the first
offending key (sorted by path, so the message is stable).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from quantlib.errors import ConfigError, QuantlibError

__all__ = ["load_yaml", "read_yaml", "check_schema", "load_schema"]


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON schema stored as a file next to the code.

    Examples
    --------
    >>> from quantlib.markets import SCHEMA_FILE
    >>> load_schema(SCHEMA_FILE)["title"]
    'quantlib market registry'
    """
    schema: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return schema


def read_yaml(path: str | os.PathLike[str], *, what: str = "the configuration file",
              error: type[QuantlibError] = ConfigError, fix_missing: str = "create it") -> Any:
    """Parse a YAML file; ``error`` names the file if it is missing or not YAML.

    Examples
    --------
    >>> read_yaml("/no/such.yaml", what="the jobs file")
    Traceback (most recent call last):
    ...
    quantlib.errors.ConfigError: the jobs file must exist; found no such file [file=/no/such.yaml]. Fix: create it
    """
    p = Path(path)
    if not p.exists():
        raise error(f"{what} must exist", found="no such file", fix=fix_missing, file=str(p))
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{what} must be valid YAML", found=str(exc),
                    fix="correct the YAML syntax", file=str(p)) from exc


def _jsonschema() -> Any:
    """``jsonschema``, imported without its optional IRI format checker.

    When ``rfc3987-syntax`` is installed (jupyter-events pulls it in), importing jsonschema
    builds ~40 Earley parsers: 2-3 s of CPU on this machine, 10 s under load, paid by
    every CLI call and service start. quantlib's schemas use no ``format`` keyword, so the
    first import skips that module; a process that imported jsonschema before keeps its
    own checkers.
    """
    if "jsonschema" in sys.modules:
        return sys.modules["jsonschema"]
    block = "rfc3987_syntax" not in sys.modules
    if block:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # ImportError
    try:
        import jsonschema
    finally:
        if block:
            del sys.modules["rfc3987_syntax"]
    return jsonschema


Locate = Callable[[list[str]], dict[str, Any]]


def _field(path: list[str]) -> dict[str, Any]:
    return {"field": ".".join(path) or "<root>"}


def check_schema(raw: Any, schema: dict[str, Any], *, source: str,
                 what: str = "the configuration", error: type[QuantlibError] = ConfigError,
                 fix: str = "see its JSON schema", locate: Locate = _field) -> None:
    """Raise ``error`` naming ``source`` and the first offending key if ``raw`` breaks ``schema``.

    ``locate`` turns the offending key's path into the error's context (default
    ``field=a.b.c``; the jobs file also names the job).

    Examples
    --------
    >>> schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    >>> check_schema({"n": "x"}, schema, source="a.yaml")
    Traceback (most recent call last):
    ...
    quantlib.errors.ConfigError: the configuration must match its schema; found 'x' is not of type 'integer' [file=a.yaml, field=n]. Fix: see its JSON schema
    """
    validator = _jsonschema().Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        raise error(f"{what} must match its schema", found=err.message, fix=fix, file=source,
                    **locate([str(p) for p in err.absolute_path]))


def load_yaml(path: str | os.PathLike[str], schema: dict[str, Any], *,
              what: str = "the configuration file", error: type[QuantlibError] = ConfigError,
              fix: str = "see its JSON schema", fix_missing: str = "create it",
              locate: Locate = _field) -> Any:
    """Read a YAML file and validate it against ``schema`` (one call for every config file).

    Parameters
    ----------
    path : path
        The YAML file.
    schema : dict
        A Draft 2020-12 JSON schema.
    what : str
        How messages name the file ("the schedules file").
    error : QuantlibError subclass
        What to raise (``ConfigError``, ``ScheduleError``, ``ClusterError``...).
    fix, fix_missing : str
        The fix the message gives for a schema break / a missing file.
    locate : callable, optional
        Offending key path -> error context (see :func:`check_schema`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
    >>> _ = p.write_text("n: 3\\n")
    >>> load_yaml(p, {"type": "object", "properties": {"n": {"type": "integer"}}})
    {'n': 3}
    """
    raw = read_yaml(path, what=what, error=error, fix_missing=fix_missing)
    check_schema(raw, schema, source=str(path), what=what, error=error, fix=fix, locate=locate)
    return raw
