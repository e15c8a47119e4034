"""Fault injection for the sandbox servers.

A :class:`FaultRegistry` holds armed faults; each server asks it, per request, whether a
fault matches the path being served (``fnmatch`` glob on the FTP file path or the HTTP
URL path, with or without the leading ``/``). A fault fires at most ``times`` times
(``None``: every time). Kinds:

=================  ==============================================================
``drop_connection`` FTP: data connection closed mid-transfer (426); HTTP: body cut
``http_5xx``        HTTP 503; FTP ``451`` transient error
``http_429``        HTTP 429 with ``Retry-After``; FTP ``421`` too busy
``truncate``        file cut in half / page with half its rows; sidecar and
                    ``total_rows`` unchanged
``duplicate_rows``  a few data rows repeated
``rename_column``   one column renamed (``<name>_v2``)
``missing_column``  one column dropped
``garbage_values``  a few rows get a negative or non-numeric value
=================  ==============================================================

Content faults never apply to ``.sha256`` sidecars, so the sidecar of a damaged file still
describes the original.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any

from quantlib.errors import ConfigError

__all__ = ["Fault", "FaultRegistry", "FAULT_KINDS", "CONTENT_KINDS", "corrupt_csv",
           "corrupt_records", "parse_fault_spec"]

FAULT_KINDS = ("drop_connection", "http_5xx", "http_429", "truncate", "duplicate_rows",
               "rename_column", "missing_column", "garbage_values")
CONTENT_KINDS = frozenset(FAULT_KINDS[3:])
_DEFAULT_COLUMNS = ("종가", "Close", "c", "per_usd", "value")
_ids = itertools.count(1)


@dataclass
class Fault:
    """An armed fault. ``times=None`` fires forever; ``protocol`` limits it to one server."""

    kind: str
    match: str = "*"
    times: int | None = 1
    column: str | None = None
    protocol: str | None = None
    id: int = 0
    fired: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return asdict(self)


def _check(kind: str, times: int | None, protocol: str | None) -> None:
    if kind not in FAULT_KINDS:
        raise ConfigError(f"fault kind must be one of {', '.join(FAULT_KINDS)}",
                          found=repr(kind), fix="pick a listed kind", field="kind")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ConfigError("fault times must be a positive integer or None", found=repr(times),
                          fix="pass times=1 or more, or None for always", field="times")
    if protocol not in (None, "ftp", "http"):
        raise ConfigError("fault protocol must be 'ftp', 'http' or None", found=repr(protocol),
                          fix="leave protocol out to arm both servers", field="protocol")


class FaultRegistry:
    """Thread-safe set of armed faults shared by the FTP and HTTP servers.

    Examples
    --------
    >>> reg = FaultRegistry()
    >>> f = reg.add(kind="http_5xx", match="/v1/prices", times=1)
    >>> reg.take("/v1/prices", "http").kind
    'http_5xx'
    >>> reg.take("/v1/prices", "http") is None
    True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, match: str = "*", times: int | None = 1, *,
            column: str | None = None, protocol: str | None = None) -> Fault:
        """Arm a fault; returns it (``.fired`` counts how often it struck)."""
        _check(kind, times, protocol)
        fault = Fault(kind, match, times, column, protocol, id=next(_ids))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> int:
        """Disarm every fault; returns how many were armed."""
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
        return n

    def list(self) -> list[Fault]:
        """Armed faults (including spent ones, until :meth:`clear`)."""
        with self._lock:
            return list(self._faults)

    def take(self, path: str, protocol: str) -> Fault | None:
        """The first armed fault matching ``path`` on ``protocol``, consuming one use."""
        bare = path.lstrip("/")
        with self._lock:
            for fault in self._faults:
                if fault.protocol not in (None, protocol):
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if fault.kind in CONTENT_KINDS and bare.endswith(".sha256"):
                    continue
                if fnmatch.fnmatchcase(path, fault.match) or fnmatch.fnmatchcase(
                        bare, fault.match):
                    fault.fired += 1
                    return fault
        return None


def parse_fault_spec(spec: str) -> dict[str, Any]:
    """Parse a CLI fault spec ``KIND[:GLOB[:TIMES]]`` (``TIMES`` may be ``inf``).

    Examples
    --------
    >>> parse_fault_spec("truncate:kr/prices/*:2")
    {'kind': 'truncate', 'match': 'kr/prices/*', 'times': 2}
    >>> parse_fault_spec("http_5xx")
    {'kind': 'http_5xx', 'match': '*', 'times': 1}
    """
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ConfigError("a fault spec must look like KIND[:GLOB[:TIMES]]", found=repr(spec),
                          fix="e.g. --fault truncate:kr/prices/*:2", field="fault")
    times: int | None = 1
    if len(parts) == 3:
        if parts[2] in ("inf", "*", "always"):
            times = None
        elif parts[2].isdigit():
            times = int(parts[2])
        else:
            raise ConfigError("fault TIMES must be a positive integer or 'inf'",
                              found=repr(parts[2]), fix="e.g. --fault http_5xx:*:3",
                              field="fault")
    _check(parts[0], times, None)
    return {"kind": parts[0], "match": parts[1] if len(parts) > 1 and parts[1] else "*",
            "times": times}


def _pick_column(names: list[str], wanted: str | None) -> int:
    if wanted is not None and wanted in names:
        return names.index(wanted)
    for cand in _DEFAULT_COLUMNS:
        if cand in names:
            return names.index(cand)
    return len(names) - 1


def corrupt_csv(data: bytes, fault: Fault, encoding: str, sep: str) -> bytes:
    """Apply a content fault to a CSV file's bytes (header line first).

    Examples
    --------
    >>> f = Fault("missing_column", column="b")
    >>> corrupt_csv(b"a,b\\n1,2\\n", f, "utf-8", ",")
    b'a\\n1\\n'
    """
    if fault.kind == "truncate":
        return data[: max(1, len(data) // 2)]
    lines = data.decode(encoding).splitlines()
    header, rows = lines[0].split(sep), [line.split(sep) for line in lines[1:]]
    col = _pick_column(header, fault.column)
    if fault.kind == "duplicate_rows":
        rows = rows + rows[:3]
    elif fault.kind == "rename_column":
        header[col] = header[col] + "_v2"
    elif fault.kind == "missing_column":
        header = header[:col] + header[col + 1:]
        rows = [r[:col] + r[col + 1:] for r in rows]
    elif fault.kind == "garbage_values":
        for k, r in enumerate(rows[:4]):
            r[col] = "-1" if k % 2 == 0 else "n/a"
    text = "\n".join(sep.join(r) for r in [header, *rows]) + "\n"
    return text.encode(encoding)


def corrupt_records(records: list[dict[str, Any]], fault: Fault) -> list[dict[str, Any]]:
    """Apply a content fault to one page of JSON records (copies, input untouched).

    Examples
    --------
    >>> corrupt_records([{"t": 1, "c": 2.0}], Fault("rename_column"))
    [{'t': 1, 'c_v2': 2.0}]
    """
    recs = [dict(r) for r in records]
    if not recs:
        return recs
    key = list(recs[0])[_pick_column(list(recs[0]), fault.column)]
    if fault.kind == "truncate":
        return recs[: len(recs) // 2]
    if fault.kind == "duplicate_rows":
        return recs + [dict(r) for r in recs[:3]]
    for k, r in enumerate(recs):
        if fault.kind == "rename_column":
            r[key + "_v2"] = r.pop(key)
        elif fault.kind == "missing_column":
            r.pop(key)
        elif fault.kind == "garbage_values" and k < 4:
            r[key] = -1.0 if k % 2 == 0 else "n/a"
    return recs
