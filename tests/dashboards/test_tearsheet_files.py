"""Tear-sheet downloads (CSV and standalone HTML) and page helpers, without a browser."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dashboards import tearsheet  # noqa: E402
from dashboards.gallery import gallery_frame  # noqa: E402
from quantlib.serving.demo import populate_demo_store  # noqa: E402
from quantlib.serving.session import configure  # noqa: E402
from quantlib.serving.store import Viewer  # noqa: E402


def test_downloads_match_the_store(tmp_path):
    ids = populate_demo_store(str(tmp_path), n_published=1, years=2)
    configure(str(tmp_path), dev_viewer=Viewer("mo", ("managers",))).extra[
        "plot_cache_dir"] = str(tmp_path / "plot-cache")
    csv = pd.read_csv(io.BytesIO(tearsheet._returns_csv(ids[0]).getvalue()))
    truth = pd.read_parquet(tmp_path / "objects" / ids[0] / "returns.parquet")
    assert len(csv) == len(truth)
    assert abs(csv["net"] - truth["net"].to_numpy()).max() < 1e-11
    page = tearsheet.tear_sheet_html(ids[0]).getvalue().decode()
    assert "<title>Demo demo_momentum #0</title>" in page
    assert "cdn.bokeh.org" not in page  # standalone: Bokeh's JS is inlined
    assert "Monthly returns" in page and "Underwater (drawdown)" in page
    assert "Bokeh.embed.embed_item" in page and "data-metric='sharpe'" in page


def test_gallery_rows_carry_stored_metrics(tmp_path):
    ids = populate_demo_store(str(tmp_path), n_published=2, years=1)
    configure(str(tmp_path), dev_viewer=Viewer("mo", ("managers",)))
    from quantlib.serving.session import results_view

    metas = results_view().list(Viewer("mo", ("managers",)))
    frame = gallery_frame(metas)
    assert list(frame.index) == [m["result_id"] for m in metas]
    assert set(frame.index) == set(ids[:2])
    for m in metas:
        assert frame.loc[m["result_id"], "sharpe"] == m["metrics"]["sharpe"]
        assert frame.loc[m["result_id"], "cagr"] == m["metrics"]["cagr"]
