"""Tear-sheet downloads (CSV and standalone HTML) and page helpers, without a browser."""

from __future__ import annotations

import io

import pandas as pd

from dashboards import tearsheet
from dashboards.gallery import gallery_frame
from quantlib.results.view import Viewer
from quantlib.serving.server.session import configure
from quantlib.testing.demo import populate_demo_store


def test_downloads_match_the_store(tmp_path):
    ids = populate_demo_store(str(tmp_path), n_published=1, years=2)
    configure(str(tmp_path), dev_viewer=Viewer("mo", ("managers",))).extra[
        "plot_cache_dir"] = str(tmp_path / "plot-cache")
    csv = pd.read_csv(io.BytesIO(tearsheet._returns_csv(ids[0]).getvalue()))
    truth = pd.read_parquet(tmp_path / "objects" / ids[0] / "returns.parquet")
    assert len(csv) == len(truth)
    assert abs(csv["net"] - truth["net"].to_numpy()).max() < 1e-11
    page = tearsheet.tear_sheet_html(ids[0]).getvalue().decode()
    assert "<title>[synthetic] Demo demo_momentum #0</title>" in page
    assert "cdn.bokeh.org" not in page  # standalone: Bokeh's JS is inlined
    assert "Monthly returns" in page and "Underwater (drawdown)" in page
    assert "Bokeh.embed.embed_item" in page and "data-metric='sharpe'" in page


def test_gallery_rows_carry_stored_metrics(tmp_path):
    ids = populate_demo_store(str(tmp_path), n_published=2, years=1)
    configure(str(tmp_path), dev_viewer=Viewer("mo", ("managers",)))
    from quantlib.serving.server.session import results_view

    metas = results_view().list(Viewer("mo", ("managers",)))
    frame = gallery_frame(metas)
    assert list(frame.index) == [m["result_id"] for m in metas]
    assert set(frame.index) == set(ids[:2])
    for m in metas:
        assert frame.loc[m["result_id"], "sharpe"] == m["metrics"]["sharpe"]
        assert frame.loc[m["result_id"], "cagr"] == m["metrics"]["cagr"]


def test_walk_forward_headline_is_out_of_sample_and_labelled(tmp_path):
    """The KPI cards used to show the full-history rerun (in-sample) of a walk-forward."""
    import re

    from quantlib.backtest import run, walk_forward
    from quantlib.backtest.synthetic import make_dataset
    from quantlib.results import publish
    from quantlib.serving.server.session import results_view

    data = make_dataset(20, 600, seed=4, markets=())
    wf = walk_forward("ma_crossover", {"fast": [5, 10], "slow": [40, 80]}, data, train=200,
                      test=100, costs=None, n_boot=100)
    final = run("ma_crossover", data, costs=None, **wf.folds.iloc[-1]["params"])
    rid = publish(wf.oos.attach_in_sample(final), "WF", url=str(tmp_path),
                  allow_synthetic=True)
    configure(str(tmp_path), dev_viewer=Viewer("mo", ("managers",)))
    meta = results_view().meta(rid)
    assert meta["sample"] == "out_of_sample"
    assert meta["metrics"]["sharpe"] == wf.oos.metrics["sharpe"]
    assert meta["in_sample"]["metrics"]["sharpe"] == final.metrics["sharpe"]
    page = tearsheet.page_top(meta, bokeh_js="")
    cards = dict(re.findall(r"data-metric='([\w:]+)' data-value='([^']*)'", page))
    assert float(cards["sharpe"]) == wf.oos.metrics["sharpe"]
    assert float(cards["in_sample:sharpe"]) == final.metrics["sharpe"]
    assert wf.oos.metrics["sharpe"] != final.metrics["sharpe"]
    assert "Out of sample (walk-forward record)" in page and "Out-of-sample Sharpe" in page
    assert "In sample: full-history rerun" in page and "In-sample Sharpe" in page
    # notes: the warm-up rule, the sample, and the synthetic data are stated
    assert "first day with a position" in page and "SYNTHETIC data" in page
    assert "<h2>[synthetic] WF</h2>" in page
    assert gallery_frame([meta]).loc[rid, "title"] == "[synthetic] WF"


def test_durations_show_as_days_in_the_metrics_table(tmp_path):
    import re

    page = tearsheet.page_top({"result_id": "x", "metrics": {
        "max_drawdown_duration": 300, "cagr": 0.1, "turnover_annual": 13.0}}, bokeh_js="")
    assert re.search(r">max_drawdown_duration</td><td>300 days</td>", page)
    assert "30000.00%" not in page and re.search(r">turnover_annual</td><td>13.0x</td>", page)
