"""The vendor sandbox's API pages: CPU to answer every page of the large endpoints, the
pages as dicts + ``json.dumps`` (before) against the JSON encoded from the columns
(:mod:`quantlib.sandbox.pagejson`, after), and the two bodies compared byte for byte.

Run: ``uv run python bench/bench_api_pages.py [--assets 2800] [--years 2] [--streamed]
[--repeat 3]``. One US universe (``generate``, or with ``--streamed`` a
:class:`~quantlib.sandbox.served.ServedVendor` whose pages come from Arrow partitions on
disk); every ``prices`` and ``fundamentals`` page at the fetch's page size, as the
build's fetch asks for them (no HTTP: this is the encoding alone). Prints CPU
microseconds per served row, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from quantlib.sandbox import generate
from quantlib.sandbox.api import ApiData, page_json
from quantlib.sandbox.served import ServedVendor
from quantlib.sources.http import PAGE_SIZE

END = "2024-12-31"


def _api(assets: int, years: float, streamed: bool) -> ApiData:
    if not streamed:
        return ApiData(generate(n_assets={"US": assets}, years=years, seed=1, end=END,
                                markets=("US",)))
    work = Path(tempfile.mkdtemp(prefix="bench-api-pages-"))
    start = pd.Timestamp(END) - pd.DateOffset(days=round(365.25 * years))
    vendor = ServedVendor(work / "ftp", work / "api", {"US": assets}, years, 1, start,
                          ("US",))
    vendor.build(END)
    return vendor.api()


def _serve(api: ApiData, endpoint: str, encode: str) -> tuple[float, int, list[bytes]]:
    """CPU seconds to answer every page of ``endpoint``, rows served, the bodies."""
    bodies = []
    rows, page = 0, 1
    c0 = time.process_time()
    while True:
        params = {"market": "US", "page": str(page), "page_size": str(PAGE_SIZE)}
        if encode == "dicts":
            p = api.page(endpoint, params)
            body, nxt, n = page_json(p), p["next_page"], len(p["data"])
        else:
            body = api.page_body(endpoint, params)
            nxt, n = (page + 1 if page * PAGE_SIZE < _total(body) else None), 0
        bodies.append(body)
        rows += n
        if nxt is None:
            break
        page += 1
    return time.process_time() - c0, rows, bodies


def _total(body: bytes) -> int:
    return int(body[body.rindex(b'"total_rows":') + 13:-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=2800)
    parser.add_argument("--years", type=float, default=2)
    parser.add_argument("--streamed", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    api = _api(args.assets, args.years, args.streamed)
    kind = "streamed (Arrow partitions)" if args.streamed else "in memory"
    print(f"US {args.assets} assets x {args.years:g} y, {kind}, page_size {PAGE_SIZE}")
    print(f"{'endpoint':<14}{'rows':>11}{'dicts us/row':>14}{'columns us/row':>16}"
          f"{'ratio':>7}  bytes equal")
    for endpoint in ("prices", "fundamentals"):
        best: dict[str, float] = {}
        bodies: dict[str, list[bytes]] = {}
        rows = 0
        for _ in range(args.repeat):
            for encode in ("dicts", "columns"):
                cpu, n, out = _serve(api, endpoint, encode)
                best[encode] = min(best.get(encode, cpu), cpu)
                bodies[encode] = out
                rows = max(rows, n)
        same = bodies["dicts"] == bodies["columns"]
        d, c = best["dicts"] / rows * 1e6, best["columns"] / rows * 1e6
        print(f"{endpoint:<14}{rows:>11,}{d:>14.2f}{c:>16.2f}{d / c:>6.1f}x  {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
