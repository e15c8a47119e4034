"""The tear-sheet plot cache: built once per (result, code version), reused, rebuilt when stale."""

from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pytest
from bokeh.models import ColumnDataSource, Plot

from dashboards.figures import plot_count, sections_json, tear_sheet_layout
from dashboards.plot_cache import CODE_VERSION, PlotCache, plot_cache
from quantlib.backtest.metrics import equity_curve
from quantlib.results.view import ResultsView
from quantlib.testing.demo import populate_demo_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResultsView, list[str]]:
    url = str(tmp_path_factory.mktemp("results"))
    return ResultsView(url), populate_demo_store(url, n_published=2, years=3,
                                                 unpublished_author=None)


class CountingBuild:
    """A layout builder that counts its calls (optionally slow, to overlap threads)."""

    def __init__(self, view: ResultsView, rid: str, delay: float = 0.0) -> None:
        self.view, self.rid, self.delay, self.calls = view, rid, delay, 0

    def __call__(self):
        self.calls += 1
        time.sleep(self.delay)
        return tear_sheet_layout(self.view, self.rid)


def test_built_once_then_reused_from_memory_and_disk(tmp_path, demo):
    view, ids = demo
    cache = PlotCache(tmp_path)
    build = CountingBuild(view, ids[0])
    first = cache.get_or_build(ids[0], build)
    assert cache.get_or_build(ids[0], build) == first and build.calls == 1
    assert cache.path(ids[0]) == tmp_path / f"{ids[0]}-{CODE_VERSION}.json"
    assert cache.path(ids[0]).read_text() == first
    again = PlotCache(tmp_path)  # a restarted server reads the file, builds nothing
    assert again.get_or_build(ids[0], CountingBuild(view, ids[0])) == first
    assert again.builds == 0


def test_each_result_id_gets_its_own_entry(tmp_path, demo):
    view, ids = demo
    cache = PlotCache(tmp_path)
    texts = [cache.get_or_build(rid, CountingBuild(view, rid)) for rid in ids]
    assert cache.builds == 2 and texts[0] != texts[1]
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(
        f"{rid}-{CODE_VERSION}.json" for rid in ids)


def test_stale_code_version_is_rebuilt_and_removed(tmp_path, demo):
    view, ids = demo
    PlotCache(tmp_path, version="oldcode").get_or_build(ids[0], CountingBuild(view, ids[0]))
    assert (tmp_path / f"{ids[0]}-oldcode.json").exists()
    cache = PlotCache(tmp_path, version="newcode")
    assert cache.get(ids[0]) is None
    build = CountingBuild(view, ids[0])
    cache.get_or_build(ids[0], build)
    assert build.calls == 1
    assert [p.name for p in tmp_path.glob(f"{ids[0]}-*.json")] == [f"{ids[0]}-newcode.json"]


def test_concurrent_first_views_build_once(tmp_path, demo):
    view, ids = demo
    cache = PlotCache(tmp_path)
    build = CountingBuild(view, ids[1], delay=0.3)
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(cache.get_or_build(ids[1], build)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.calls == 1 and len(out) == 6 and len(set(out)) == 1


def test_memory_keeps_the_most_recent_items(tmp_path, demo):
    view, ids = demo
    cache = PlotCache(tmp_path, memory_items=1)
    for rid in ids:
        cache.get_or_build(rid, CountingBuild(view, rid))
    assert list(cache._memory) == [ids[1]]
    assert cache.get(ids[0]) == cache.path(ids[0]).read_text()  # back from disk


def test_process_wide_cache_per_folder(tmp_path):
    assert plot_cache(tmp_path / "a") is plot_cache(tmp_path / "a")
    assert plot_cache(tmp_path / "a") is not plot_cache(tmp_path / "b")


def test_layout_holds_every_section_with_the_stored_numbers(demo):
    view, ids = demo
    layout = tear_sheet_layout(view, ids[0])
    plots = {p.title.text: p for p in layout.select({"type": Plot})}
    assert set(plots) == {
        "Equity vs benchmark", "Equity vs benchmark (log scale)", "Underwater (drawdown)",
        "Yearly returns", "Monthly returns", "Rolling Sharpe (6 months)",
        "Distribution of daily returns", "Rolling beta to the benchmark (6 months)",
        "Rolling volatility (6 months, annualized)", "Exposure", "Turnover (21-day average)",
        "Top 10 holdings (month end)",
        "Costs (cumulative, fraction of capital)"}
    assert plot_count(layout) == 12  # the log figure starts hidden
    lin, log = plots["Equity vs benchmark"], plots["Equity vs benchmark (log scale)"]
    assert lin.renderers[0].data_source is log.renderers[0].data_source
    assert lin.x_range is log.x_range and log.y_scale.__class__.__name__ == "LogScale"
    returns, meta = view.returns(ids[0]), view.meta(ids[0])
    source = lin.renderers[0].data_source
    assert np.allclose(source.data["strategy"], equity_curve(returns["net"]).to_numpy())
    under = plots["Underwater (drawdown)"].renderers[0].data_source
    assert isinstance(under, ColumnDataSource)
    assert min(under.data["y"]) == pytest.approx(meta["metrics"]["max_drawdown"], abs=1e-12)
    years = plots["Yearly returns"].x_range.factors
    assert years == [str(y) for y in sorted(set(returns.index.year))]


def test_cached_json_is_a_bokeh_json_item(tmp_path, demo):
    view, ids = demo
    item = json.loads(PlotCache(tmp_path).get_or_build(ids[0],
                                                      lambda: tear_sheet_layout(view, ids[0])))
    import bokeh

    assert {"doc", "root_id", "target_id"} <= set(item)
    assert item["version"] == bokeh.__version__  # BokehJS refuses a mismatched version
    assert [r["id"] for r in item["doc"]["roots"]] == [item["root_id"]]  # one root


def test_sections_are_documents_of_their_own_with_reserved_heights(demo):
    view, ids = demo
    layout = tear_sheet_layout(view, ids[0])
    sections = json.loads(sections_json(layout))
    assert [s["plots"] for s in sections] == [1, 1, 2, 1, 3, 2, 2]  # 12 at first paint
    assert [s["height"] for s in sections][:3] == [280, 280, 280]  # the log figure is hidden
    for s in sections:
        assert [r["id"] for r in s["item"]["doc"]["roots"]] == [s["item"]["root_id"]]
    first = json.dumps(sections[0]["item"])  # the log figure draws the linear one's source
    assert '"equity"' in first and '"equity_log"' in first
    ids_per_section = [set(re.findall(r'"id":"(p\d+)"', json.dumps(s["item"],
                                                                    separators=(",", ":"))))
                       for s in sections]
    assert all(len(ids) > 20 for ids in ids_per_section)
    for i, a in enumerate(ids_per_section):  # no model sent in two documents
        for b in ids_per_section[i + 1:]:
            assert not a & b
