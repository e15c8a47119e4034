"""Fault injection on the real sandbox servers: transient faults are retried and succeed,
permanent ones fail fast with a message naming source, file and the fix."""

from __future__ import annotations

import dataclasses
import time

import pytest

from quantlib.errors import PermanentSourceError, StandardizeError, TransientSourceError
from quantlib.raw import RawZone
from quantlib.sources import SOURCES, Connection, RetryPolicy, fetch_market, run_sources
from quantlib.sources.http import PAGE_SIZE
from quantlib.standardize import standardize
from quantlib.validate import validate

SLOW = RetryPolicy(initial=5.0, maximum=5.0, jitter=0.0, max_attempts=3)
KR_FILE = "kr/prices/20250602.csv"


def _kr_subset(name: str = "ftp-kr"):
    return dataclasses.replace(SOURCES[name], files=(KR_FILE,), folders=())


@pytest.mark.parametrize("kind", ["drop_connection", "http_5xx", "http_429", "truncate",
                                  "garbage_values", "duplicate_rows", "rename_column",
                                  "missing_column"])
def test_ftp_transient_faults_are_retried(sandbox, fast_retry, tmp_path, kind):
    fault = sandbox.faults.add(kind=kind, match=KR_FILE, times=2, protocol="ftp")
    raw = RawZone(str(tmp_path / "store"))
    [d] = run_sources([_kr_subset()], raw=raw, connection=sandbox, fetch_id="f",
                      retry=fast_retry)
    assert fault.fired == 2
    want = next(f for f in sandbox.files if f.path == KR_FILE)
    assert (d.file, d.sha256, d.rows) == (KR_FILE, want.sha256, want.rows)
    assert raw.get(d.sha256) == (sandbox.root / KR_FILE).read_bytes()


@pytest.mark.parametrize("kind", ["drop_connection", "http_5xx", "truncate"])
def test_http_transient_faults_are_retried(sandbox, fast_retry, tmp_path, kind):
    fault = sandbox.faults.add(kind=kind, match="/v1/prices", times=2, protocol="http")
    raw = RawZone(str(tmp_path / "store"))
    src = dataclasses.replace(SOURCES["api-us"], endpoints=("prices",))
    deliveries = run_sources([src], raw=raw, connection=sandbox, fetch_id="f",
                             retry=fast_retry)
    assert fault.fired == 2
    truth = sandbox.universe.prices
    assert len(standardize(deliveries, raw).prices) == int(
        truth["asset_id"].str.startswith("US").sum())


def test_http_429_honours_retry_after(sandbox, tmp_path):
    fault = sandbox.faults.add(kind="http_429", match="/v1/securities", times=1)
    raw = RawZone(str(tmp_path / "store"))
    src = dataclasses.replace(SOURCES["api-us"], endpoints=("securities",))
    policy = RetryPolicy(initial=0.01, maximum=0.01, jitter=0.0, max_retry_after=5)
    t0 = time.monotonic()
    [d] = run_sources([src], raw=raw, connection=sandbox, fetch_id="f", retry=policy)
    assert time.monotonic() - t0 >= 1.0     # the sandbox says Retry-After: 1
    assert fault.fired == 1 and d.rows == len(sandbox.universe.market_assets("US")) == 21


def test_persistent_transient_fault_gives_up_after_max_attempts(sandbox, tmp_path):
    fault = sandbox.faults.add(kind="truncate", match=KR_FILE, times=None, protocol="ftp")
    policy = RetryPolicy(initial=0.01, maximum=0.01, jitter=0.0, max_attempts=3)
    raw = RawZone(str(tmp_path / "store"))
    with pytest.raises(TransientSourceError) as err:
        run_sources([_kr_subset()], raw=raw, connection=sandbox, fetch_id="f", retry=policy)
    assert fault.fired == 3
    msg = str(err.value)
    assert msg.startswith("download must match its sidecar sha256 and row count; found sha256")
    assert "truncated transfer?" in msg and f"source=ftp-kr, file={KR_FILE}" in msg


def _conn(sandbox, **over):
    base = {k: getattr(sandbox, k) for k in ("ftp_host", "ftp_port", "ftp_user",
                                             "ftp_password", "http_url", "api_key")}
    return Connection(**{**base, **over})


def test_bad_api_key_fails_fast(sandbox, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(PermanentSourceError) as err:
        fetch_market("US", raw=RawZone(str(tmp_path)), connection=_conn(sandbox, api_key="x"),
                     fetch_id="f", retry=SLOW)
    assert time.monotonic() - t0 < 3
    assert str(err.value) == (
        "API must answer 200; found HTTP 401 [source=api-us, "
        "file=api/v1/securities?market=US&page=1]. Fix: check the API key "
        "(sandbox state file or QUANTLIB_API_KEY)")


def test_bad_ftp_password_fails_fast(sandbox, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(PermanentSourceError) as err:
        fetch_market("KR", raw=RawZone(str(tmp_path)),
                     connection=_conn(sandbox, ftp_password="wrong"), fetch_id="f", retry=SLOW)
    # pyftpdlib answers a failed login after ~3 s; one retry under SLOW would add 5 s more
    assert time.monotonic() - t0 < 4.9
    msg = str(err.value)
    assert msg.startswith("FTP login must succeed; found 530")
    assert msg.endswith("Fix: check ftp_user/ftp_password (sandbox state file or "
                        "QUANTLIB_FTP_URL)")
    assert "source=ftp-kr" in msg


def test_missing_file_and_endpoint_fail_fast(sandbox, tmp_path):
    raw = RawZone(str(tmp_path))
    gone = dataclasses.replace(SOURCES["ftp-kr"], files=("kr/nope.csv",), folders=())
    t0 = time.monotonic()
    with pytest.raises(PermanentSourceError,
                       match=r"^vendor file must exist; found 550 .*\[source=ftp-kr, "
                             r"file=kr/nope.csv.sha256\]"):
        run_sources([gone], raw=raw, connection=sandbox, fetch_id="f", retry=SLOW)
    bad = dataclasses.replace(SOURCES["api-us"], endpoints=("nope",))
    with pytest.raises(PermanentSourceError, match=r"found HTTP 404 .*Fix: check the endpoint"):
        run_sources([bad], raw=raw, connection=sandbox, fetch_id="f", retry=SLOW)
    assert time.monotonic() - t0 < 3


def test_api_garbage_and_duplicates_reach_quarantine(sandbox, fast_retry, tmp_path):
    raw = RawZone(str(tmp_path))
    src = dataclasses.replace(SOURCES["api-us"], endpoints=("securities", "prices"))
    sandbox.faults.add(kind="garbage_values", match="/v1/prices", times=1, protocol="http")
    deliveries = run_sources([src], raw=raw, connection=sandbox, fetch_id="f", retry=fast_retry)
    out = validate(standardize(deliveries, raw), max_bad_row_fraction=0.5)
    q = out.quarantine
    page = "api/v1/prices?market=US&page=1"
    bad = q[q["severity"] == "bad"].sort_values("row")
    assert bad[["file", "row", "field"]].values.tolist()[:4] == [
        [page, 0, "close"], [page, 1, "close"], [page, 2, "close"], [page, 3, "close"]]
    assert bad[["check", "value"]].values.tolist()[:4] == [
        ["positive", "-1.0"], ["missing_or_garbage", "n/a"], ["positive", "-1.0"],
        ["missing_or_garbage", "n/a"]]
    # the duplicate page on a fresh store: exact copies dropped, reported, not "bad"
    sandbox.faults.add(kind="duplicate_rows", match="/v1/prices", times=1, protocol="http")
    raw2 = RawZone(str(tmp_path / "two"))
    deliveries = run_sources([src], raw=raw2, connection=sandbox, fetch_id="f",
                             retry=fast_retry)
    out = validate(standardize(deliveries, raw2))
    dups = out.quarantine[out.quarantine["check"] == "duplicate"]
    page1 = min(PAGE_SIZE, len(out.clean.prices))     # the copies are appended to page 1
    assert len(out.clean.prices) > PAGE_SIZE
    assert dups["row"].tolist() == [page1, page1 + 1, page1 + 2]
    assert dups["reason"].iloc[0] == f"exact duplicate of {page} row 0 (kept that one)"
    assert out.report["bad_rows"] == 0


def test_api_missing_column_raises_standardize_error(sandbox, fast_retry, tmp_path):
    raw = RawZone(str(tmp_path))
    src = dataclasses.replace(SOURCES["api-us"], endpoints=("corporate_actions",))
    sandbox.faults.add(kind="missing_column", match="/v1/corporate_actions", column="value",
                       times=1, protocol="http")
    deliveries = run_sources([src], raw=raw, connection=sandbox, fetch_id="f", retry=fast_retry)
    with pytest.raises(StandardizeError, match=r"\(missing \['value'\], unexpected \[\]\) "
                       r"\[source=api-us, market=US, file=api/v1/corporate_actions\?market=US"
                       r"&page=1, field=value\]"):
        standardize(deliveries, raw)


def test_api_renamed_column_raises_standardize_error(sandbox, fast_retry, tmp_path):
    raw = RawZone(str(tmp_path))
    src = dataclasses.replace(SOURCES["api-us"], endpoints=("prices",))
    sandbox.faults.add(kind="rename_column", match="/v1/prices", times=1, protocol="http")
    deliveries = run_sources([src], raw=raw, connection=sandbox, fetch_id="f", retry=fast_retry)
    with pytest.raises(StandardizeError) as err:
        standardize(deliveries, raw)
    msg = str(err.value)
    assert msg.startswith("vendor file must have columns ['isin', 'ticker', 't', 'o', 'h', "
                          "'l', 'c', 'v']; found")
    # updated_ms (when the vendor published the bar's version) is not read yet
    assert "missing ['c'], unexpected ['c_v2', 'updated_ms']" in msg
    assert "[source=api-us, market=US, file=api/v1/prices?market=US&page=1, field=c]" in msg
    assert "Fix: the vendor renamed or dropped a column" in msg
