"""The API reader's typed decode (prices, fundamentals) gives the batch the general
``json.loads`` path gives, and hands every page it does not accept to that path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from quantlib.errors import StandardizeError
from quantlib.raw import RawZone
from quantlib.standardize import api, standardize

DAY = 1740960000000     # 2025-03-03 00:00 UTC


@pytest.fixture
def raw(tmp_path):
    return RawZone(str(tmp_path))


def _prices(n: int, seed: int, start: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = round(float(rng.uniform(1, 500)), 2)
        rec = {"isin": f"US{start + i:010d}", "ticker": f"T{i}", "t": DAY + 86_400_000 * (i % 5),
               "o": c, "h": round(c * 1.01, 4), "l": round(c * 0.99, 6),
               "c": c if i % 3 else int(c),             # JSON integers in a float field
               "v": int(rng.integers(0, 10**9)), "updated_ms": DAY + i}
        out.append(rec)
    return out


def _statements(n: int) -> list[dict]:
    return [{"isin": f"US{i:010d}", "field": "revenue" if i % 2 else "net_income",
             "period_end_ms": 1735603200000, "value": 1.5e9 / (i + 1) if i % 2 else -i,
             "currency": "USD", "published_ms": 1741000000000 + i} for i in range(n)]


def _deliver(raw, pages, endpoint="prices"):
    return [raw.put(json.dumps({"data": p, "page": k + 1}).encode(), source="api-us",
                    market="US", file=f"api/v1/{endpoint}?market=US&page={k + 1}",
                    fetch_id="t", fmt="api-json") for k, p in enumerate(pages)]


def _both(raw, ds, monkeypatch):
    typed = standardize(ds, raw)
    with monkeypatch.context() as m:
        m.setattr(api, "_TYPED", {})
        general = standardize(ds, raw)
    return typed, general


def _assert_same(a, b):
    for name, frame in a.frames().items():
        pd.testing.assert_frame_equal(frame, getattr(b, name), check_exact=True)
    pd.testing.assert_frame_equal(a.unparsed, b.unparsed, check_exact=True)


def test_typed_pages_equal_the_general_path(raw, monkeypatch):
    ds = _deliver(raw, [_prices(300, 1), [], _prices(200, 2, start=300)]) + \
        _deliver(raw, [_statements(50), _statements(7)], "fundamentals")
    assert api._typed_frame([(raw.get(d.sha256), d) for d in ds[:3]], "prices") is not None
    typed, general = _both(raw, ds, monkeypatch)
    assert len(typed.prices) == 500 and len(typed.statements) == 57
    assert typed.prices["file"].iloc[-1] == "api/v1/prices?market=US&page=3"
    assert typed.prices["row"].iloc[-1] == 199
    _assert_same(typed, general)


@pytest.mark.parametrize("fault", ["null", "text", "missing", "bool"])
def test_pages_the_typed_decoder_refuses_take_the_general_path(raw, monkeypatch, fault):
    bad = _prices(20, 3)
    if fault == "null":
        bad[4]["c"] = None
    elif fault == "text":
        bad[4]["c"] = "n/a"
    elif fault == "missing":
        del bad[4]["ticker"]
    else:
        bad[4]["t"] = True
    ds = _deliver(raw, [_prices(30, 4, start=100), bad])
    assert api._typed_frame([(raw.get(d.sha256), d) for d in ds], "prices") is None
    typed, general = _both(raw, ds, monkeypatch)
    _assert_same(typed, general)
    if fault == "text":   # the vendor's text is kept for the quarantine
        assert typed.unparsed[["row", "field", "text"]].values.tolist() == [[4, "close", "n/a"]]


def test_a_key_missing_everywhere_still_names_the_file(raw):
    pages = [[{k: v for k, v in r.items() if k != "c"} for r in _prices(5, 5)]]
    with pytest.raises(StandardizeError, match="page=1"):
        standardize(_deliver(raw, pages), raw)
