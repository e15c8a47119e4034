"""The wheel ships ``dashboards`` as a package beside ``quantlib`` and leaves test support out.

The dashboards server imports its pages by module name (``dashboards/pages.yaml``), so
they must be importable from an installed wheel, not only from a checkout.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import importlib, json, sys
import dashboards
from quantlib.serving.server.pages import REGISTRY_FILE, load, pages
files = {p.name: sys.modules[load(p.target).__module__].__file__ for p in pages()}
try:
    importlib.import_module("quantlib.testing")
    testing = True
except ModuleNotFoundError:
    testing = False
print(json.dumps({"dashboards": dashboards.__file__, "registry": str(REGISTRY_FILE),
                  "pages": files, "testing": testing}))
"""


@pytest.mark.slow
def test_the_wheel_holds_the_dashboards_and_their_registry(tmp_path):
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is missing: the wheel is built with `uv build`")
    subprocess.run([uv, "build", "--wheel", "-o", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("quantlib-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dashboards/pages.yaml" in names and "dashboards/home.py" in names
    assert "quantlib/serving/server/pages.schema.json" in names
    assert not [n for n in names if n.startswith("quantlib/testing/")]
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # the wheel's packages first on the path (dependencies from this environment)
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin",
                              "HOME": str(tmp_path)})
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["dashboards"].startswith(str(site))
    assert found["registry"] == str(site / "dashboards" / "pages.yaml")
    assert len(found["pages"]) >= 6
    assert all(path.startswith(str(site / "dashboards")) for path in found["pages"].values())
    assert found["testing"] is False  # test support is not in the product


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_no_product_module_imports_the_test_support():
    product = [p for folder in ("quantlib", "dashboards") for p in (ROOT / folder).rglob("*.py")
               if "testing" not in p.relative_to(ROOT).parts]
    assert len(product) > 100
    offenders = [str(p.relative_to(ROOT)) for p in product
                 if any(m == "quantlib.testing" or m.startswith("quantlib.testing.")
                        for m in _imports(p))]
    assert offenders == []
