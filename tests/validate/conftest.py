"""The sandbox truth as one canonical batch (provenance added), shared by the validate
tests."""

from __future__ import annotations

import pytest

from quantlib.standardize import CanonicalBatch, conform


@pytest.fixture(scope="module")
def truth():
    from quantlib.sandbox import generate

    u = generate(n_assets=10, years=1, seed=5, end="2025-12-31")
    frames = {}
    for name, f in u.frames().items():
        f = f.reset_index(drop=True)
        frames[name] = conform(name, f.assign(source=f"truth-{name}", file=f"{name}.csv",
                                              row=range(1, len(f) + 1)))
    return CanonicalBatch(**frames)
