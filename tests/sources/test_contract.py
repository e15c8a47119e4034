"""One contract test over every registered source (STYLE.md principle 5)."""

from __future__ import annotations

import pytest

from quantlib.raw import RawZone
from quantlib.sources import MARKET_SOURCES, SOURCES, run_sources
from quantlib.standardize import READERS, standardize


def test_every_source_belongs_to_a_market():
    assert sorted(n for names in MARKET_SOURCES.values() for n in names) == sorted(SOURCES)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_source_contract(sandbox, fast_retry, tmp_path, name):
    source = SOURCES[name]
    raw = RawZone(str(tmp_path))
    ds = run_sources([source], raw=raw, connection=sandbox, fetch_id="c", retry=fast_retry,
                     start="2025-11-01", end="2025-11-30")
    assert ds, name
    assert {d.source for d in ds} == {name} and {d.market for d in ds} == {source.market}
    assert {d.fmt for d in ds} <= set(READERS)
    assert all(d.rows is not None and d.rows >= 0 for d in ds)
    batch = standardize(ds, raw)
    assert batch.n_rows() == sum(d.rows for d in ds)        # every vendor row lands once
    assert set(batch.prices["source"]) | set(batch.statements["source"]) | set(
        batch.fx["source"]) | set(batch.assets["source"]) <= {name}
    m = raw.manifest()
    assert sorted(m["file"]) == sorted(d.file for d in ds)
    assert run_sources([source], raw=raw, connection=sandbox, fetch_id="c2", retry=fast_retry,
                       start="2025-11-01", end="2025-11-30", new_only=True) == []
