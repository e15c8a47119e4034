"""Catalog parameters: defaults, validation and the errors that name the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pandas as pd

from quantlib import calendars
from quantlib.errors import CatalogError
from quantlib.markets import DEFAULT_MARKETS

__all__ = ["CatalogParams", "validate_params", "PARAMETERS", "check_store_url"]

#: name -> (default, description); the catalog file declares the same parameters
PARAMETERS: dict[str, tuple[object, str]] = {
    "store": ("", "store URL; empty = quantlib.config store_url (never holds credentials)"),
    "markets": (list(DEFAULT_MARKETS), "markets to include (codes of quantlib/markets.yaml)"),
    "start": ("", "first date (YYYY-MM-DD); empty = first date in the store"),
    "end": ("", "last date (YYYY-MM-DD); empty = last date in the store"),
    "decision_clock": ("own", "'own' (each asset's market close) or a market code's clock"),
    "snapshot": ("latest", "data version: a tag, a snapshot id, or 'latest'"),
}


@dataclass(frozen=True)
class CatalogParams:
    """Validated catalog parameters."""

    store: str | None
    markets: tuple[str, ...]
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    decision_clock: str
    snapshot: str | None


def _bad(name: str, expected: str, value: object, fix: str) -> CatalogError:
    return CatalogError(f"catalog parameter {name} must be {expected}", found=repr(value),
                        fix=fix, field=name)


def check_store_url(url: str) -> str:
    """Refuse store URLs that embed credentials (they would end up in the catalog).

    Examples
    --------
    >>> check_store_url("s3://bucket/prefix")
    's3://bucket/prefix'
    >>> check_store_url("s3://KEY:SECRET@bucket/prefix")
    Traceback (most recent call last):
    ...
    quantlib.errors.CatalogError: catalog parameter store must be a URL without credentials; found 's3://***@bucket/prefix' [field=store]. Fix: put S3 keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not in the URL
    """
    parts = urlsplit(str(url))
    if parts.username or parts.password:
        shown = f"{parts.scheme}://***@{parts.hostname}{parts.path}"
        raise _bad("store", "a URL without credentials", shown,
                   "put S3 keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not in the URL")
    return str(url)


def _date(name: str, value: object) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise _bad(name, "a date YYYY-MM-DD", value, f"pass e.g. {name}='2020-01-31'")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise _bad(name, "a date YYYY-MM-DD", value, f"pass e.g. {name}='2020-01-31'") from exc
    if ts.tzinfo is not None or ts != ts.normalize():
        raise _bad(name, "a date without a time", value, f"pass e.g. {name}='2020-01-31'")
    return ts


def validate_params(store=None, markets=DEFAULT_MARKETS, start=None, end=None,
                    decision_clock="own", snapshot="latest") -> CatalogParams:
    """Check every catalog parameter; the error names the parameter and the fix.

    Examples
    --------
    >>> validate_params(markets=["US"], start="2024-01-02").markets
    ('US',)
    >>> validate_params(decision_clock="CH")
    Traceback (most recent call last):
    ...
    quantlib.errors.CatalogError: catalog parameter decision_clock must be one of own, KR, US, EU, JP; found 'CH' [field=decision_clock]. Fix: pass decision_clock='own' (each asset's own close) or a market code
    """
    if isinstance(markets, str):
        markets = [m.strip() for m in markets.split(",") if m.strip()]
    if not isinstance(markets, list | tuple) or not markets:
        raise _bad("markets", "a non-empty list of market codes", markets,
                   "pass e.g. markets=['KR', 'US']")
    for m in markets:
        if m not in calendars.MARKETS:
            raise _bad("markets", f"a list of {', '.join(calendars.MARKETS)}", m,
                       "pass e.g. markets=['KR', 'US']")
    if len(set(markets)) != len(markets):
        raise _bad("markets", "a list without repeats", list(markets), "name each market once")
    if decision_clock not in calendars.CLOCKS:
        raise _bad("decision_clock", f"one of {', '.join(calendars.CLOCKS)}", decision_clock,
                   "pass decision_clock='own' (each asset's own close) or a market code")
    start_ts, end_ts = _date("start", start), _date("end", end)
    if start_ts is not None and end_ts is not None and start_ts > end_ts:
        raise _bad("start", "on or before end", f"start={start_ts.date()}, end={end_ts.date()}",
                   "swap start and end")
    if snapshot is not None and not isinstance(snapshot, str):
        raise _bad("snapshot", "a tag, a snapshot id or 'latest'", snapshot,
                   "list versions with `quantlib data status`")
    snap = None if snapshot in (None, "", "latest") else snapshot
    url = check_store_url(store) if store else None
    return CatalogParams(url, tuple(markets), start_ts, end_ts, decision_clock, snap)
