"""Write the KR and EU vendor FTP trees from a :class:`SandboxUniverse`.

Layouts follow docs/architecture.md "Vendor formats": KR is CP949 with Korean headers and
one price file per session; EU is UTF-8, ``;`` separated with decimal commas and one price
file per month. Every file gets a ``<file>.sha256`` sidecar ``<sha256-hex> <rows>``.
Lines are built column-wise with pandas string operations, then sliced per file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantlib.errors import QuantlibError
from quantlib.sandbox.formats import (
    codes_of,
    current_symbols,
    fmt_dates,
    fmt_decimal_comma,
    fmt_int,
    str_take,
    symbol_at,
)

if TYPE_CHECKING:
    from quantlib.sandbox.universe import SandboxUniverse

__all__ = ["write_ftp_tree", "WrittenFile", "sidecar_text", "KR_HEADERS", "EU_HEADERS"]

KR_HEADERS = {
    "master": "표준코드,단축코드,종목명,업종,상장일,상장폐지일",
    "tickers": "표준코드,단축코드,적용시작일,적용종료일",
    "prices": "일자,표준코드,단축코드,종목명,시가,고가,저가,종가,거래량",
    "corporate_actions": "표준코드,권리락일,구분,값,공시일시",
}
EU_HEADERS = {
    "reference": "ISIN;Ticker;Name;Sector;ListingDate;DelistingDate",
    "tickers": "ISIN;Ticker;ValidFrom;ValidTo",
    "prices": "ISIN;Ticker;Date;Open;High;Low;Close;Volume",
    "corporate_actions": "ISIN;ExDate;Type;Value;AnnouncedAt",
}
_KR_KIND = {"split": "액면분할", "dividend": "현금배당"}
_EU_KIND = {"split": "SPLIT", "dividend": "DIVIDEND"}


@dataclass(frozen=True)
class WrittenFile:
    """One vendor file: its path relative to the tree root, row count and sha256."""

    path: str
    rows: int
    sha256: str


def sidecar_text(data: bytes, rows: int) -> str:
    """Text of a ``.sha256`` sidecar for a file's bytes.

    Examples
    --------
    >>> sidecar_text(b"", 0)
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0\\n'
    """
    return f"{hashlib.sha256(data).hexdigest()} {rows}\n"


class _Lines:
    """Text lines (each ending in ``\\n``) in one UTF-8 buffer, sliced per file without copies."""

    def __init__(self, *cols: pd.Series | pa.Array, sep: str) -> None:
        arrays = [_large_str(c) for c in cols]
        big = pa.large_string()
        joined = pc.binary_join_element_wise(*arrays, pa.scalar(sep, big))
        lines = pc.binary_join_element_wise(joined, pa.scalar("", big), pa.scalar("\n", big))
        if lines.null_count:
            raise QuantlibError("vendor lines must not contain missing values",
                                found=f"{lines.null_count} null lines",
                                fix="fill missing text with an empty string")
        self.n = len(lines)
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
        self.offsets = offsets[lines.offset: lines.offset + self.n + 1]
        data = lines.buffers()[2]
        self.data = memoryview(data) if data is not None else memoryview(b"")

    def body(self, lo: int, hi: int) -> bytes:
        """UTF-8 bytes of lines ``lo:hi``."""
        return bytes(self.data[self.offsets[lo]: self.offsets[hi]])


def _large_str(col: pd.Series | pa.Array | np.ndarray) -> pa.Array:
    if isinstance(col, pa.Array | pa.ChunkedArray):
        arr = col
    elif isinstance(col, pd.Series) and isinstance(col.dtype, pd.StringDtype):
        arr = pa.array(col)
    else:
        arr = pa.array(np.asarray(col, dtype=object), type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def _write(root: Path, rel: str, header: str, lines: _Lines, lo: int, hi: int,
           encoding: str) -> WrittenFile:
    body = lines.body(lo, hi)
    if encoding != "utf-8":
        body = body.decode("utf-8").encode(encoding)
    data = header.encode(encoding) + b"\n" + body
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (root / (rel + ".sha256")).write_text(f"{digest} {hi - lo}\n")
    return WrittenFile(rel, hi - lo, digest)


def _groups(keys: np.ndarray) -> Iterator[tuple[object, int, int]]:
    """(key, lo, hi) runs of a sorted key array."""
    if len(keys) == 0:
        return
    uniq, first = np.unique(keys, return_index=True)
    bounds = np.append(first, len(keys))
    for k, key in enumerate(uniq):
        yield key, int(bounds[k]), int(bounds[k + 1])


def _market_prices(u: SandboxUniverse, market: str) -> pd.DataFrame:
    px = u.market_frame("prices", market)
    dates = px["date"].to_numpy()
    if len(dates) > 1 and not (dates[1:] >= dates[:-1]).all():
        px = px.sort_values(["date", "asset_id"], kind="stable")
    px = px.reset_index(drop=True)
    symbols = u.market_frame("symbols", market)
    return px.assign(symbol=symbol_at(symbols, px["asset_id"], px["date"]))


_FileJob = tuple[str, str, _Lines, int, int]


def _whole(rel: str, header: str, lines: _Lines) -> _FileJob:
    return rel, header, lines, 0, lines.n


def _reference_files(u: SandboxUniverse, market: str, sep: str, fmt: str
                     ) -> tuple[_Lines, _Lines]:
    """Master/reference and ticker-history lines (same column order in KR and EU)."""
    a = u.market_assets(market).reset_index(drop=True)
    cur = current_symbols(u.symbols)
    master = _Lines(a["asset_id"], a["asset_id"].map(cur).fillna(""), a["name"], a["sector"],
                    fmt_dates(a["listed"], fmt), fmt_dates(a["delisted"], fmt), sep=sep)
    s = u.market_frame("symbols", market).reset_index(drop=True)
    tickers = _Lines(s["asset_id"], s["symbol"], fmt_dates(s["valid_from"], fmt),
                     fmt_dates(s["valid_to"], fmt), sep=sep)
    return master, tickers


def _market_actions(u: SandboxUniverse, market: str) -> pd.DataFrame:
    return u.market_frame("corporate_actions", market).reset_index(drop=True)


def _kr_files(u: SandboxUniverse) -> Iterator[_FileJob]:
    master, tickers = _reference_files(u, "KR", ",", "%Y%m%d")
    yield _whole("kr/master.csv", KR_HEADERS["master"], master)
    yield _whole("kr/tickers.csv", KR_HEADERS["tickers"], tickers)
    ca = _market_actions(u, "KR")
    announced = pa.array(ca["known_at"].dt.tz_convert("Asia/Seoul").dt.strftime(
        "%Y%m%d%H%M%S").to_numpy(dtype=object), type=pa.large_string())
    yield _whole("kr/corporate_actions.csv", KR_HEADERS["corporate_actions"], _Lines(
        ca["asset_id"], fmt_dates(ca["ex_date"], "%Y%m%d"), ca["kind"].map(_KR_KIND),
        fmt_int(ca["value"]), announced, sep=","))
    a = u.market_assets("KR")
    px = _market_prices(u, "KR")
    names = str_take(a["name"].to_numpy(dtype=object), codes_of(px["asset_id"], a["asset_id"]))
    days = fmt_dates(px["date"], "%Y%m%d")
    lines = _Lines(days, px["asset_id"], px["symbol"], names, fmt_int(px["open"]),
                   fmt_int(px["high"]), fmt_int(px["low"]), fmt_int(px["close"]),
                   fmt_int(px["volume"]), sep=",")
    for _key, lo, hi in _groups(px["date"].to_numpy()):
        yield f"kr/prices/{days.iloc[lo]}.csv", KR_HEADERS["prices"], lines, lo, hi


def _eu_files(u: SandboxUniverse) -> Iterator[_FileJob]:
    master, tickers = _reference_files(u, "EU", ";", "%d.%m.%Y")
    yield _whole("eu/reference.csv", EU_HEADERS["reference"], master)
    yield _whole("eu/tickers.csv", EU_HEADERS["tickers"], tickers)
    ca = _market_actions(u, "EU")
    announced = pa.array([t.isoformat() for t in ca["known_at"].dt.tz_convert(
        "Europe/Berlin")], type=pa.large_string())
    yield _whole("eu/corporate_actions.csv", EU_HEADERS["corporate_actions"], _Lines(
        ca["asset_id"], fmt_dates(ca["ex_date"], "%d.%m.%Y"), ca["kind"].map(_EU_KIND),
        fmt_decimal_comma(ca["value"]), announced, sep=";"))
    px = _market_prices(u, "EU")
    lines = _Lines(px["asset_id"], px["symbol"], fmt_dates(px["date"], "%d.%m.%Y"),
                   fmt_decimal_comma(px["open"]), fmt_decimal_comma(px["high"]),
                   fmt_decimal_comma(px["low"]), fmt_decimal_comma(px["close"]),
                   fmt_int(px["volume"]), sep=";")
    months = px["date"].to_numpy().astype("datetime64[M]")
    for key, lo, hi in _groups(months):
        tag = str(key).replace("-", "")
        yield f"eu/prices/prices_{tag}.csv", EU_HEADERS["prices"], lines, lo, hi


def write_ftp_tree(universe: SandboxUniverse, root: str | os.PathLike[str], *,
                   progress: bool = False,
                   on_file: Callable[[WrittenFile], None] | None = None) -> list[WrittenFile]:
    """Write the KR and EU vendor trees (with ``.sha256`` sidecars) under ``root``.

    Markets missing from the universe are skipped (the US only speaks the HTTP API).

    Parameters
    ----------
    universe : SandboxUniverse
        The truth to write.
    root : path
        Folder to write into (created if needed); paths are ``kr/...`` and ``eu/...``.
    progress : bool
        Show a tqdm progress bar.
    on_file : callable, optional
        Called with each :class:`WrittenFile` as it is written.

    Returns
    -------
    list of WrittenFile
        Data files written (sidecars not listed).

    Examples
    --------
    >>> import tempfile
    >>> from quantlib.sandbox import generate
    >>> u = generate(n_assets=5, years=0.25, seed=3, markets=("KR",))
    >>> files = write_ftp_tree(u, tempfile.mkdtemp())
    >>> files[0].path, files[-1].path.startswith("kr/prices/")
    ('kr/master.csv', True)
    """
    from tqdm import tqdm

    root = Path(root)
    jobs: list[tuple[Iterator[_FileJob], str]] = []
    if "KR" in universe.markets:
        jobs.append((_kr_files(universe), "cp949"))
    if "EU" in universe.markets:
        jobs.append((_eu_files(universe), "utf-8"))
    written: list[WrittenFile] = []
    with tqdm(desc="writing vendor files", unit="file", disable=not progress) as bar:
        for files, encoding in jobs:
            for rel, header, lines, lo, hi in files:
                wf = _write(root, rel, header, lines, lo, hi, encoding)
                written.append(wf)
                if on_file is not None:
                    on_file(wf)
                bar.update(1)
    return written
