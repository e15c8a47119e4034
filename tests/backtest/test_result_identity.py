"""A result's content address covers the data the backtest actually read (issue #9).

Before: the id used only the dataset's ``snapshot`` attribute, so a subset or a panel
edited in memory got the full run's id, ``cache=`` served the wrong result, and
``publish`` of the subset replaced the published full result.
"""

from __future__ import annotations

import numpy as np
import pytest

import quantlib
from quantlib.backtest import run
from quantlib.backtest.engine import data_address, data_fingerprint
from quantlib.errors import StoreError
from quantlib.results import ResultStore, list_results, load_meta, publish


def test_subset_and_edited_panels_get_their_own_ids(panel):
    full = run("xs_momentum", panel, window=60, skip=5, costs=None)
    again = run("xs_momentum", panel.copy(deep=True), window=60, skip=5, costs=None)
    subset = run("xs_momentum", panel.isel(asset=slice(0, 20)), window=60, skip=5, costs=None)
    edited = panel.copy(deep=True)
    edited["returns"].values[300:, 3] *= 1.5  # changed in memory, attrs untouched
    changed = run("xs_momentum", edited, window=60, skip=5, costs=None)
    later = run("xs_momentum", panel.isel(date=slice(100, None)), window=60, skip=5, costs=None)
    assert again.result_id == full.result_id
    ids = {full.result_id, subset.result_id, changed.result_id, later.result_id}
    assert len(ids) == 4
    assert edited.attrs["snapshot"] == panel.attrs["snapshot"]  # the old address collided
    assert subset.provenance["data_fingerprint"] != full.provenance["data_fingerprint"]
    assert subset.weights.shape[1] == 20


def test_cache_serves_the_result_of_the_data_passed(panel, tmp_path):
    url = str(tmp_path / "results")
    kw = {"window": 60, "skip": 5, "costs": None, "cache": ResultStore(url)}
    full = run("xs_momentum", panel, **kw)
    sub = run("xs_momentum", panel.isel(asset=slice(0, 20)), **kw)
    assert sub.weights.shape[1] == 20 and sub.result_id != full.result_id
    assert not np.allclose(sub.returns["net"], full.returns["net"])
    served = run("xs_momentum", panel, **kw)
    assert served.returns.equals(full.returns) and served.weights.shape[1] == 40
    edited = panel.copy(deep=True)
    edited["returns"].values[:, :] *= 0.5
    halved = run("xs_momentum", edited, **kw)
    assert halved.result_id not in (full.result_id, sub.result_id)
    assert not np.allclose(halved.returns["net"], full.returns["net"])


def test_catalog_read_is_addressed_by_snapshot_and_selection(catalog_store):
    data = quantlib.load_dataset(catalog_store, compute=True, markets=["US"])
    addr = data_address(data)
    assert addr["data"]["markets"] == ["US"] and addr["data_fingerprint"] is None
    again = quantlib.load_dataset(catalog_store, compute=True, markets=["US"])
    assert data_address(again) == addr  # an untouched re-read: same address
    sub = data.isel(asset=slice(0, 4))
    assert data_address(sub)["data"] is None  # no longer the read: content-addressed
    assert data_address(sub)["data_fingerprint"] == data_fingerprint(sub)
    edited = data.copy(deep=True)
    edited["close"].values[-1, 0] += 1.0
    assert data_address(edited)["data"] is None
    r_full = run("ma_crossover", data, fast=5, slow=20, costs=None)
    r_sub = run("ma_crossover", sub, fast=5, slow=20, costs=None)
    assert r_full.result_id != r_sub.result_id
    assert r_full.provenance["snapshot"] == r_sub.provenance["snapshot"]


def test_publish_of_a_subset_does_not_replace_the_full_result(panel, tmp_path):
    url = str(tmp_path)
    full = run("xs_momentum", panel, window=60, skip=5, costs=None)
    sub = run("xs_momentum", panel.isel(asset=slice(0, 20)), window=60, skip=5, costs=None)
    rid = publish(full, "Momentum", author="ann", url=url, allow_synthetic=True)
    with pytest.raises(StoreError, match=r"must not replace a different result silently.*"
                                         r"same title.*replace=True"):
        publish(sub, "Momentum", author="ann", url=url, allow_synthetic=True)
    assert [m["result_id"] for m in list_results(url=url)] == [rid]
    assert load_meta(rid, url)["n_assets"] == 40
    new = publish(sub, "Momentum", author="ann", url=url, allow_synthetic=True, replace=True)
    [meta] = list_results(url=url)
    assert meta["result_id"] == new and meta["n_assets"] == 20
    assert [r["result_id"] for r in meta["replaces"]] == [rid]
    assert meta["replaces"][0]["why"] == "same title"
    assert load_meta(rid, url)["n_assets"] == 40  # the replaced object is kept
