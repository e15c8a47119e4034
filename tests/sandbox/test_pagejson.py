"""API pages encoded from their columns (:mod:`quantlib.sandbox.pagejson`): the same
bytes as ``json.dumps`` of the pages as dicts, on awkward values and on every endpoint."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pyarrow as pa
import pytest

from quantlib.sandbox.api import ApiData, page_json
from quantlib.sandbox.pagejson import encode_page, json_tokens

#: (endpoint, params) over every endpoint: page sizes, last pages, past the end, date
#: ranges, updated_since (date and instant), empty selections
QUERIES = [(ep, {"market": m, **q}) for m in ("KR", "US", "EU")
           for ep in ("securities", "tickers", "prices", "corporate_actions", "fundamentals")
           for q in ({}, {"page_size": "7", "page": "3"}, {"page_size": "50000"},
                     {"page": "999"})] + [
    ("fx", {}), ("fx", {"start": "2024-06-03", "end": "2024-06-30", "page_size": "11"}),
    ("prices", {"market": "US", "start": "2025-03-04", "end": "2025-03-05"}),
    ("prices", {"market": "KR", "updated_since": "2025-06-01", "page": "2",
                "page_size": "100"}),
    ("prices", {"market": "EU", "start": "2025-01-01", "updated_since":
                "2025-05-01T06:30:00Z", "page_size": "333"}),
    ("prices", {"market": "US", "start": "2031-01-01"}),
    ("fundamentals", {"market": "EU", "updated_since": "2024-09-15", "page_size": "50"}),
    ("corporate_actions", {"market": "US", "updated_since": "2024-01-01"}),
]


def dumps(rows: list[dict], **head) -> bytes:
    return json.dumps({"data": rows, **head}, separators=(",", ":"),
                      allow_nan=False).encode()


def test_encode_page_writes_json_dumps_bytes_for_awkward_values():
    rng = np.random.default_rng(3)
    n = 20_000
    x = np.exp(rng.uniform(-40, 80, n)) * rng.choice([-1.0, 1.0], n)
    x[::3] = np.round(x[::3], 2)
    x[::5] = np.round(x[::5])
    x[:12] = [0.0, -0.0, 1e-4, 9.999e-5, 1e16, 9999999999999998.0, 1e15, 5e-324,
              1.7976931348623157e308, 2.5e-07, 84976005285.83603, 100.0]
    ints = rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64)
    text = np.array([f"KR{i:010d}" for i in range(n)], dtype=object)
    text[:6] = ['say "hi"', "back\\slash", "tab\there", "é ü 株", "\x7f", ""]
    with_nulls = [None if i % 4 == 0 else int(v) for i, v in enumerate(ints)]
    codes = rng.integers(-1, 4, n)
    coded = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0),
                                           pa.array(["a", 'q"', None, "z"]))
    cols = {"isin": pa.array(text), "x": pa.array(x), "y": pa.array(-x[::-1]),
            "i": pa.array(ints), "m": pa.array(with_nulls, pa.int64()),
            "f": pa.array([None if i % 3 else v for i, v in enumerate(x.tolist())]),
            "b": pa.array(ints % 2 == 0), "k": pa.chunked_array([coded.slice(0, 5),
                                                                  coded.slice(5)])}
    got = encode_page(cols, page=4, next_page=None, total_rows=123_456)
    rows = [dict(zip(cols, r, strict=True))
            for r in zip(*(c.to_pylist() for c in cols.values()), strict=True)]
    assert got == dumps(rows, page=4, next_page=None, total_rows=123_456)
    assert json.loads(got)["data"][1]["x"] == -0.0 and b'"x":1e+16' in got
    assert encode_page({}, page=1, next_page=None, total_rows=0) == \
        b'{"data":[],"page":1,"next_page":null,"total_rows":0}'


@pytest.mark.parametrize("col", [pa.array([1.5, float("nan")]), pa.array([float("inf")]),
                                 pa.array([1, 2], pa.timestamp("ms")),
                                 pa.array([[1], [2]])])
def test_encode_page_refuses_what_json_dumps_would_write_otherwise(col):
    assert json_tokens(col) is None
    assert encode_page({"v": col}, page=1, next_page=None, total_rows=2) is None


def test_page_body_equals_the_dict_page_on_every_endpoint(small_universe):
    api = ApiData(small_universe)
    sizes = []
    for endpoint, params in QUERIES:
        body = api.page_body(endpoint, params)
        page = api.page(endpoint, params)
        assert body == page_json(page), (endpoint, params)
        sizes.append(len(page["data"]))
    assert max(sizes) > 5000 and sizes.count(0) >= 15 and 7 in sizes


def test_http_serves_the_encoded_page_and_faults_still_corrupt(sandbox, small_universe):
    api = ApiData(small_universe)
    path = "/v1/prices?market=US&start=2025-01-02&page=2&page_size=500"
    req = urllib.request.Request(sandbox.http_url + path,
                                 headers={"X-API-Key": sandbox.api_key})
    with urllib.request.urlopen(req, timeout=10) as resp:
        served = resp.read()
    params = {"market": "US", "start": "2025-01-02", "page": "2", "page_size": "500"}
    assert served == page_json(api.page("prices", params))
    sandbox.faults.add(kind="garbage_values", match="/v1/prices", column="c", times=1)
    with urllib.request.urlopen(req, timeout=10) as resp:
        faulty = json.load(resp)["data"]
    assert [r["c"] for r in faulty[:4]] == [-1.0, "n/a", -1.0, "n/a"]
    assert faulty[4:] == json.loads(served)["data"][4:]
