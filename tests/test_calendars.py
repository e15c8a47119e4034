"""Calendars: sessions and closes agree with exchange_calendars, through the disk cache."""

from __future__ import annotations

import exchange_calendars as xcals
import pandas as pd
import pytest

from quantlib import calendars


# exchange_calendars itself reads a tz-aware Series' .values (pandas 3.1 deprecation)
@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")
def test_disk_cache_round_trips_the_calendar(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calendars._closes.cache_clear()
    calendars._sessions.cache_clear()
    try:
        first = calendars._closes("XETR")
        files = list((tmp_path / "quantlib" / "calendars").glob("XETR-*.parquet"))
        assert len(files) == 1
        calendars._closes.cache_clear()
        again = calendars._closes("XETR")  # read back from disk
        pd.testing.assert_series_equal(first, again)
        cal = xcals.get_calendar("XETR", start="2020-01-01", end="2020-12-31")
        expect = pd.DatetimeIndex(cal.sessions).tz_localize(None)
        got = calendars.sessions("EU", "2020-01-01", "2020-12-31")
        assert list(got) == list(expect)
        closes = calendars.session_closes("EU", got)
        assert (closes == pd.DatetimeIndex(cal.schedule["close"]).tz_convert("UTC")).all()
    finally:
        calendars._closes.cache_clear()
        calendars._sessions.cache_clear()


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calendars._closes.cache_clear()
    try:
        calendars._closes("XETR")
        path = next((tmp_path / "quantlib" / "calendars").glob("XETR-*.parquet"))
        path.write_bytes(b"not parquet")
        calendars._closes.cache_clear()
        assert len(calendars._closes("XETR")) > 7000  # 2000-2030 sessions
    finally:
        calendars._closes.cache_clear()
