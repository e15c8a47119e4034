"""Tiny notebooks and jobs files for the scheduler tests (nbformat, real papermill)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml


def write_notebook(path: Path, body: str, parameters: str = "x = 1\nout = ''") -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


OK_BODY = ("result = x * 2\nprint('result', result)\n"
           "if out:\n    open(out, 'a').write(f'{result}\\n')")
FAIL_BODY = "raise ValueError(f'boom {x}')"
SLOW_BODY = "import time\ntime.sleep(x)\nif out:\n    open(out, 'a').write('slept\\n')"
# fails until the counter file holds `x` lines, then succeeds
FLAKY_BODY = ("import pathlib\np = pathlib.Path(out)\nn = len(p.read_text().splitlines()) "
              "if p.exists() else 0\np.write_text('try\\n' * (n + 1))\n"
              "if n + 1 < x:\n    raise RuntimeError(f'flaky attempt {n + 1}')")


def write_schedules(path: Path, jobs: dict[str, dict[str, Any]]) -> Path:
    full = {}
    for name, spec in jobs.items():
        full[name] = {"owner": "data-team", "retry_delay_s": 0, "timeout_s": 120, **spec}
    path.write_text(yaml.safe_dump({"notebook_root": ".", "jobs": full}, sort_keys=False))
    return path


@pytest.fixture
def nb():
    """This module: notebook bodies and writers for the tests."""
    return sys.modules[__name__]
