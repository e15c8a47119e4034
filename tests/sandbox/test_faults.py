"""Every fault kind, observed by a plain client (ftplib / urllib), on both servers."""

from __future__ import annotations

import ftplib
import hashlib
import http.client
import io
import json
import urllib.error
import urllib.request

import pytest

from quantlib.errors import ConfigError
from quantlib.sandbox.faults import FAULT_KINDS, FaultRegistry, parse_fault_spec

KR_FILE = "kr/prices/20250102.csv"
EU_FILE = "eu/prices/prices_202501.csv"


def ftp_get(sb, path):
    with ftplib.FTP() as ftp:
        ftp.connect(sb.ftp_host, sb.ftp_port, timeout=10)
        ftp.login(sb.ftp_user, sb.ftp_password)
        buf = io.BytesIO()
        ftp.retrbinary(f"RETR {path}", buf.write)
        return buf.getvalue()


def api_raw(sb, path, method="GET", body=None):
    req = urllib.request.Request(sb.http_url + path, method=method, data=body,
                                 headers={"X-API-Key": sb.api_key,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read()


def api(sb, path):
    return json.loads(api_raw(sb, path)[1])


def sidecar(sb, path):
    digest, rows = ftp_get(sb, path + ".sha256").decode().split()
    return digest, int(rows)


def kr_lines(data):
    return data.decode("cp949").splitlines()


# ---------------------------------------------------------------- FTP


def test_ftp_drop_connection_aborts_transfer_once(sandbox):
    fault = sandbox.faults.add(kind="drop_connection", match="kr/prices/*", times=1)
    full = (sandbox.root / KR_FILE).read_bytes()
    with ftplib.FTP() as ftp:
        ftp.connect(sandbox.ftp_host, sandbox.ftp_port, timeout=10)
        ftp.login(sandbox.ftp_user, sandbox.ftp_password)
        got = io.BytesIO()
        with pytest.raises(ftplib.error_temp, match="426"):
            ftp.retrbinary(f"RETR {KR_FILE}", got.write)
        assert 0 < len(got.getvalue()) < len(full)
    assert fault.fired == 1
    assert ftp_get(sandbox, KR_FILE) == full        # times=1: the retry succeeds


def test_ftp_5xx_and_429_are_transient_replies(sandbox):
    sandbox.faults.add(kind="http_5xx", match=KR_FILE, times=1)
    with pytest.raises(ftplib.error_temp, match="451"):
        ftp_get(sandbox, KR_FILE)
    sandbox.faults.add(kind="http_429", match=KR_FILE, times=1)
    with pytest.raises(ftplib.error_temp, match="421"):
        ftp_get(sandbox, KR_FILE)
    assert ftp_get(sandbox, KR_FILE) == (sandbox.root / KR_FILE).read_bytes()


def test_ftp_truncate_keeps_sidecar(sandbox):
    sandbox.faults.add(kind="truncate", match="/kr/prices/*.csv", times=None)
    data = ftp_get(sandbox, KR_FILE)
    digest, rows = sidecar(sandbox, KR_FILE)   # sidecars are never damaged
    full = (sandbox.root / KR_FILE).read_bytes()
    assert len(data) == len(full) // 2 and full.startswith(data)
    assert hashlib.sha256(data).hexdigest() != digest
    assert hashlib.sha256(full).hexdigest() == digest and rows == full.count(b"\n") - 1


def test_ftp_duplicate_rows(sandbox):
    sandbox.faults.add(kind="duplicate_rows", match=KR_FILE)
    lines = kr_lines(ftp_get(sandbox, KR_FILE))
    _, rows = sidecar(sandbox, KR_FILE)
    assert len(lines) - 1 == rows + 3
    assert lines[-3:] == lines[1:4]


def test_ftp_rename_and_missing_column(sandbox):
    sandbox.faults.add(kind="rename_column", match=KR_FILE)
    header = kr_lines(ftp_get(sandbox, KR_FILE))[0].split(",")
    assert "종가_v2" in header and "종가" not in header
    sandbox.faults.add(kind="missing_column", match=EU_FILE, column="Volume")
    lines = ftp_get(sandbox, EU_FILE).decode().splitlines()
    assert lines[0] == "ISIN;Ticker;Date;Open;High;Low;Close"
    assert all(len(line.split(";")) == 7 for line in lines)


def test_ftp_garbage_values(sandbox):
    sandbox.faults.add(kind="garbage_values", match=EU_FILE)
    lines = ftp_get(sandbox, EU_FILE).decode().splitlines()
    closes = [line.split(";")[6] for line in lines[1:5]]
    assert closes == ["-1", "n/a", "-1", "n/a"]
    assert all("," in line.split(";")[6] for line in lines[5:])


def test_fault_glob_does_not_hit_other_files(sandbox):
    fault = sandbox.faults.add(kind="http_5xx", match="eu/*", times=None)
    assert ftp_get(sandbox, "kr/master.csv") == (sandbox.root / "kr/master.csv").read_bytes()
    assert api(sandbox, "/v1/securities?market=US")["total_rows"] == len(
        sandbox.universe.market_assets("US")) == 28
    assert fault.fired == 0


# ---------------------------------------------------------------- HTTP


def test_http_5xx_then_recovers(sandbox):
    sandbox.faults.add(kind="http_5xx", match="/v1/prices", times=2)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as info:
            api(sandbox, "/v1/prices?market=US&page_size=10")
        assert info.value.code == 503
    assert len(api(sandbox, "/v1/prices?market=US&page_size=10")["data"]) == 10


def test_http_429_fault_has_retry_after(sandbox):
    sandbox.faults.add(kind="http_429", match="/v1/*")
    with pytest.raises(urllib.error.HTTPError) as info:
        api(sandbox, "/v1/fx")
    assert info.value.code == 429 and info.value.headers["Retry-After"] == "1"


def test_http_drop_connection_cuts_body(sandbox):
    sandbox.faults.add(kind="drop_connection", match="/v1/prices")
    host, port = sandbox.http_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/v1/prices?market=US&page_size=100",
                 headers={"X-API-Key": sandbox.api_key})
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()


def test_http_truncate_keeps_total_rows(sandbox):
    sandbox.faults.add(kind="truncate", match="/v1/prices")
    body = api(sandbox, "/v1/prices?market=KR&page_size=100")
    assert len(body["data"]) == 50 and body["next_page"] == 2
    assert body["total_rows"] == api(sandbox, "/v1/prices?market=KR&page_size=100")["total_rows"]


def test_http_duplicate_rename_missing_garbage(sandbox):
    path = "/v1/prices?market=EU&page_size=20"
    clean = api(sandbox, path)["data"]
    sandbox.faults.add(kind="duplicate_rows", match="/v1/prices")
    dup = api(sandbox, path)["data"]
    assert len(dup) == 23 and dup[20:] == clean[:3]
    sandbox.faults.add(kind="rename_column", match="/v1/prices")
    assert all("c_v2" in r and "c" not in r for r in api(sandbox, path)["data"])
    sandbox.faults.add(kind="missing_column", match="/v1/prices", column="v")
    assert all("v" not in r and "c" in r for r in api(sandbox, path)["data"])
    sandbox.faults.add(kind="garbage_values", match="/v1/prices")
    bad = api(sandbox, path)["data"]
    assert [r["c"] for r in bad[:4]] == [-1.0, "n/a", -1.0, "n/a"]
    assert bad[4:] == clean[4:]


def test_faults_over_http_control_endpoint(sandbox):
    spec = json.dumps({"kind": "http_5xx", "match": "/v1/fx", "times": 1}).encode()
    status, body = api_raw(sandbox, "/_sandbox/faults", "POST", spec)
    assert status == 201 and json.loads(body)["kind"] == "http_5xx"
    listed = api(sandbox, "/_sandbox/faults")["faults"]
    assert [f["match"] for f in listed] == ["/v1/fx"]
    with pytest.raises(urllib.error.HTTPError) as info:
        api(sandbox, "/v1/fx")
    assert info.value.code == 503
    # the same registry arms the FTP server
    spec = json.dumps({"kind": "http_5xx", "match": KR_FILE, "protocol": "ftp"}).encode()
    api_raw(sandbox, "/_sandbox/faults", "POST", spec)
    with pytest.raises(ftplib.error_temp, match="451"):
        ftp_get(sandbox, KR_FILE)
    status, body = api_raw(sandbox, "/_sandbox/faults", "DELETE")
    assert json.loads(body) == {"cleared": 2}
    bad = json.dumps({"kind": "meteor_strike"}).encode()
    with pytest.raises(urllib.error.HTTPError) as info:
        api_raw(sandbox, "/_sandbox/faults", "POST", bad)
    assert info.value.code == 400 and "meteor_strike" in json.load(info.value)["error"]


def test_protocol_filter(sandbox):
    sandbox.faults.add(kind="http_5xx", match="*", times=None, protocol="http")
    assert ftp_get(sandbox, KR_FILE) == (sandbox.root / KR_FILE).read_bytes()


# ---------------------------------------------------------------- registry


def test_registry_rejects_unknown_kinds_with_the_list():
    reg = FaultRegistry()
    with pytest.raises(ConfigError, match="fault kind must be one of drop_connection, "
                                          "http_5xx.*found 'boom'"):
        reg.add(kind="boom")
    with pytest.raises(ConfigError, match="times must be a positive integer"):
        reg.add(kind="truncate", times=0)
    assert len(FAULT_KINDS) == 8


def test_parse_fault_spec():
    assert parse_fault_spec("drop_connection:*.csv:inf") == {
        "kind": "drop_connection", "match": "*.csv", "times": None}
    with pytest.raises(ConfigError, match="KIND\\[:GLOB\\[:TIMES\\]\\]"):
        parse_fault_spec("a:b:c:d")
