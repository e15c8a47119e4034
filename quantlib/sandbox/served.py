"""A sandbox vendor served out of core: FTP files written month by month, the API's large
endpoints served from Arrow IPC partitions, advanced day by day.

:class:`ServedVendor` generates each market with :class:`~quantlib.sandbox.stream.MarketStream`
and, for every calendar month of bars, writes that month's vendor files (the KR daily
files of its sessions, the EU month file) and its API price partition; then the
market's statements block by block (API fundamentals partitions); then the reference
files (master, tickers, corporate actions) and keeps only the small frames (assets,
symbols, actions, FX) in memory. At most one month of one market's bars (plus one block
of statements) is held at a time.

:meth:`ServedVendor.build` with a later ``end`` is the vendor clock moving forward: each
market resumes from a month shortly before the old clock (the carried price state of
the last months is kept), so only the months from there on are regenerated; files and
partitions are rewritten only where their content changed (new days, the re-delivered
month, corrected bars), reference files only when they changed. The result is the same
tree and API as a vendor started at the later ``end`` (prefix-stable generation).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from quantlib.markets import MARKETS
from quantlib.sandbox import events
from quantlib.sandbox.api import statement_updated_ms
from quantlib.sandbox.apistore import ApiStore, StoredApi
from quantlib.sandbox.formats import epoch_ms, symbol_at
from quantlib.sandbox.pool import all_sessions, make_pool
from quantlib.sandbox.stream import MarketStream, PriceMonth, empty_prices
from quantlib.sandbox.universe import SandboxUniverse, _check_period, _concat, market_size
from quantlib.sandbox.writers import WrittenFile, write_ftp_tree

__all__ = ["ServedVendor", "price_partition", "fundamentals_partition", "RESUME_BEFORE"]

#: an advance regenerates from the month holding the session this long before the old
#: clock: corrections (<= 5 sessions late) and late actions (<= 10 days) published since
#: all concern bars and ex dates after it
RESUME_BEFORE = pd.Timedelta(days=20)
#: ``on_chunk(market, kind, rows)``: told the size of every chunk the writer handles
ChunkHook = Callable[[str, str, int], None]


def price_partition(month: PriceMonth, ticker: np.ndarray) -> pa.Table:
    """One month's ``/v1/prices`` rows (the API's keys, in its order) as an Arrow table;
    ``ticker``: each row's ticker (None where it has none).

    Examples
    --------
    >>> from quantlib.sandbox.formats import symbol_at
    >>> from quantlib.sandbox.pool import make_pool
    >>> s = MarketStream(make_pool("US", 6, 0.5, 2), 2, pd.Timestamp("2025-07-01"),
    ...                  pd.Timestamp("2025-12-31"))
    >>> m = next(s.months())
    >>> tab = price_partition(m, symbol_at(s.symbols(), m.prices["asset_id"], m.prices["date"]))
    >>> tab.column_names
    ['isin', 'ticker', 't', 'o', 'h', 'l', 'c', 'v', 'updated_ms']
    """
    px = month.prices
    updated = epoch_ms(px["known_at"])
    updated[month.corrected_rows] = epoch_ms(month.corrections["known_at"])
    return pa.table({
        "isin": pa.array(px["asset_id"]).cast(pa.string()),
        "ticker": pa.array(ticker, type=pa.string()), "t": epoch_ms(px["date"]),
        "o": px["open"].to_numpy(), "h": px["high"].to_numpy(), "l": px["low"].to_numpy(),
        "c": px["close"].to_numpy(), "v": px["volume"].to_numpy().astype(np.int64),
        "updated_ms": updated})


def fundamentals_partition(statements: pd.DataFrame, currency: str,
                           listed: pd.Series | None = None) -> pa.Table:
    """A block of ``/v1/fundamentals`` rows as an Arrow table (``listed``: asset id ->
    listing date, for ``updated_ms``, :func:`~quantlib.sandbox.api.statement_updated_ms`;
    none: each row's publication).

    Examples
    --------
    >>> st = pd.DataFrame({"asset_id": ["X"], "field": ["revenue"],
    ...                    "period_end": pd.to_datetime(["2024-03-31"]), "value": [1.0],
    ...                    "known_at": pd.to_datetime(["2024-05-01"], utc=True)})
    >>> fundamentals_partition(st, "USD").column("period_end_ms").to_pylist()
    [1711843200000]
    """
    return pa.table({
        "isin": pa.array(statements["asset_id"].to_numpy(dtype=object), type=pa.string()),
        "field": pa.array(statements["field"].to_numpy(dtype=object), type=pa.string()),
        "period_end_ms": epoch_ms(statements["period_end"]),
        "value": statements["value"].to_numpy(dtype=np.float64),
        "currency": pa.array(np.full(len(statements), currency, dtype=object),
                             type=pa.string()),
        "published_ms": epoch_ms(statements["known_at"]),
        "updated_ms": epoch_ms(statements["known_at"]) if listed is None
        else statement_updated_ms(statements, listed)})


class ServedVendor:
    """The streamed vendor: an FTP tree, an :class:`ApiStore` and the small frames.

    Parameters
    ----------
    ftp_root, api_root : path
        Where the FTP tree and the API partitions are written.
    sizes : int or mapping
        Assets per market (``n_assets`` of :func:`quantlib.sandbox.generate`), one number
        or one per market.
    years, seed, start, markets
        As for :func:`quantlib.sandbox.generate` (``start`` fixed; the clock is
        :meth:`build`'s ``end``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> base = Path(tempfile.mkdtemp())
    >>> v = ServedVendor(base / "ftp", base / "api", 6, 0.25, 3, "2025-10-01", ("KR",))
    >>> files = v.build("2025-12-31")
    >>> files[0].path, v.reference.end.date().isoformat()
    ('kr/prices/20251001.csv', '2025-12-31')
    >>> [f.path for f in v.build("2026-01-02")]
    ['kr/prices/20260102.csv']
    """

    #: assets (pool positions) per fundamentals partition
    statement_block = 2000

    def __init__(self, ftp_root: str | os.PathLike[str], api_root: str | os.PathLike[str],
                 sizes: int | Mapping[str, int], years: float, seed: int,
                 start: str | pd.Timestamp, markets: tuple[str, ...]) -> None:
        self.ftp_root = Path(ftp_root)
        self.store = ApiStore(api_root)
        self.markets = tuple(markets)
        self.sizes = {m: market_size(sizes, m) for m in self.markets}
        self.years, self.seed = years, seed
        self.start = pd.Timestamp(start).normalize()
        self.streams: dict[str, MarketStream] = {}
        self.reference: SandboxUniverse | None = None

    def build(self, end: str | pd.Timestamp, *, only_changed: bool | None = None,
              progress: bool = False, on_chunk: ChunkHook | None = None) -> list[WrittenFile]:
        """Write (or, after an earlier build, bring forward) the vendor at clock ``end``.

        Returns the FTP files written (``only_changed`` defaults to True after the first
        build: unchanged files keep their bytes and sidecars).
        """
        end_ts = pd.Timestamp(end).normalize()
        _check_period(self.start, end_ts)
        if only_changed is None:
            only_changed = bool(self.streams)
        written: list[WrittenFile] = []
        small: dict[str, list[pd.DataFrame]] = {"assets": [], "symbols": [], "ca": []}
        with tqdm(desc="sandbox months", unit="month", disable=not progress) as bar:
            for code in self.markets:
                stream = MarketStream(make_pool(code, self.sizes[code], self.years, self.seed),
                                      self.seed, self.start, end_ts)
                assets, symbols = stream.assets(), stream.symbols()
                one = self._light((code,), end_ts, assets, symbols, fx=False)
                for month in stream.months(*self._resume(code)):
                    if on_chunk is not None:
                        on_chunk(code, "prices", len(month.prices))
                    px = month.prices
                    ticker = symbol_at(symbols, px["asset_id"], px["date"])
                    written += write_ftp_tree(one, self.ftp_root, frames=("prices",),
                                              prices={code: px.assign(symbol=ticker)},
                                              only_changed=only_changed)
                    key = f"{all_sessions(code)[month.lo]:%Y%m}"
                    self.store.write("prices", code, key, price_partition(month, ticker))
                    bar.update(1)
                self._statements(stream, on_chunk)
                self.streams[code] = stream
                small["assets"].append(assets)
                small["symbols"].append(symbols)
                small["ca"].append(stream.actions())
        ref = self._light(self.markets, end_ts, *(_concat(small[k]) for k in small))
        self.reference = ref
        written += write_ftp_tree(ref, self.ftp_root, only_changed=only_changed,
                                  frames=("assets", "symbols", "corporate_actions"))
        return written

    def _resume(self, code: str) -> tuple[int | None, MarketStream | None]:
        """Where the market's months restart: the latest kept month state at least
        :data:`RESUME_BEFORE` before the old clock (None: from the beginning)."""
        old = self.streams.get(code)
        if old is None:
            return None, None
        sess = all_sessions(code).to_numpy()
        limit = int(np.searchsorted(sess, (old.end - RESUME_BEFORE).to_datetime64()))
        keys = [k for k in old.states if k <= limit]
        return (max(keys), old) if keys else (None, None)

    def _statements(self, stream: MarketStream, on_chunk: ChunkHook | None) -> None:
        """Write the market's fundamentals blocks (those changed since the last build)."""
        code = stream.pool.code
        currency = MARKETS[code].currency
        for k, chunk in stream.statement_chunks(self.statement_block,
                                                since=self.streams.get(code)):
            if chunk is None:
                continue
            if on_chunk is not None:
                on_chunk(code, "statements", len(chunk))
            listed = pd.Series(stream.pool.listed, index=stream.pool.isin)
            self.store.write("fundamentals", code, f"{k:04d}",
                             fundamentals_partition(chunk, currency, listed))

    def _light(self, markets: tuple[str, ...], end: pd.Timestamp, assets: pd.DataFrame,
               symbols: pd.DataFrame, actions: pd.DataFrame | None = None, fx: bool = True
               ) -> SandboxUniverse:
        """A universe with the small frames only (no prices, no statements; no FX
        unless ``fx``)."""
        none = pd.DataFrame()
        whole = {m: (0, len(assets)) for m in markets}
        bounds = {} if len(markets) > 1 else {
            "assets": {**whole, "_len": (0, len(assets))},
            "symbols": {**{m: (0, len(symbols)) for m in markets}, "_len": (0, len(symbols))}}
        return SandboxUniverse(bounds=bounds,
            assets=assets, symbols=symbols, prices=empty_prices(),
            corporate_actions=none if actions is None else actions,
            fx=events.fx(markets, self.start, end, self.seed) if fx else none,
            statements=none, start=self.start, end=end, seed=self.seed, markets=markets,
            n_assets=dict(self.sizes), years=self.years)

    def api(self) -> StoredApi:
        """The API over the current clock (pass to the HTTP server)."""
        if self.reference is None:
            raise RuntimeError("ServedVendor.api needs build() first")
        return StoredApi(self.reference, self.store)
