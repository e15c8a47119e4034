"""Exchange calendars, session closes and decision times of the markets.

The markets themselves (MIC, calendar, time zone, close) come from the registry
(:mod:`quantlib.markets`). Everything here is cached per (market, start, end): exchange_calendars is slow to build.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from quantlib.errors import CatalogError
from quantlib.markets import MARKETS, Market, market

__all__ = [
    "Market",
    "MARKETS",
    "market",
    "sessions",
    "session_closes",
    "global_sessions",
    "decision_time",
    "CLOCKS",
]

CLOCKS = ("own", *MARKETS)


_SPAN = ("2000-01-01", "2030-12-31")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quantlib" / "calendars"


@functools.lru_cache(maxsize=8)
def _closes(calendar: str) -> pd.Series:
    """UTC close of every session of the exchange calendar in 2000-2030, indexed by naive session date.

    Building some calendars (XKRX: lunar holidays) takes seconds to tens of seconds, and
    every process (hub services, notebook kernels, sandbox) needs them, so the schedule is
    cached on disk per exchange_calendars version (``$XDG_CACHE_HOME/quantlib/calendars``).
    """
    path = _cache_dir() / f"{calendar}-{xcals.__version__}-{_SPAN[0]}-{_SPAN[1]}.parquet"
    if path.exists():
        try:
            frame = pd.read_parquet(path)
            return pd.Series(pd.DatetimeIndex(frame["close"]).tz_convert("UTC").as_unit("ns"),
                             index=pd.DatetimeIndex(frame["session"]).as_unit("ns").rename(None),
                             name="close")
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    with warnings.catch_warnings():
        # exchange_calendars reads a tz-aware Series' ``.values`` (pandas 3.1 deprecation,
        # raised inside the library, not fixable here; the values it reads are correct)
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray that "
                                "drops timezone")
        cal = xcals.get_calendar(calendar, start=_SPAN[0], end=_SPAN[1])
    close = cal.schedule["close"]
    sessions = pd.DatetimeIndex(close.index).tz_localize(None).astype("datetime64[ns]")
    out = pd.Series(pd.DatetimeIndex(close).tz_convert("UTC").as_unit("ns"),
                    index=pd.DatetimeIndex(sessions, freq=None), name="close")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        pd.DataFrame({"session": out.index, "close": out.to_numpy()}).to_parquet(tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the rebuild next time
    return out


@functools.lru_cache(maxsize=64)
def _sessions(code: str, start: str, end: str) -> pd.DatetimeIndex:
    idx = _closes(market(code).calendar).index
    return idx[(idx >= pd.Timestamp(start)) & (idx <= pd.Timestamp(end))]


def sessions(code: str, start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DatetimeIndex:
    """Session dates (naive midnight) of a market in ``[start, end]``.

    Examples
    --------
    >>> s = sessions("US", "2024-12-23", "2024-12-27")
    >>> [d.strftime("%m-%d") for d in s]
    ['12-23', '12-24', '12-26', '12-27']
    """
    return _sessions(code, str(pd.Timestamp(start).date()), str(pd.Timestamp(end).date()))


def session_closes(code: str, dates: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """UTC close instant of each date for a market.

    Sessions use the calendar's actual close (early closes included); other dates use the
    market's regular close time in its time zone.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-12-24", "2024-12-25"])
    >>> [str(t) for t in session_closes("US", idx)]
    ['2024-12-24 18:00:00+00:00', '2024-12-25 21:00:00+00:00']
    """
    m = market(code)
    dates = pd.DatetimeIndex(dates)
    nominal = (dates + pd.Timedelta(hours=m.close.hour, minutes=m.close.minute)).tz_localize(
        m.tz, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
    if len(dates) == 0:
        return nominal
    actual = _closes(m.calendar).reindex(dates)
    out = pd.Series(np.asarray(nominal), index=dates)
    has = actual.notna().to_numpy()
    out[has] = pd.DatetimeIndex(actual[has]).tz_convert("UTC")
    return pd.DatetimeIndex(out.to_numpy()).tz_localize("UTC") if out.dt.tz is None else \
        pd.DatetimeIndex(out)


def global_sessions(codes: list[str] | tuple[str, ...], start: str | pd.Timestamp,
                    end: str | pd.Timestamp) -> pd.DatetimeIndex:
    """Sorted union of the sessions of several markets.

    Examples
    --------
    >>> g = global_sessions(["KR", "US"], "2024-09-16", "2024-09-18")
    >>> len(g), len(sessions("KR", "2024-09-16", "2024-09-18"))
    (3, 0)
    """
    out = pd.DatetimeIndex([], dtype="datetime64[ns]")
    for code in codes:
        out = out.union(sessions(code, start, end))
    return out


def decision_time(dates: pd.DatetimeIndex, clock: str, offset_minutes: int = 30
                  ) -> pd.DatetimeIndex:
    """UTC decision instant of each date for a market clock.

    The market's close on that date plus ``offset_minutes``. For the per-asset ``"own"``
    clock, call this once per market.

    Examples
    --------
    >>> d = pd.DatetimeIndex(["2024-03-04"])
    >>> str(decision_time(d, "KR")[0]), str(decision_time(d, "US")[0])
    ('2024-03-04 07:00:00+00:00', '2024-03-04 21:30:00+00:00')
    """
    if clock not in MARKETS:
        raise CatalogError(f"decision clock must be one of {', '.join(CLOCKS)}",
                           found=repr(clock), fix="use a market code or 'own'")
    return session_closes(clock, dates) + pd.Timedelta(minutes=offset_minutes)
