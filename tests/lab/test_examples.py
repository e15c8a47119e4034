"""Example notebooks in a researcher's home: copied once, never overwriting their edits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from quantlib.lab.examples import MANIFEST, install_examples

ROOT = Path(__file__).resolve().parents[2]


def shipped(tmp_path: Path, **files: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name, text in files.items():
        (src / f"{name}.ipynb").write_text(text)
    return src


def test_first_start_copies_every_notebook_and_start_here_into_the_home(tmp_path):
    home = tmp_path / "home"
    report = install_examples(home, ROOT / "notebooks", version="1")
    names = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")
                   if p.name != "start_here.ipynb")
    assert sorted(report.copied) == sorted(names + ["start_here.ipynb"])
    assert not (home / "examples" / "start_here.ipynb").exists()
    for name in names:
        assert (home / "examples" / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()
    assert (home / "start_here.ipynb").read_bytes() == (
        ROOT / "notebooks" / "start_here.ipynb").read_bytes()
    manifest = json.loads((home / "examples" / MANIFEST).read_text())
    assert set(manifest) == set(names) | {"../start_here.ipynb"}


def test_edits_are_kept_and_a_new_release_arrives_beside_them(tmp_path):
    home = tmp_path / "home"
    src = shipped(tmp_path, a="v1", b="v1", c="v1")
    install_examples(home, src, version="1")
    ex = home / "examples"
    (ex / "a.ipynb").write_text("my edits")           # edited by the user
    (ex / "c.ipynb").unlink()                         # deleted by the user
    shipped(tmp_path, a="v2", b="v2", c="v2")         # the platform ships new versions
    report = install_examples(home, src, version="2")
    assert (ex / "a.ipynb").read_text() == "my edits"
    assert (ex / "a.v2.ipynb").read_text() == "v2"
    assert (ex / "b.ipynb").read_text() == "v2"       # untouched copy: updated in place
    assert not (ex / "c.ipynb").exists()              # a deleted example stays deleted
    assert report.updated == ["b.ipynb"] and report.versioned == ["a.v2.ipynb"]
    # a third start with nothing new changes nothing
    again = install_examples(home, src, version="2")
    assert again.copied == again.updated == again.versioned == []
    assert (ex / "a.ipynb").read_text() == "my edits"


def test_a_users_own_file_with_an_example_name_is_never_replaced(tmp_path):
    home = tmp_path / "home"
    (home / "examples").mkdir(parents=True)
    (home / "examples" / "a.ipynb").write_text("mine")
    report = install_examples(home, shipped(tmp_path, a="shipped"), version="1")
    assert (home / "examples" / "a.ipynb").read_text() == "mine"
    assert report.kept == ["a.ipynb"] and report.copied == []


def test_copies_belong_to_whoever_installs_them(tmp_path):
    """The server installs as the user: new files get the user's umask, not the source mode."""
    src = shipped(tmp_path, a="x")
    (src / "a.ipynb").chmod(0o444)
    home = tmp_path / "home"
    code = (f"import os; os.umask(0o077); from quantlib.lab.examples import install_examples; "
            f"install_examples({str(home)!r}, {str(src)!r})")
    subprocess.run([sys.executable, "-c", code], check=True)
    mode = (home / "examples" / "a.ipynb").stat().st_mode & 0o777
    assert mode == 0o600  # writable by its owner (the source was read-only)
