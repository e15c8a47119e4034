"""Every notebook runs end to end with papermill on the embedded default.

The store is a small sandbox refresh (3 markets x 20 assets x 2 years) made once for
the module; each notebook gets it through its ``store`` parameter. Notebooks are kept
in the repository without outputs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from quantlib.pipeline import refresh

    home = tmp_path_factory.mktemp("nb-home")
    old = os.environ.get("QUANTLIB_HOME")
    os.environ["QUANTLIB_HOME"] = str(home)
    try:
        result = refresh(str(home / "store"), sandbox=True, n_assets=20, years=2)
    finally:
        if old is None:
            os.environ.pop("QUANTLIB_HOME")
        else:
            os.environ["QUANTLIB_HOME"] = old
    return home, result


def test_there_are_notebooks_for_every_role():
    names = {p.name for p in NOTEBOOKS}
    assert {"explore_catalog.ipynb", "refresh_data.ipynb", "data_health_report.ipynb",
            "backtest_and_sweep.ipynb", "walk_forward_and_publish.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name
    params = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path.name} needs exactly one 'parameters' cell"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, small_store, tmp_path, monkeypatch):
    home, first = small_store
    monkeypatch.setenv("QUANTLIB_HOME", str(home))
    monkeypatch.setenv("QUANTLIB_RESULTS", str(tmp_path / "results"))
    params = {"store": str(home / "store")}
    if path.stem == "refresh_data":
        params.update(n_assets=20, years=2)
        # the vendor's clock moved on 3 days since the fixture's full build (config
        # sandbox.end 2025-12-31): the refresh has new sessions to commit. Against the
        # very vendor the store was built from, it would (rightly) commit nothing.
        config = tmp_path / "config.yaml"
        config.write_text("sandbox:\n  end: '2026-01-05'\n")
        monkeypatch.setenv("QUANTLIB_CONFIG", str(config))
    out = tmp_path / path.name
    pm.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3",
                        cwd=str(ROOT / "notebooks"), progress_bar=False,
                        request_save_on_cell_execute=False, start_timeout=300)
    book = nbformat.read(out, as_version=4)
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, json.dumps(errors)[:2000]
    if path.stem == "refresh_data":
        from quantlib.store import CuratedStore
        snaps = CuratedStore(str(home / "store")).snapshots()
        assert snaps.iloc[0]["snapshot_id"] != first.snapshot_id  # a new version landed
        assert "incremental" in json.dumps(book.cells)
        # the next scheduled run finds nothing new at the vendor (the same clock: no bar
        # re-fetched in the look-back window makes a version): it succeeds, commits nothing
        again = tmp_path / "again.ipynb"
        pm.execute_notebook(str(path), str(again), parameters=params, kernel_name="python3",
                            cwd=str(ROOT / "notebooks"), progress_bar=False,
                            request_save_on_cell_execute=False, start_timeout=300)
        text = json.dumps(nbformat.read(again, as_version=4).cells)
        assert "nothing new" in text and '"error"' not in text
        assert len(CuratedStore(str(home / "store")).snapshots()) == len(snaps)
    if path.stem == "walk_forward_and_publish":
        from quantlib.results import list_results
        published = list_results(url=str(tmp_path / "results"))
        assert len(published) == 1
        assert published[0]["title"].startswith("Cross-sectional momentum")
    assert sys.executable  # the kernel is this environment's (kernel python3)


def test_every_scheduled_job_names_a_notebook_and_its_parameters():
    import yaml

    jobs = yaml.safe_load((ROOT / "catalogs" / "schedules.yaml").read_text())["jobs"]
    assert jobs, "catalogs/schedules.yaml has no jobs"
    for name, job in jobs.items():
        path = ROOT / job["notebook"]
        assert path.exists(), f"job {name}: {job['notebook']} does not exist"
        book = nbformat.read(path, as_version=4)
        cell = next(c for c in book.cells if "parameters" in c.metadata.get("tags", []))
        declared = {line.split("=")[0].strip() for line in cell.source.splitlines()
                    if "=" in line and not line.lstrip().startswith("#")}
        unknown = set(job.get("parameters", {})) - declared
        assert not unknown, f"job {name}: parameters {unknown} are not in {path.name}"
