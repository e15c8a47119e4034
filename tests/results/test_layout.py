"""The results layout: older stored layouts read through the one upgrade path; layering.

``fixtures/schema1`` is a results store as quantlib wrote it before schema 2 (commit
d59c159: no ``schema_version``, no data address fields), with its published index.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from quantlib.errors import StoreError
from quantlib.results import ResultStore, list_results, load_meta, load_result, publish, read_index
from quantlib.results.layout import SCHEMA_VERSION, parse_meta, result_files, result_from_files
from quantlib.results.view import ResultsView, Viewer

FIXTURE = Path(__file__).parent / "fixtures" / "schema1"
OLD_ID = "e922d3806be2eb63"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def old_store(tmp_path) -> str:
    shutil.copytree(FIXTURE, tmp_path / "results")
    return str(tmp_path / "results")


def test_schema1_result_loads_with_its_id_and_upgraded_meta(old_store):
    res = load_result(OLD_ID, old_store)
    assert res.result_id == OLD_ID  # the content address did not change with the schema
    assert res.provenance == {"strategy": "ma_crossover", "source_hash": "abcd1234",
                              "snapshot": "SNAP1", "quantlib_version": "0.1.0",
                              "created_at": "2026-11-26T10:00:00+00:00"}
    assert res.params == {"fast": 5, "slow": 20}
    assert res.metrics["sharpe"] == 1.25 and pd.isna(res.metrics["vol"])
    assert res.info["title"] == "Old crossover" and res.info["author"] == "ann"
    assert len(res.returns) == 30 and list(res.weights.columns) == ["US0001", "US0002"]
    meta = load_meta(OLD_ID, old_store)
    assert meta["schema_version"] == SCHEMA_VERSION == 2
    assert meta["synthetic"] is False and meta["data"] is None and meta["replaces"] is None
    on_disk = json.loads((Path(old_store) / "objects" / OLD_ID / "meta.json").read_text())
    assert "schema_version" not in on_disk  # reading never rewrites a stored result


def test_schema1_index_and_view_read_the_same_upgraded_meta(old_store):
    [entry] = read_index(old_store)
    assert entry["result_id"] == OLD_ID and entry["schema_version"] == 2
    assert entry["title"] == "Old crossover"
    view = ResultsView(old_store)
    [seen] = view.list(Viewer("mo", ("managers",)))
    assert seen == entry
    assert view.meta(OLD_ID)["start"] == "2024-01-02T00:00:00"
    assert float(view.returns(OLD_ID)["net"].sum()) == pytest.approx(
        float(load_result(OLD_ID, old_store).returns["net"].sum()))
    assert [m["result_id"] for m in list_results(published_only=False, url=old_store)] == [OLD_ID]


def test_publishing_beside_a_schema1_index_keeps_the_old_entry(old_store):
    res = load_result(OLD_ID, old_store)
    res.params["fast"] = 6  # another request: another id
    rid = publish(res, "New crossover", author="ann", url=old_store)
    assert [m["result_id"] for m in read_index(old_store)] == [rid, OLD_ID]
    written = json.loads((Path(old_store) / "index" / "published.json").read_text())
    assert [m["schema_version"] for m in written] == [2, 2]


def test_legacy_demo_index_with_id_key_is_read(tmp_path):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "published.json").write_text(json.dumps({"results": [
        {"id": "demo1", "strategy": "s", "params": {}, "metrics": {"sharpe": 1.0},
         "title": "Demo", "created_at": "2026-01-01"}]}))
    [meta] = ResultsView(str(tmp_path)).list(Viewer("mo", ("managers",)))
    assert meta["result_id"] == "demo1" and meta["published"] is True and "id" not in meta


def test_a_newer_or_broken_meta_is_refused_naming_the_file():
    with pytest.raises(StoreError, match=r"schema 2 or older.*schema_version 3.*x/meta.json"):
        parse_meta(b'{"schema_version": 3}', "x/meta.json")
    with pytest.raises(StoreError, match=r"result meta must match its schema.*params"):
        parse_meta(b'{"result_id": "a", "strategy": "s", "params": [], "metrics": {}}', "y")


def test_files_round_trip_and_injected_cache(old_store):
    res = load_result(OLD_ID, old_store)
    back = result_from_files(result_files(res))
    pd.testing.assert_frame_equal(back.returns, res.returns, check_exact=True)
    assert back.result_id == OLD_ID
    cache = ResultStore(old_store)
    assert cache.get(OLD_ID).result_id == OLD_ID and cache.get("0" * 16) is None


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """``(module, enclosing function or None)`` of every import in ``path``."""
    out: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) \
                else func
            if isinstance(child, ast.Import):
                out.extend((a.name, func) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                out.extend((f"{child.module}.{a.name}", func) for a in child.names)
            visit(child, name)
    visit(ast.parse(path.read_text()), None)
    return out


def test_backtest_never_imports_results():
    """results imports backtest, not the reverse (Result's save/load/meta delegate lazily)."""
    allowed = {("result.py", "save"), ("result.py", "load"), ("result.py", "meta")}
    bad = []
    for path in sorted((ROOT / "quantlib" / "backtest").glob("*.py")):
        for module, func in _imports(path):
            hit = module == "quantlib.results" or module.startswith("quantlib.results.")
            # cli.py is the command line, an application layer above both packages
            if hit and (path.name, func) not in allowed and path.name != "cli.py":
                bad.append(f"{path.name}:{func or '<module>'} imports {module}")
    assert not bad, bad
    engine = _imports(ROOT / "quantlib" / "backtest" / "engine.py")
    assert not [m for m, _ in engine if "results" in m]
    layout = {m for m, _ in _imports(ROOT / "quantlib" / "results" / "layout.py")}
    assert "quantlib.backtest.result.Result" in layout  # the dependency points this way
