"""Shared builders of the catalog tests: a real Icechunk store with two tagged versions."""

from __future__ import annotations

from typing import Any

import pytest

from quantlib.store import CuratedStore

FRAMES = ("assets", "symbols", "prices", "corporate_actions", "fx", "statements")


def _two_version_store(truth: Any, url: str, factor: float) -> str:
    """Commit ``truth`` as tag ``v1``, then its closes times ``factor`` as tag ``v2``."""
    st = CuratedStore(url)
    st.commit({k: getattr(truth, k) for k in FRAMES}, message="sandbox truth", tag="v1")
    changed = truth.prices.copy()
    changed["close"] = changed["close"] * factor
    st.commit({"prices": changed}, message=f"closes times {factor:g}", tag="v2")
    return url


@pytest.fixture(scope="session")
def two_version_store():
    """The builder above: ``two_version_store(truth, url, factor) -> url``."""
    return _two_version_store


@pytest.fixture(scope="session")
def frames():
    """The sandbox frames a store commit takes."""
    return FRAMES
