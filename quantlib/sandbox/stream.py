"""One sandbox market generated as a stream: reference frames, then price months, then
actions, with statements in chunks of assets (nothing holds the market's history).

:class:`MarketStream` yields the same rows as :func:`quantlib.sandbox.generate` (the
market's part of each canonical frame, in the same order), but one calendar month of
bars at a time (:meth:`MarketStream.months`) and statements one block of assets at a
time (:meth:`MarketStream.statement_chunks`). Corrections published by the clock are
applied to each month as it passes; dividends are valued month by month, so
:meth:`MarketStream.actions` is complete once the months are exhausted.

Resuming (the vendor clock advancing): a stream remembers the carried price state of its
last months (:attr:`MarketStream.states`); a later stream of the same pool started with
``resume=`` one of them regenerates only the months from there on, and
``keep_dividends=`` the earlier stream's dividends before that month.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quantlib.sandbox import events
from quantlib.sandbox.bars import MonthBars, iter_months
from quantlib.sandbox.formats import str_take
from quantlib.sandbox.pool import Pool, all_sessions
from quantlib.sandbox.universe import (
    _STR,
    ACTION_LOOKAHEAD,
    _assets_frame,
    _clock_ns,
    _corrections_frame,
    _symbols_frame,
    _window,
)

__all__ = ["MarketStream", "PriceMonth", "STATE_MONTHS", "empty_prices"]

#: months of carried state a stream keeps for a later resume (the clock moving on)
STATE_MONTHS = 4
_FIX_COLS = ("g", "j", "open", "high", "low", "close", "volume", "known_ns")


@dataclass
class PriceMonth:
    """One calendar month of one market's bars: ``prices`` rows (canonical columns, the
    vendor's latest values at the clock) and the ``corrections`` published by the clock
    for them (canonical columns, ``known_at`` of the correction)."""

    lo: int
    prices: pd.DataFrame
    corrections: pd.DataFrame
    #: row of ``prices`` each correction applies to
    corrected_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def empty_prices() -> pd.DataFrame:
    """A ``prices`` frame with no rows and the canonical dtypes.

    Examples
    --------
    >>> list(empty_prices().columns)[:3]
    ['asset_id', 'date', 'open']
    """
    return pd.DataFrame({
        "asset_id": pd.Series([], dtype=_STR), "date": np.array([], dtype="datetime64[ns]"),
        **{c: np.zeros(0) for c in ("open", "high", "low", "close", "volume")},
        "known_at": pd.DatetimeIndex([], dtype="datetime64[ns, UTC]")})


@dataclass(eq=False)
class MarketStream:
    """One market of a sandbox universe for ``[start, end]``, generated lazily.

    Examples
    --------
    >>> from quantlib.sandbox import generate
    >>> from quantlib.sandbox.pool import make_pool
    >>> u = generate(n_assets=6, years=0.5, seed=2, markets=("US",))
    >>> s = MarketStream(make_pool("US", 6, 0.5, 2), 2, u.start, u.end)
    >>> px = pd.concat([m.prices for m in s.months()], ignore_index=True)
    >>> px.equals(u.prices), s.actions().equals(u.corporate_actions)
    (True, True)
    """

    pool: Pool
    seed: int
    start: pd.Timestamp
    end: pd.Timestamp
    #: carried state of the last months: session index of the month's start ->
    #: (start_state, prev_close), filled by :meth:`months`
    states: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _dividends: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)
    _done: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.g0, self.g1 = _window(self.pool.code, self.start, self.end)
        self.sel = np.flatnonzero((self.pool.first <= self.g1) & (self.pool.last >= self.g0))
        sess = all_sessions(self.pool.code).to_numpy()
        last = np.minimum(self.pool.last[self.sel], len(sess) - 1)
        self.delisted = np.where(self.pool.last[self.sel] <= self.g1, sess[last],
                                 np.datetime64("NaT", "ns")).astype("datetime64[ns]")
        self.in_window = np.zeros(len(self.pool), dtype=bool)
        self.in_window[self.sel] = True
        self.cut = _clock_ns(self.end)
        self.through = int(np.searchsorted(sess, (self.end + ACTION_LOOKAHEAD).to_datetime64()))

    def assets(self) -> pd.DataFrame:
        """The market's ``assets`` rows."""
        return _assets_frame(self.pool, self.sel, self.delisted)

    def symbols(self) -> pd.DataFrame:
        """The market's ``symbols`` rows."""
        return _symbols_frame(self.pool, self.sel, self.g1)

    def months(self, resume: int | None = None, keep_dividends: MarketStream | None = None
               ) -> Iterator[PriceMonth]:
        """Each calendar month with bars in the period, in order (then, without yielding,
        the months to ``end`` + the action look-ahead that value announced dividends).

        ``resume`` (a key of ``keep_dividends.states``) starts at that month with the
        earlier stream's carried state and takes its dividends before it.
        """
        start = None
        if resume is not None and keep_dividends is not None:
            state, prev = keep_dividends.states[resume]
            start = (resume, state, prev)
            for d in keep_dividends._dividends:
                early = d["g"] < resume
                self._dividends.append({k: v[early] for k, v in d.items()})
        divs = events.dividend_schedule(self.pool, self.seed)
        keep_from = self._state_cutoff()
        for month in iter_months(self.pool, self.seed, self.g0, self.g1, self.through, start):
            if month.lo >= keep_from and month.start_state is not None:
                self.states[month.lo] = (month.start_state, month.prev_close)
            value = events.dividend_values(divs, month, self.g0, self.in_window, self.cut,
                                           self.pool.code)
            if start is not None:
                value = {k: v[value["g"] >= start[0]] for k, v in value.items()}
            self._dividends.append(value)
            if len(month.g):
                yield self._month(month)
        self._done = True

    def _state_cutoff(self) -> int:
        """First session whose month's state is kept: about STATE_MONTHS before ``end``."""
        sess = all_sessions(self.pool.code).to_numpy()
        back = (self.end - pd.DateOffset(months=STATE_MONTHS)).to_datetime64()
        return int(np.searchsorted(sess, back))

    def _month(self, month: MonthBars) -> PriceMonth:
        """The month's bars with the corrections published by the clock applied."""
        code, n = self.pool.code, len(self.pool)
        empty = {k: np.zeros(0, dtype=np.int64) for k in _FIX_COLS}
        fixes = month.corrections if month.corrections is not None else empty
        ok = fixes["known_ns"] < self.cut
        fixes = {k: v[ok] for k, v in fixes.items()}
        cols = {c: getattr(month, c).copy() for c in ("open", "high", "low", "close", "volume")}
        rows = np.searchsorted(month.g * n + month.j, fixes["g"] * n + fixes["j"])
        for c in cols:
            cols[c][rows] = fixes[c]
        sess = all_sessions(code).to_numpy()
        known = events_known(code)[month.g]
        prices = pd.DataFrame({"asset_id": str_take(self.pool.isin, month.j),
                               "date": sess[month.g], **cols,
                               "known_at": pd.DatetimeIndex(known).tz_localize("UTC")})
        return PriceMonth(month.lo, prices, _corrections_frame(self.pool, fixes), rows)

    def actions(self) -> pd.DataFrame:
        """The market's ``corporate_actions`` rows (after :meth:`months` is exhausted)."""
        if not self._done:
            raise RuntimeError("MarketStream.actions needs the months exhausted first")
        from quantlib.sandbox.universe import _actions_frame

        parts = self._dividends
        dividends = {k: np.concatenate([d[k] for d in parts]) for k in
                     ("j", "g", "value", "known_ns")} if parts else None
        if dividends is not None:      # resumed: early months first, then in month order
            order = np.argsort(dividends["g"], kind="stable")
            dividends = {k: v[order] for k, v in dividends.items()}
        return _actions_frame(self.pool, self.seed, (self.g0, self.in_window, self.cut),
                              dividends)

    def statement_chunks(self, assets_per_chunk: int = 2000, since: MarketStream | None = None
                         ) -> Iterator[tuple[int, pd.DataFrame | None]]:
        """The market's ``statements`` rows by block of ``assets_per_chunk`` pool
        positions (in ``asset_id`` order, so the blocks concatenate to the whole frame):
        ``(block, rows)``.

        With ``since`` (the same market's stream at an earlier clock), a block whose
        assets are the same and none of which had a filing or restatement published
        between the two clocks is yielded as ``(block, None)``: unchanged, not built.
        """
        first = pd.Timestamp(all_sessions(self.pool.code).to_numpy()[self.g0])
        fresh = None if since is None else self._filed_between(since.cut)
        for k, a in enumerate(range(0, len(self.pool), assets_per_chunk)):
            b = a + assets_per_chunk
            inside = (self.sel >= a) & (self.sel < b)
            if fresh is not None and since is not None:
                old = since.sel[(since.sel >= a) & (since.sel < b)]
                if np.array_equal(old, self.sel[inside]) and not fresh[self.sel[inside]].any():
                    yield k, None
                    continue
            yield k, events.statements(self.pool, self.seed, self.sel[inside], first, self.end,
                                       self.delisted[inside])

    def _filed_between(self, old_cut: int) -> np.ndarray:
        """Per pool asset: a filing or restatement was published in ``[old_cut, cut)``."""
        f = events.filings(self.pool, self.seed)
        known = f.known.astype("datetime64[ns]").view(np.int64)
        later = f.later.astype("datetime64[ns]").view(np.int64)
        hit = ((known >= old_cut) & (known < self.cut)) | (
            (later >= old_cut) & (later < self.cut) & f.restate.any(axis=2))
        return np.asarray(hit.any(axis=1))


def events_known(code: str) -> np.ndarray:
    """UTC ns at which each session's bars are first published (close + vendor lag)."""
    from quantlib.sandbox.bars import known_closes

    return known_closes(code).view("datetime64[ns]")
