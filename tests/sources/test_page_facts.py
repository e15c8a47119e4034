"""API page facts: the typed decode gives what ``json.loads`` gives, on every page the
vendor sandbox serves and on malformed pages (which fall back to ``json.loads``)."""

from __future__ import annotations

import pytest
import requests

from quantlib.sources import SOURCES
from quantlib.sources.http import HttpApiSource, _page_facts_slow, api_file, page_facts


def _served_pages(sandbox) -> list[tuple[str, bytes]]:
    pages = []
    with requests.Session() as s:
        s.headers["X-API-Key"] = sandbox.api_key
        for src in SOURCES.values():
            if not isinstance(src, HttpApiSource):
                continue
            for endpoint in src.endpoints:
                params = {"market": src.market} if src.market != "FX" else {}
                query = {**params, "page": "1", "page_size": "50"}
                resp = s.get(f"{sandbox.http_url.rstrip('/')}/v1/{endpoint}", params=query,
                             timeout=60)
                resp.raise_for_status()
                pages.append((api_file(endpoint, {**params, "page": "1"}), resp.content))
    return pages


def test_typed_decode_equals_json_loads_on_served_pages(sandbox):
    pages = _served_pages(sandbox)
    assert len(pages) >= 8
    with_time = 0
    for file, data in pages:
        fast, slow = page_facts(data, file), _page_facts_slow(data, file)
        assert fast == slow, file
        assert fast.rows > 0, file
        with_time += fast.known_at is not None
    assert with_time >= 3   # prices, fundamentals, corporate actions carry vendor times


PRICES = "api/v1/prices?market=US&page=1"


@pytest.mark.parametrize("data, rows, total, nxt, known_ms", [
    (b'{"data": [{"updated_ms": 5}, {"updated_ms": 7}], "total_rows": 9, "next_page": 2}',
     2, 9, 2, 7),
    (b'{"data": [{"updated_ms": 5}, [1, 2], "x"]}', 3, None, None, 5),
    (b'{"data": [{"updated_ms": true}, {"updated_ms": 3.5}, {"updated_ms": 4}]}', 3, None,
     None, 4),
    (b'{"data": [{"updated_ms": "2024"}], "total_rows": "1", "next_page": "2"}', 1, "1", "2",
     None),
    (b'{"data": [{"updated_ms": NaN}, {"updated_ms": 2}], "total_rows": true}', 2, True, None,
     2),
    (b'{"data": [], "extra": {"updated_ms": 9}}', 0, None, None, None),
])
def test_malformed_pages_read_as_json_loads_reads_them(data, rows, total, nxt, known_ms):
    fast = page_facts(data, PRICES)
    assert fast == _page_facts_slow(data, PRICES)
    assert (fast.rows, fast.total_rows, fast.next_page) == (rows, total, nxt)
    assert (None if fast.known_at is None else fast.known_at.value // 10**6) == known_ms


@pytest.mark.parametrize("data", [b'{"data": [{"updated_ms": 5}', b'{"data": 3}', b"[]",
                                  b'{"data": []} {"data": []}', b""])
def test_pages_without_a_complete_data_list_are_rejected(data):
    with pytest.raises(ValueError):
        page_facts(data, PRICES)
