"""The what-if runner is configuration, not a branch on where a result came from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quantlib.errors import ConfigError, StrategyError
from quantlib.results import load_result
from quantlib.serving.views import whatif
from quantlib.testing.demo import demo_result, populate_demo_store


@pytest.fixture
def published(tmp_path):
    url = str(tmp_path / "results")
    rid = populate_demo_store(url, n_published=1, years=1, unpublished_author=None)[0]
    with open(f"{url}/objects/{rid}/meta.json") as fh:
        return url, json.load(fh)


def test_execute_reruns_with_the_runner_it_is_given(published):
    url, meta = published
    spec = {"meta": meta, "changes": {"lookback": 150}, "user": "mo", "results_url": url,
            "runner": "quantlib.testing.demo:rerun_demo"}
    rid = whatif.execute(spec)
    assert rid == whatif.request_id(meta, {"lookback": 150}) != meta["result_id"]
    rerun = load_result(rid, url)
    assert rerun.params["lookback"] == 150 and rerun.meta()["synthetic"] is True
    assert rerun.info["author"] == "mo" and rerun.info["published"] is False
    p = meta["params"]
    direct = demo_result(seed=p["seed"], years=p["years"], n_assets=p["n_assets"],
                         strategy=meta["strategy"], params={"lookback": 150,
                                                            "top_k": p["top_k"]})
    np.testing.assert_array_equal(rerun.returns["net"].to_numpy(),
                                  direct.returns["net"].to_numpy())


def test_the_default_runner_reruns_only_catalog_results(published, monkeypatch):
    url, meta = published
    monkeypatch.delenv("QUANTLIB_WHATIF_RUNNER", raising=False)
    assert whatif.runner() is whatif.rerun_on_catalog
    spec = {"meta": meta, "changes": {"lookback": 150}, "user": "mo", "results_url": url}
    with pytest.raises(StrategyError, match="catalog selection the result was run on"):
        whatif.execute(spec)
    monkeypatch.setenv("QUANTLIB_WHATIF_RUNNER", "quantlib.testing.demo:rerun_demo")
    assert whatif.runner().__name__ == "rerun_demo"


def test_a_runner_must_be_named_module_function(monkeypatch):
    monkeypatch.setenv("QUANTLIB_WHATIF_RUNNER", "quantlib.testing.demo")
    with pytest.raises(ConfigError, match="'module:function'") as err:
        whatif.runner()
    assert "QUANTLIB_WHATIF_RUNNER" in str(err.value)
