"""The market registry: ``quantlib/markets.yaml``, loaded and validated once.

Every default that depends on which markets exist reads this module: the calendars
(:mod:`quantlib.calendars`), the platform config's allowed and default markets, the
vendor sources, the delimited-file readers and the sandbox writers, the catalog
parameters, the refresh and the sandbox generator. Code never branches on a market's
code: what differs between markets is a field of its entry.

An entry holds the market's code, MIC, exchange calendar, currency, time zone, regular
close, vendor lag, vendor sources (FTP delimited files in a named format, or endpoints
of the HTTP API) and the sandbox's parameters for generating its data.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from quantlib.errors import CatalogError

__all__ = [
    "Market",
    "SourceSpec",
    "DelimitedFormat",
    "Registry",
    "registry",
    "MARKETS",
    "DEFAULT_MARKETS",
    "STATEMENT_FIELDS",
    "FORMATS",
    "REGISTRY_FILE",
    "SCHEMA_FILE",
    "market",
    "currency_markets",
]

REGISTRY_FILE = Path(__file__).with_name("markets.yaml")
SCHEMA_FILE = Path(__file__).with_name("markets.schema.json")


@dataclass(frozen=True)
class SourceSpec:
    """One vendor feed of a market: FTP files in a ``format`` under ``root``, or API endpoints."""

    name: str
    protocol: str
    format: str | None = None
    root: str | None = None
    endpoints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Market:
    """A market the platform covers (one entry of ``quantlib/markets.yaml``).

    Examples
    --------
    >>> m = market("JP")
    >>> m.mic, m.currency, m.tz, str(m.close), str(m.vendor_lag)
    ('XTKS', 'JPY', 'Asia/Tokyo', '15:30:00', '0:20:00')
    """

    code: str
    mic: str
    currency: str
    tz: str
    close: time
    calendar: str = ""
    vendor_lag: timedelta = timedelta(minutes=15)
    sources: tuple[SourceSpec, ...] = ()
    sandbox: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class DelimitedFormat:
    """A vendor's delimited (CSV) file format: dialect, file paths and column map.

    ``files`` maps a canonical frame to its path under a source's root (strftime codes
    make one file per distinct formatted date); ``columns`` maps, per frame, each vendor
    column in file order to the canonical field it holds; ``action_kinds`` maps the
    vendor's corporate-action words to ``split``/``dividend``. ``timestamp_format`` is a
    strftime pattern in the market's time zone or ``ISO8601``.

    Examples
    --------
    >>> f = FORMATS["eu-ftp-csv"]
    >>> f.separator, f.decimal, f.header("symbols")
    (';', ',', 'ISIN;Ticker;ValidFrom;ValidTo')
    >>> f.frame_of("eu/prices/prices_202403.csv"), f.frame_of("eu/reference.csv")
    ('prices', 'assets')
    """

    name: str
    description: str
    encoding: str
    separator: str
    decimal: str
    date_format: str
    timestamp_format: str
    files: dict[str, str]
    columns: dict[str, dict[str, str]]
    action_kinds: dict[str, str]

    def header(self, frame: str) -> str:
        """The header line of a frame's file."""
        return self.separator.join(self.columns[frame])

    def vendor_column(self, frame: str, canonical: str) -> str:
        """The vendor's column holding a canonical field of a frame."""
        return next(col for col, f in self.columns[frame].items() if f == canonical)

    def frame_of(self, file: str) -> str:
        """The frame a delivered file holds (``""`` if the format has no such file)."""
        path = f"/{file}"
        for frame, pattern in self.files.items():
            if "%" in pattern:
                folder = pattern.rsplit("/", 1)[0] if "/" in pattern else ""
                if folder and f"/{folder}/" in path:
                    return frame
            elif path.endswith(f"/{pattern}"):
                return frame
        return ""


@dataclass(frozen=True)
class Registry:
    """The whole registry: markets, default markets, statement fields, formats, sources."""

    markets: dict[str, Market]
    default_markets: tuple[str, ...]
    statement_fields: tuple[str, ...]
    formats: dict[str, DelimitedFormat]
    shared_sources: dict[str, tuple[SourceSpec, ...]]
    path: str


def _source(raw: dict[str, Any]) -> SourceSpec:
    return SourceSpec(raw["name"], raw["protocol"], raw.get("format"), raw.get("root"),
                      tuple(raw.get("endpoints", ())))


def _market(code: str, raw: dict[str, Any]) -> Market:
    hh, mm = (int(x) for x in raw["close"].split(":"))
    return Market(code, raw["mic"], raw["currency"], raw["tz"], time(hh, mm), raw["calendar"],
                  timedelta(minutes=raw["vendor_lag_minutes"]),
                  tuple(_source(s) for s in raw["sources"]), raw.get("sandbox", {}))


def _check_consistency(reg: Registry) -> None:
    """Cross-entry rules a JSON schema cannot state."""
    from quantlib.errors import ConfigError

    names: set[str] = set()
    for code, m in reg.markets.items():
        for s in m.sources:
            if s.name in names:
                raise ConfigError("source names must be unique", found=repr(s.name),
                                  fix="rename one of them", file=reg.path, market=code)
            names.add(s.name)
            if s.format is not None and s.format not in reg.formats:
                raise ConfigError(f"an FTP source's format must be one of "
                                  f"{', '.join(reg.formats)}", found=repr(s.format),
                                  fix="add the format under `formats:`", file=reg.path,
                                  market=code, source=s.name)
    for code in reg.default_markets:
        if code not in reg.markets:
            raise ConfigError(f"default markets must be in the registry "
                              f"({', '.join(reg.markets)})", found=repr(code),
                              fix="add the market's entry or drop it from default_markets",
                              file=reg.path, field="default_markets")


def load_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """Load and validate a market registry file (default: the one in the package).

    Examples
    --------
    >>> reg = load_registry()
    >>> list(reg.markets), reg.default_markets
    (['KR', 'US', 'EU', 'JP'], ('KR', 'US', 'EU'))
    """
    from quantlib.yamlfile import load_schema, load_yaml

    p = Path(path) if path is not None else REGISTRY_FILE
    raw = load_yaml(p, load_schema(SCHEMA_FILE), what="the market registry",
                    fix="see quantlib/markets.schema.json")
    reg = Registry(
        markets={code: _market(code, m) for code, m in raw["markets"].items()},
        default_markets=tuple(raw["default_markets"]),
        statement_fields=tuple(raw["statement_fields"]),
        formats={name: DelimitedFormat(name=name, **f) for name, f in raw["formats"].items()},
        shared_sources={k: tuple(_source(s) for s in v)
                        for k, v in raw.get("shared_sources", {}).items()},
        path=str(p))
    _check_consistency(reg)
    return reg


@functools.lru_cache(maxsize=1)
def registry() -> Registry:
    """The package's registry, loaded once per process."""
    return load_registry()


MARKETS: dict[str, Market] = registry().markets
DEFAULT_MARKETS: tuple[str, ...] = registry().default_markets
STATEMENT_FIELDS: tuple[str, ...] = registry().statement_fields
FORMATS: dict[str, DelimitedFormat] = registry().formats


def market(code: str) -> Market:
    """Look up a market by code.

    Examples
    --------
    >>> market("KR").mic
    'XKRX'
    >>> market("CH")
    Traceback (most recent call last):
    ...
    quantlib.errors.CatalogError: market must be one of KR, US, EU, JP; found 'CH' [market=CH]. Fix: pass one of the market codes in quantlib/markets.yaml
    """
    try:
        return MARKETS[code]
    except KeyError:
        raise CatalogError(f"market must be one of {', '.join(MARKETS)}", found=repr(code),
                           fix="pass one of the market codes in quantlib/markets.yaml",
                           market=code) from None


def currency_markets() -> dict[str, str]:
    """Each currency's home market (the first market listed with it).

    Examples
    --------
    >>> currency_markets()["JPY"]
    'JP'
    """
    out: dict[str, str] = {}
    for code, m in MARKETS.items():
        out.setdefault(m.currency, code)
    return out
