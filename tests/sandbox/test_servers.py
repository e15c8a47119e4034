"""The real FTP and HTTP servers, seen by plain ftplib / urllib clients."""

from __future__ import annotations

import ftplib
import hashlib
import http.client
import io
import json
import os
import stat
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from quantlib.errors import PermanentSourceError
from quantlib.sandbox import SandboxConnection, start_sandbox, state_file_path


def ftp_login(sb):
    ftp = ftplib.FTP()
    ftp.connect(sb.ftp_host, sb.ftp_port, timeout=10)
    ftp.login(sb.ftp_user, sb.ftp_password)
    return ftp


def ftp_get(sb, path):
    with ftp_login(sb) as ftp:
        buf = io.BytesIO()
        ftp.retrbinary(f"RETR {path}", buf.write)
        return buf.getvalue()


def api(sb, path, key=True):
    req = urllib.request.Request(sb.http_url + path,
                                 headers={"X-API-Key": sb.api_key} if key else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def api_error(sb, path, key=True):
    with pytest.raises(urllib.error.HTTPError) as info:
        api(sb, path, key)
    return info.value


def all_pages(sb, path, page_size):
    rows, page, seen = [], 1, []
    while page is not None:
        body = api(sb, f"{path}&page={page}&page_size={page_size}")
        rows += body["data"]
        seen.append(body["total_rows"])
        page = body["next_page"]
    return rows, seen


# ---------------------------------------------------------------- FTP


def test_ftp_download_equals_written_file_and_sidecar(sandbox):
    f = next(x for x in sandbox.files if x.path.startswith("kr/prices/"))
    data = ftp_get(sandbox, f.path)
    assert data == (sandbox.root / f.path).read_bytes()
    digest, rows = ftp_get(sandbox, f.path + ".sha256").decode().split()
    assert hashlib.sha256(data).hexdigest() == digest and int(rows) == f.rows > 0
    assert data.decode("cp949").startswith("일자,표준코드")


def test_ftp_listing_and_read_only(sandbox):
    with ftp_login(sandbox) as ftp:
        assert set(ftp.nlst("/")) >= {"kr", "eu"}
        assert "master.csv" in ftp.nlst("kr")
        with pytest.raises(ftplib.error_perm, match="550"):
            ftp.storbinary("STOR kr/evil.csv", io.BytesIO(b"x"))
    assert not (sandbox.root / "kr/evil.csv").exists()


def test_ftp_wrong_password_is_refused(sandbox):
    ftp = ftplib.FTP()
    ftp.connect(sandbox.ftp_host, sandbox.ftp_port, timeout=10)
    with pytest.raises(ftplib.error_perm, match="530"):
        ftp.login(sandbox.ftp_user, "not-the-password")
    ftp.close()


# ---------------------------------------------------------------- HTTP


def test_health_needs_no_key(sandbox):
    assert api(sandbox, "/v1/health", key=False) == {"ok": True}


def test_401_without_key(sandbox):
    err = api_error(sandbox, "/v1/securities?market=US", key=False)
    assert err.code == 401
    assert "X-API-Key" in json.load(err)["error"]


def test_400_names_the_bad_parameter(sandbox):
    err = api_error(sandbox, "/v1/prices?market=JP")
    assert err.code == 400 and "market" in json.load(err)["error"]
    assert api_error(sandbox, "/v1/nope?market=US").code == 404


def test_pagination_returns_every_row_once(sandbox):
    u = sandbox.universe
    rows, totals = all_pages(sandbox, "/v1/prices?market=US", page_size=997)
    truth = u.prices[u.prices["asset_id"].str.startswith("US")]
    assert len(rows) == len(truth) == totals[0] and len(set(totals)) == 1
    got = pd.DataFrame(rows)
    assert not got.duplicated(["isin", "t"]).any()
    got["date"] = pd.to_datetime(got["t"], unit="ms")
    merged = truth.merge(got, left_on=["asset_id", "date"], right_on=["isin", "date"])
    assert len(merged) == len(truth)
    assert (merged["close"] == merged["c"]).all() and (merged["volume"] == merged["v"]).all()


def test_prices_date_filter_is_inclusive(sandbox):
    body = api(sandbox, "/v1/prices?market=KR&start=2025-03-04&end=2025-03-05&page_size=50000")
    days = {pd.Timestamp(r["t"], unit="ms").date().isoformat() for r in body["data"]}
    assert days == {"2025-03-04", "2025-03-05"}
    n_truth = sandbox.universe.prices["date"].isin(pd.to_datetime(["2025-03-04", "2025-03-05"]))
    kr = sandbox.universe.prices["asset_id"].str.startswith("KR")
    assert body["total_rows"] == int((n_truth & kr).sum())


def test_fx_per_usd_inverts_to_truth_rate(sandbox):
    rows, _ = all_pages(sandbox, "/v1/fx?start=2024-01-01", page_size=5000)
    got = pd.DataFrame(rows)
    truth = sandbox.universe.fx
    assert len(got) == len(truth)
    got["date"] = pd.to_datetime(got["t"], unit="ms")
    m = truth.merge(got, on=["date", "currency"])
    assert (1.0 / m["per_usd"] == m["rate"]).all()     # exact, not approximate
    assert (pd.to_datetime(m["published_ms"], unit="ms", utc=True) == m["known_at"]).all()


def test_fundamentals_carry_restatements(sandbox):
    rows, _ = all_pages(sandbox, "/v1/fundamentals?market=EU", page_size=5000)
    got = pd.DataFrame(rows)
    st = sandbox.universe.statements
    truth = st[st["asset_id"].str.startswith("DE")]
    assert len(got) == len(truth)
    assert set(got["currency"]) == {"EUR"}
    dup = got.duplicated(["isin", "field", "period_end_ms"], keep=False)
    assert dup.sum() > 0      # restated rows arrive as extra rows
    assert np.array_equal(np.sort(got["value"].to_numpy()), np.sort(truth["value"].to_numpy()))


def test_securities_and_nullable_fields(sandbox):
    body = api(sandbox, "/v1/securities?market=KR")
    n_kr = len(sandbox.universe.market_assets("KR"))
    assert body["total_rows"] == n_kr == 25 and body["next_page"] is None
    rec = body["data"][0]
    assert set(rec) == {"isin", "ticker", "name", "sector", "currency", "listed_ms",
                        "delisted_ms"}
    delisted = sandbox.universe.market_assets("KR")["delisted"].notna().sum()
    assert sum(r["delisted_ms"] is not None for r in body["data"]) == delisted


def test_rate_limit_answers_429_with_retry_after(small_universe):
    with start_sandbox(small_universe, rate_limit=(0.5, 3), write_state=False) as sb:
        codes = []
        for _ in range(5):
            try:
                api(sb, "/v1/securities?market=US")
                codes.append(200)
            except urllib.error.HTTPError as err:
                codes.append(err.code)
                retry = err.headers["Retry-After"]
        assert codes == [200, 200, 200, 429, 429]
        assert retry is not None and 1 <= int(retry) <= 2
        assert api(sb, "/v1/health", key=False) == {"ok": True}   # not rate limited
        time.sleep(2.1)
        assert api(sb, "/v1/securities?market=US")["total_rows"] == len(
            sb.universe.market_assets("US")) == 28


# ---------------------------------------------------------------- state file


def test_state_file_is_private_and_removed_on_stop(small_universe):
    with start_sandbox(small_universe) as sb:
        path = state_file_path()
        assert sb.state_file == path and path.exists()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        conn = SandboxConnection.load()
        assert (conn.ftp_port, conn.http_url, conn.api_key, conn.pid) == (
            sb.ftp_port, sb.http_url, sb.api_key, os.getpid())
        assert conn.to_env()["QUANTLIB_FTP_URL"].startswith(f"ftp://{sb.ftp_user}:")
        assert ftp_get(sb, "eu/reference.csv").startswith(b"ISIN;Ticker")
        root = sb.root
    assert not path.exists() and not root.exists()
    with pytest.raises(PermanentSourceError, match="start one with `quantlib data sandbox`"):
        SandboxConnection.load()


def test_two_sandboxes_get_different_credentials(small_universe):
    with start_sandbox(small_universe, write_state=False) as a, \
            start_sandbox(small_universe, write_state=False) as b:
        assert a.api_key != b.api_key and a.ftp_password != b.ftp_password
        assert a.ftp_port != b.ftp_port
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(urllib.request.Request(
                a.http_url + "/v1/securities?market=US", headers={"X-API-Key": b.api_key}))
        assert info.value.code == 401


def test_http_client_keeps_connection_alive(sandbox):
    conn = http.client.HTTPConnection(sandbox.ftp_host, int(sandbox.http_url.rsplit(":", 1)[1]))
    for _ in range(3):
        conn.request("GET", "/v1/health")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == {"ok": True}
    conn.close()


def test_page_bounds(sandbox):
    total = api(sandbox, "/v1/securities?market=EU")["total_rows"]
    last = api(sandbox, f"/v1/securities?market=EU&page_size=7&page={-(-total // 7)}")
    assert len(last["data"]) == total - 7 * (-(-total // 7) - 1) and last["next_page"] is None
    beyond = api(sandbox, "/v1/securities?market=EU&page_size=7&page=999")
    assert beyond["data"] == [] and beyond["next_page"] is None and beyond["total_rows"] == total
    for bad in ("page=0", "page_size=50001", "page=x"):
        err = api_error(sandbox, f"/v1/securities?market=EU&{bad}")
        assert err.code == 400 and bad.split("=")[0] in json.load(err)["error"]
    err = api_error(sandbox, "/v1/prices?market=US&start=yesterday-ish")
    assert err.code == 400 and "YYYY-MM-DD" in json.load(err)["error"]


def test_parallel_ftp_and_http_clients(sandbox):
    from concurrent.futures import ThreadPoolExecutor

    paths = [f.path for f in sandbox.files if f.path.startswith("kr/prices/")][:40]

    def fetch(chunk):
        with ftplib.FTP() as ftp:
            ftp.connect(sandbox.ftp_host, sandbox.ftp_port, timeout=20)
            ftp.login(sandbox.ftp_user, sandbox.ftp_password)
            out = {}
            for p in chunk:
                buf = io.BytesIO()
                ftp.retrbinary(f"RETR {p}", buf.write)
                out[p] = buf.getvalue()
            return out

    def page(p):
        return api(sandbox, f"/v1/prices?market=KR&page_size=1000&page={p}")["data"]

    with ThreadPoolExecutor(8) as pool:
        ftp_parts = list(pool.map(fetch, [paths[k::4] for k in range(4)]))
        pages = list(pool.map(page, range(1, 9)))
    got = {k: v for part in ftp_parts for k, v in part.items()}
    assert len(got) == len(paths)
    assert all(got[p] == (sandbox.root / p).read_bytes() for p in paths)
    keys = [(r["isin"], r["t"]) for pg in pages for r in pg]
    assert len(keys) == len(set(keys)) == 8000
