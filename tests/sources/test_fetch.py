"""fetch_market / fetch_fx against the real sandbox FTP and HTTP servers."""

from __future__ import annotations

import pandas as pd
import pytest

from quantlib.raw import RawZone
from quantlib.sources import fetch_fx, fetch_market
from quantlib.standardize import PROVENANCE, standardize
from quantlib.validate import validate


def _same(got: pd.DataFrame, truth: pd.DataFrame) -> None:
    key = list(truth.columns)
    g = got.drop(columns=list(PROVENANCE)).sort_values(key, ignore_index=True)
    t = truth.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(g, t, check_dtype=False)


def _fetch_all(sandbox, raw, fetch_id, retry, **kw):
    out = []
    for m in sandbox.universe.markets:     # every market of the registry, JP included
        out += fetch_market(m, raw=raw, connection=sandbox, fetch_id=fetch_id, retry=retry, **kw)
    out += fetch_fx(raw=raw, connection=sandbox, fetch_id=fetch_id, retry=retry, **kw)
    return out


def test_fetch_standardize_equals_truth(sandbox, fast_retry, tmp_path):
    raw = RawZone(str(tmp_path / "store"))
    deliveries = _fetch_all(sandbox, raw, "f1", fast_retry)
    u = sandbox.universe
    kr_files = [f for f in sandbox.files if f.path.startswith("kr/")]
    got_kr = [d for d in deliveries if d.source == "ftp-kr"]
    assert sorted(d.file for d in got_kr) == sorted(f.path for f in kr_files)
    by_path = {f.path: f for f in sandbox.files}
    for d in got_kr + [d for d in deliveries if d.source in ("ftp-eu", "ftp-jp")]:
        assert (d.sha256, d.rows) == (by_path[d.file].sha256, by_path[d.file].rows)
    assert {d.source for d in deliveries} == {"ftp-kr", "ftp-eu", "ftp-jp", "api-kr", "api-eu",
                                              "api-jp", "api-us", "api-fx"}
    assert {d.file.split("/")[1] for d in deliveries if d.source == "ftp-jp"} == {
        "meigara.csv", "code_history.csv", "kenri.csv", "daily"}
    batch = standardize(deliveries, raw)
    for name, truth in u.frames().items():
        _same(batch.frames()[name], truth)
    # provenance points at real vendor rows
    p = batch.prices
    kr_row = p[p["source"] == "ftp-kr"].iloc[5]
    text = raw.get(next(d.sha256 for d in got_kr if d.file == kr_row["file"])).decode("cp949")
    line = text.splitlines()[kr_row["row"]]
    assert line.split(",")[1] == kr_row["asset_id"]
    assert float(line.split(",")[7]) == kr_row["close"]
    jp_row = p[p["source"] == "ftp-jp"].iloc[7]       # Shift_JIS file with Japanese headers
    jp = raw.get(next(d.sha256 for d in deliveries if d.file == jp_row["file"]))
    header, line = jp.decode("shift_jis").splitlines()[0], jp.decode("shift_jis").splitlines()[
        jp_row["row"]]
    assert header == "日付,銘柄コード,ISINコード,銘柄名,始値,高値,安値,終値,出来高"
    assert line.split(",")[2] == jp_row["asset_id"] and float(line.split(",")[7]) == \
        jp_row["close"]
    outcome = validate(batch, deliveries=deliveries)
    assert outcome.report["bad_rows"] == 0
    assert outcome.report["reconciliation"]["files"] == len(deliveries)
    assert outcome.report["reconciliation"]["mismatches"] == []
    m = raw.manifest()
    assert len(m) == len(deliveries) and set(m["status"]) == {"fetched"}


def test_second_fetch_is_idempotent(sandbox, fast_retry, tmp_path):
    raw = RawZone(str(tmp_path / "store"))
    first = _fetch_all(sandbox, raw, "f1", fast_retry)
    objects = sorted(raw.fs.find(f"{raw.root}/raw"))
    manifest = raw.manifest()
    again = _fetch_all(sandbox, raw, "f2", fast_retry, new_only=True)
    assert again == []
    current = _fetch_all(sandbox, raw, "f3", fast_retry)
    assert [(d.source, d.file, d.sha256, d.fetch_id) for d in current] == \
        [(d.source, d.file, d.sha256, "f1") for d in first]
    assert sorted(raw.fs.find(f"{raw.root}/raw")) == objects
    m2 = raw.manifest()
    assert len(m2) == len(manifest)
    assert not m2.duplicated(["source", "file", "sha256", "status"]).any()
    assert [(d.source, d.file, d.sha256) for d in raw.latest_deliveries("KR")] == sorted(
        (d.source, d.file, d.sha256) for d in first if d.market == "KR")


def test_window_limits_price_files_and_pages(sandbox, fast_retry, tmp_path):
    raw = RawZone(str(tmp_path / "store"))
    kr = fetch_market("KR", raw=raw, connection=sandbox, fetch_id="w", retry=fast_retry,
                      start="2025-06-01", end="2025-06-30")
    prices = sorted(d.file for d in kr if d.file.startswith("kr/prices/"))
    assert prices[0] == "kr/prices/20250602.csv" and prices[-1] == "kr/prices/20250630.csv"
    us = fetch_market("US", raw=raw, connection=sandbox, fetch_id="w", retry=fast_retry,
                      start="2025-06-01", end="2025-06-30")
    page = next(d for d in us if "/prices" in d.file)
    assert page.file == "api/v1/prices?market=US&start=2025-06-01&end=2025-06-30&page=1"
    got = standardize([page], raw).prices
    truth = sandbox.universe.prices
    want = truth[truth["asset_id"].str.startswith("US") & (truth["date"] >= "2025-06-01")
                 & (truth["date"] <= "2025-06-30")]
    assert len(got) == len(want) > 0


def test_unknown_market_fails_fast(sandbox, tmp_path):
    from quantlib.errors import PermanentSourceError

    with pytest.raises(PermanentSourceError, match="market must be one of KR, US, EU, JP, FX"):
        fetch_market("CH", raw=RawZone(str(tmp_path)), connection=sandbox, fetch_id="x")


def test_connection_from_sandbox_state_file(sandbox, fast_retry, tmp_path):
    """With no connection given, sources read $QUANTLIB_HOME/run/sandbox.json."""
    sandbox.connection().save()          # the per-test QUANTLIB_HOME (tests/conftest.py)
    raw = RawZone(str(tmp_path / "store"))
    fx = fetch_fx(raw=raw, fetch_id="s", retry=fast_retry)
    assert [d.file for d in fx] == ["api/v1/fx?page=1"]
    assert fx[0].rows == len(sandbox.universe.fx)


def test_missing_connection_info_says_how_to_fix(tmp_path):
    from quantlib.errors import ConfigError

    with pytest.raises(ConfigError, match=r"vendor connection info must be available; found no "
                                          r"QUANTLIB_FTP_URL/QUANTLIB_API_URL and no sandbox "
                                          r"state .*Fix: start the sandbox"):
        fetch_fx(raw=RawZone(str(tmp_path)), fetch_id="s")


def test_many_pages_fetched_in_parallel_equal_truth(sandbox, fast_retry, tmp_path):
    import dataclasses

    from quantlib.sources import SOURCES, run_sources

    src = dataclasses.replace(SOURCES["api-us"], endpoints=("prices",), page_size=500)
    truth = sandbox.universe.prices
    truth = truth[truth["asset_id"].str.startswith("US")]
    n_pages = -(-len(truth) // 500)
    sandbox.faults.add(kind="http_5xx", match="/v1/prices", times=3, protocol="http")
    raw = RawZone(str(tmp_path))
    ds = run_sources([src], raw=raw, connection=sandbox, fetch_id="p", retry=fast_retry)
    assert sorted(d.file for d in ds) == sorted(
        f"api/v1/prices?market=US&page={k}" for k in range(1, n_pages + 1))
    assert sum(d.rows for d in ds) == len(truth)
    _same(standardize(ds, raw).prices, truth.reset_index(drop=True))
    assert run_sources([src], raw=raw, connection=sandbox, fetch_id="q", retry=fast_retry,
                       new_only=True) == []
