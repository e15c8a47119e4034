"""The streamed (out-of-core) sandbox: same files and pages as in memory, advancing,
bounded chunks."""

from __future__ import annotations

import ftplib
import io
import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

from quantlib.errors import ConfigError
from quantlib.markets import MARKETS
from quantlib.sandbox import generate, start_sandbox
from quantlib.sandbox.bars import month_bounds
from quantlib.sandbox.pool import make_pool
from quantlib.sandbox.served import ServedVendor

ARGS = {"n_assets": 14, "years": 1, "seed": 5}
E1, E2, E3 = "2025-12-10", "2025-12-11", "2026-01-09"
FAST = (1000.0, 1000.0)


def ftp_tree(sb) -> dict[str, bytes]:
    """Every file under the FTP root, fetched over FTP (folders walked with NLST)."""
    out: dict[str, bytes] = {}
    with ftplib.FTP() as ftp:
        ftp.connect(sb.ftp_host, sb.ftp_port, timeout=10)
        ftp.login(sb.ftp_user, sb.ftp_password)
        todo = ["/"]
        while todo:
            folder = todo.pop()
            for name in ftp.nlst(folder):
                path = name if name.startswith("/") else f"{folder.rstrip('/')}/{name}"
                try:
                    ftp.cwd(path)
                    todo.append(path)
                    continue
                except ftplib.error_perm:
                    pass
                buf = io.BytesIO()
                ftp.retrbinary(f"RETR {path}", buf.write)
                out[path.lstrip("/")] = buf.getvalue()
    return out


def get(sb, path: str) -> dict:
    req = urllib.request.Request(sb.http_url + path, headers={"X-API-Key": sb.api_key})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


QUERIES = [
    "/v1/securities?market=KR", "/v1/tickers?market=EU", "/v1/fx?start=2025-03-01",
    "/v1/corporate_actions?market=US", "/v1/corporate_actions?market=KR&updated_since=2025-06-01",
    "/v1/prices?market=US&page_size=50000",
    "/v1/prices?market=US&page=3&page_size=700",
    "/v1/prices?market=EU&start=2025-05-30&end=2025-07-02&page=2&page_size=333",
    "/v1/prices?market=JP&updated_since=2025-12-01T06:00:00",
    "/v1/prices?market=US&start=2025-12-01&updated_since=2025-11-20&page_size=50",
    "/v1/fundamentals?market=KR&page_size=50000",
    "/v1/fundamentals?market=EU&updated_since=2025-09-15&page=2&page_size=100",
]


def assert_same_vendor(a, b) -> None:
    """Two running sandboxes serve the same FTP bytes and the same API pages."""
    ta, tb = ftp_tree(a), ftp_tree(b)
    assert len(ta) > 100 and sorted(ta) == sorted(tb)
    assert [p for p in ta if ta[p] != tb[p]] == []
    for q in QUERIES:
        pa_, pb = get(a, q), get(b, q)
        assert pa_ == pb, q
    assert get(a, QUERIES[5])["total_rows"] > 2000


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    root = tmp_path_factory.mktemp("served") / "ftp"
    with start_sandbox(end=E1, markets=tuple(MARKETS), root=root, rate_limit=FAST,
                       write_state=False, streamed=True, **ARGS) as sb:
        yield sb


def test_streamed_sandbox_equals_the_in_memory_one(streamed):
    u = generate(end=E1, markets=tuple(MARKETS), **ARGS)
    with start_sandbox(u, rate_limit=FAST, write_state=False) as mem:
        assert_same_vendor(mem, streamed)
    assert (streamed.root.parent / "ftp-api" / "US" / "prices" / "202512.arrow").exists()
    assert not any(p.suffix == ".arrow" for p in streamed.root.rglob("*"))
    with pytest.raises(ConfigError, match="a streamed sandbox holds no universe in memory"):
        _ = streamed.universe
    pd.testing.assert_frame_equal(streamed.reference.assets, u.assets)
    pd.testing.assert_frame_equal(streamed.reference.corporate_actions, u.corporate_actions)


def test_streamed_advance_serves_what_a_later_start_serves(streamed):
    before = ftp_tree(streamed)
    for end in (E2, E3):
        answer = streamed.connection().advance(end)
        after = ftp_tree(streamed)
        delivered = {f["path"] for f in answer["files"]}
        changed = {p for p in after if before.get(p) != after[p]}
        assert changed == delivered | {p + ".sha256" for p in delivered}
        before = after
    # one day: the new KR and JP day files, the EU month re-delivered (plus corrections)
    assert get(streamed, "/_sandbox/clock")["end"] == E3
    start = str(streamed.reference.start.date())
    u = generate(end=E3, start=start, markets=tuple(MARKETS), **ARGS)
    with start_sandbox(u, rate_limit=FAST, write_state=False) as mem:
        assert_same_vendor(mem, streamed)
        new = get(streamed, f"/v1/prices?market=US&start={E2}&page_size=50000")
        us = u.market_frame("prices", "US")
        assert new["total_rows"] == int((us["date"] >= E2).sum()) > 0


def test_one_day_advance_delivers_the_day(tmp_path):
    with start_sandbox(end=E1, markets=("KR", "EU"), root=tmp_path / "t", rate_limit=FAST,
                       write_state=False, streamed=True, **ARGS) as sb:
        paths = {f.path for f in sb.advance(E2)}
    assert {"kr/prices/20251211.csv", "eu/prices/prices_202512.csv"} <= paths
    assert all(p.startswith(("kr/prices/2025", "eu/prices/", "kr/corporate",
                             "eu/corporate")) for p in paths), paths


def test_writer_handles_one_month_of_bars_at_a_time(tmp_path):
    sizes = {"KR": 40, "US": 60}
    chunks: list[tuple[str, str, int]] = []
    v = ServedVendor(tmp_path / "ftp", tmp_path / "api", sizes, 3, 2, "2023-01-02",
                     ("KR", "US"))
    v.build("2025-12-31", on_chunk=lambda m, kind, n: chunks.append((m, kind, n)))
    u = generate(n_assets=sizes, years=3, seed=2, start="2023-01-02", end="2025-12-31",
                 markets=("KR", "US"))
    for code in sizes:
        bars = [n for m, kind, n in chunks if m == code and kind == "prices"]
        month = int(np.diff(month_bounds(code)).max()) * len(make_pool(code, sizes[code], 3, 2))
        total = len(u.market_frame("prices", code))
        assert sum(bars) == total and len(bars) == 36
        assert max(bars) <= month and max(bars) < total / 30
        st = [n for m, kind, n in chunks if m == code and kind == "statements"]
        assert sum(st) == len(u.market_frame("statements", code))
    assert v.store.disk_bytes() > 0


def test_streamed_rejects_a_given_universe_and_bad_sizes(tmp_path):
    with pytest.raises(ConfigError, match="a streamed sandbox generates its own universe"):
        start_sandbox(generate(n_assets=5, years=0.25, markets=("US",)), streamed=True,
                      write_state=False)
    with pytest.raises(ConfigError, match="n_assets must give a size for every market; EU"):
        start_sandbox(n_assets={"KR": 10}, markets=("KR", "EU"), streamed=True,
                      write_state=False)


def test_advance_rebuilds_only_the_statement_blocks_that_changed(tmp_path):
    from quantlib.sandbox.api import ApiData

    args = {"n_assets": 60, "years": 2, "seed": 8, "start": "2024-01-02"}
    v = ServedVendor(tmp_path / "ftp", tmp_path / "api", 60, 2, 8, args["start"], ("US",))
    v.statement_block = 5
    v.build("2025-11-03")
    rebuilt: list[int] = []
    v.build("2025-11-14", on_chunk=lambda m, kind, n: rebuilt.append(n) if kind ==
            "statements" else None)
    blocks = len(list((tmp_path / "api" / "US" / "fundamentals").iterdir()))
    assert 0 < len(rebuilt) < blocks             # some blocks had new filings, not all
    u = generate(end="2025-11-14", markets=("US",), n_assets=60, years=2, seed=8,
                 start=args["start"])
    q = {"market": "US", "page_size": "50000"}
    assert v.api().page("fundamentals", q) == ApiData(u).page("fundamentals", q)
    q["updated_since"] = "2025-11-04"
    fresh = v.api().page("fundamentals", q)
    assert fresh == ApiData(u).page("fundamentals", q) and fresh["total_rows"] > 0


def test_cli_takes_sizes_per_market(_isolated_home, capsys):
    from quantlib.cli import main
    from quantlib.sandbox.cli import _sizes

    assert _sizes(None, None, "KR=5000,us=14000") == {"KR": 5000, "US": 14000}
    assert _sizes(None, None, "300") == 300
    assert main(["data", "sandbox", "--stream", "--assets", "KR=many"]) == 2
    assert "expected a number or MARKET=N" in capsys.readouterr().err


def test_updated_since_poll_of_a_large_block_reads_only_its_batches(tmp_path):
    """A fundamentals block far larger than a record batch: a poll's few new rows,
    spread over the block, are selected by the sorted index and decoded from their
    batches only; the rows equal a filter of the whole block, in the block's order."""
    from quantlib.sandbox.apistore import _BATCH, ApiStore

    n = 40 * _BATCH
    rng = np.random.default_rng(3)
    upd = rng.integers(0, 10_000, n)
    hot = rng.choice(n, 20, replace=False)
    upd[hot] = 20_000 + np.arange(20)
    import pyarrow as pa
    tab = pa.table({"isin": np.arange(n), "updated_ms": upd})
    store = ApiStore(tmp_path)
    store.write("fundamentals", "US", "0000", tab)
    got, total = store.slices("fundamentals", "US", 0, 100, since=20_005)
    want = np.sort(hot[upd[hot] >= 20_005])
    assert total == len(want) == 15
    assert pa.concat_tables(got).column("isin").to_pylist() == want.tolist()
    assert store._cache == {}          # no whole block decoded
    # a poll reaching most batches reads the block whole (and caches it): same answer
    got, total = store.slices("fundamentals", "US", 0, n, since=5_000)
    assert total == int((upd >= 5_000).sum())
    assert pa.concat_tables(got).column("isin").to_numpy().tolist() == \
        np.flatnonzero(upd >= 5_000).tolist()
