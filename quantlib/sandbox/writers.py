"""Write the vendor FTP trees of a :class:`SandboxUniverse` from the delimited format specs.

Each FTP source in ``quantlib/markets.yaml`` names a format (docs/architecture.md "Vendor
formats"); the same spec the reader parses says how to write: encoding, separator,
decimal mark, date and timestamp formats, file paths (a strftime path gives one price
file per session or per month) and column order. Every file gets a ``<file>.sha256`` sidecar ``<sha256-hex> <rows>``.
Lines are built column-wise with pandas string operations, then sliced per file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantlib.errors import QuantlibError
from quantlib.markets import FORMATS, MARKETS, DelimitedFormat, SourceSpec
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

__all__ = ["write_ftp_tree", "WrittenFile", "sidecar_text", "headers", "KR_HEADERS",
           "EU_HEADERS"]


def headers(fmt: str) -> dict[str, str]:
    """Header line of each frame's file in a delimited format, by canonical frame name.

    Examples
    --------
    >>> headers("jp-ftp-csv")["symbols"]
    'ISINコード,銘柄コード,適用開始日,適用終了日'
    """
    spec = FORMATS[fmt]
    return {frame: spec.header(frame) for frame in spec.columns}


KR_HEADERS = headers("kr-ftp-csv")
EU_HEADERS = headers("eu-ftp-csv")


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
           encoding: str, only_changed: bool = False) -> WrittenFile | None:
    """Write one file and its sidecar (each atomically: a reader never sees half a file).

    With ``only_changed``, a file whose sidecar already says the same sha256 and row
    count is left alone and None is returned.
    """
    body = lines.body(lo, hi)
    if encoding != "utf-8":
        body = body.decode("utf-8").encode(encoding)
    data = header.encode(encoding) + b"\n" + body
    digest = hashlib.sha256(data).hexdigest()
    sidecar = root / (rel + ".sha256")
    text = f"{digest} {hi - lo}\n"
    if only_changed and sidecar.exists() and sidecar.read_text() == text:
        return None
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, data)
    _replace(sidecar, text.encode())
    return WrittenFile(rel, hi - lo, digest)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _groups(keys: np.ndarray) -> Iterator[tuple[object, int, int]]:
    """(key, lo, hi) runs of a sorted key array."""
    if len(keys) == 0:
        return
    uniq, first = np.unique(keys, return_index=True)
    bounds = np.append(first, len(keys))
    for k, key in enumerate(uniq):
        yield key, int(bounds[k]), int(bounds[k + 1])


def _market_prices(u: SandboxUniverse, market: str, px: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    px = u.market_frame("prices", market) if px is None else px
    dates = px["date"].to_numpy()
    if len(dates) > 1 and not (dates[1:] >= dates[:-1]).all():
        px = px.sort_values(["date", "asset_id"], kind="stable")
    px = px.reset_index(drop=True)
    if "symbol" in px:        # given with the rows (a streamed month)
        return px
    symbols = u.market_frame("symbols", market)
    return px.assign(symbol=symbol_at(symbols, px["asset_id"], px["date"]))


_FileJob = tuple[str, str, _Lines, int, int]


def _whole(rel: str, header: str, lines: _Lines) -> _FileJob:
    return rel, header, lines, 0, lines.n


def _number(values: pd.Series, decimals: int, mark: str) -> pd.Series:
    """Numbers in the vendor's style: integers, or fixed decimals with its decimal mark."""
    if decimals == 0:
        return fmt_int(values)
    text = fmt_decimal_comma(values, decimals)
    return text if mark == "," else text.str.replace(",", mark, regex=False)


def _timestamps(known_at: pd.Series, fmt: str, tz: str) -> pa.Array:
    """Announcement instants in the market's time zone: ISO 8601 with offset or strftime."""
    local = known_at.dt.tz_convert(tz)
    if fmt == "ISO8601":
        return pa.array([t.isoformat() for t in local], type=pa.large_string())
    return pa.array(local.dt.strftime(fmt).to_numpy(dtype=object), type=pa.large_string())


def _frame_columns(u: SandboxUniverse, market: str, frame: str, spec: DelimitedFormat,
                   px: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, object]]:
    """One frame's truth rows and its text column per canonical field (``px``: the
    market's price rows to write instead of the universe's, e.g. one month)."""
    m = MARKETS[market]
    decimals = m.sandbox["price"]["decimals"]
    if frame == "assets":
        rows = u.market_assets(market).reset_index(drop=True)
        rows = rows.assign(symbol=rows["asset_id"].map(current_symbols(u.symbols)).fillna(""))
    elif frame == "prices":
        rows = _market_prices(u, market, px)
        a = u.market_assets(market)
        rows = rows.assign(name=str_take(a["name"].to_numpy(dtype=object),
                                         codes_of(rows["asset_id"], a["asset_id"])))
    else:
        name = "corporate_actions" if frame == "corporate_actions" else "symbols"
        rows = u.market_frame(name, market).reset_index(drop=True)
    out: dict[str, object] = {}
    for field in spec.columns[frame].values():
        col = rows[field]
        if field in ("listed", "delisted", "valid_from", "valid_to", "date", "ex_date"):
            out[field] = fmt_dates(col, spec.date_format)
        elif field == "volume":
            out[field] = fmt_int(col)
        elif field in ("open", "high", "low", "close", "value"):
            out[field] = _number(col, decimals, spec.decimal)
        elif field == "kind":
            words = {v: k for k, v in spec.action_kinds.items()}
            out[field] = col.map(words)
        elif field == "known_at":
            out[field] = _timestamps(col, spec.timestamp_format, m.tz)
        else:
            out[field] = col
    return rows, out


def _market_files(u: SandboxUniverse, market: str, source: SourceSpec,
                  frames: Collection[str] | None = None, px: pd.DataFrame | None = None
                  ) -> Iterator[_FileJob]:
    """Every file of one FTP source (of ``frames`` only, when given), written from its
    delimited format spec; price files from ``px`` when given."""
    spec = FORMATS[str(source.format)]
    for frame, pattern in spec.files.items():
        if frames is not None and frame not in frames:
            continue
        rows, cols = _frame_columns(u, market, frame, spec, px)
        lines = _Lines(*(cols[f] for f in spec.columns[frame].values()), sep=spec.separator)
        header = spec.header(frame)
        if "%" not in pattern:
            yield _whole(f"{source.root}/{pattern}", header, lines)
            continue
        paths = fmt_dates(rows["date"], pattern)   # rows are sorted by date
        codes, names = pd.factorize(paths)
        for key, lo, hi in _groups(codes):
            yield f"{source.root}/{names[key]}", header, lines, lo, hi  # type: ignore[index]


def _frames_of(code: str, frames: Collection[str] | None,
               prices: dict[str, pd.DataFrame] | None) -> Collection[str] | None:
    if prices is None or code in prices:
        return frames
    return [f for f in (frames or ("assets", "symbols", "corporate_actions")) if f != "prices"]


def write_ftp_tree(universe: SandboxUniverse, root: str | os.PathLike[str], *,
                   progress: bool = False,
                   on_file: Callable[[WrittenFile], None] | None = None,
                   only_changed: bool = False, frames: Collection[str] | None = None,
                   prices: dict[str, pd.DataFrame] | None = None) -> list[WrittenFile]:
    """Write the vendor FTP trees of the universe's markets (with ``.sha256`` sidecars).

    Each FTP source of a market (``quantlib/markets.yaml``) is written under its root in
    its delimited format; markets without one (the US speaks only the HTTP API) write
    nothing.

    Parameters
    ----------
    universe : SandboxUniverse
        The truth to write.
    root : path
        Folder to write into (created if needed); paths are ``<source root>/...``.
    progress : bool
        Show a tqdm progress bar.
    on_file : callable, optional
        Called with each :class:`WrittenFile` as it is written.
    only_changed : bool
        Leave files whose content is unchanged alone (the vendor clock advancing: only
        new days, the re-delivered month and changed reference files are written).
    frames : collection of str, optional
        Write only these canonical frames' files (e.g. ``("prices",)``; default all).
    prices : dict, optional
        Price rows to write per market instead of the universe's (one month of a
        streamed sandbox, :mod:`quantlib.sandbox.served`); markets not in it write no
        price file.

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
    jobs: list[tuple[Iterator[_FileJob], str]] = [
        (_market_files(universe, code, src, _frames_of(code, frames, prices),
                       None if prices is None else prices[code]),
         FORMATS[str(src.format)].encoding)
        for code in universe.markets for src in MARKETS[code].sources if src.protocol == "ftp"]
    written: list[WrittenFile] = []
    with tqdm(desc="writing vendor files", unit="file", disable=not progress) as bar:
        for files, encoding in jobs:
            for rel, header, lines, lo, hi in files:
                wf = _write(root, rel, header, lines, lo, hi, encoding, only_changed)
                if wf is None:
                    continue
                written.append(wf)
                if on_file is not None:
                    on_file(wf)
                bar.update(1)
    return written
