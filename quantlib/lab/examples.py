"""The example notebooks in each researcher's home: their own copy, never overwritten.

The single-user server (as the user, so whoever owns the home owns the copies) calls
:func:`install_examples` when it starts. The algorithm, per shipped notebook:

1. never installed before (not in the manifest): copy it to ``<home>/examples/<name>``;
2. installed, and the shipped version is unchanged: nothing to do;
3. installed, shipped version changed, the user's copy still as installed: replace it
   (nothing of theirs is lost) and record the new hash;
4. installed, shipped version changed, the user edited their copy: leave their copy and
   write the new version beside it as ``<stem>.v<version>.ipynb`` (once per version);
5. installed, then deleted by the user: not copied again.

The manifest ``<home>/examples/.quantlib-examples.json`` records, per name, the hash of
the shipped file last installed. ``start_here.ipynb`` goes in the home itself (same rules).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["install_examples", "ExamplesReport", "EXAMPLES_DIR", "MANIFEST", "START_HERE"]

EXAMPLES_DIR = "examples"
MANIFEST = ".quantlib-examples.json"
START_HERE = "start_here.ipynb"


@dataclass
class ExamplesReport:
    """What :func:`install_examples` did, by file name."""

    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    versioned: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(src: Path, dst: Path) -> None:
    """Copy as the current user (new files get the user's umask, not the source's mode)."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _install_one(src: Path, dst: Path, installed: str | None, version: str,
                 report: ExamplesReport) -> str | None:
    """Apply steps 1-5 of the module docstring to one notebook; the hash now recorded."""
    shipped = _sha(src)
    if installed is None:
        if not dst.exists():
            _copy(src, dst)
            report.copied.append(dst.name)
            return shipped
        report.kept.append(dst.name)  # a file of the user's own with that name
        return _sha(dst)
    if shipped == installed or not dst.exists():
        return installed  # unchanged, or deleted by the user
    if _sha(dst) == installed:
        _copy(src, dst)
        report.updated.append(dst.name)
        return shipped
    beside = dst.with_name(f"{dst.stem}.v{version}{dst.suffix}")
    if not beside.exists():
        _copy(src, beside)
        report.versioned.append(beside.name)
    report.kept.append(dst.name)
    return installed


def install_examples(home: str | Path, source: str | Path, *,
                     version: str = "0") -> ExamplesReport:
    """Copy the shipped notebooks in ``source`` into ``<home>/examples`` (see module doc).

    Parameters
    ----------
    home : path
        The researcher's home (their server's root folder).
    source : path
        Folder of shipped notebooks (``notebooks/`` of the repository).
    version : str
        Names the side-by-side copy of an updated notebook the user had edited.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> src, home = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    >>> _ = (src / "a.ipynb").write_text("{}")
    >>> install_examples(home, src).copied
    ['a.ipynb']
    >>> _ = (home / "examples" / "a.ipynb").write_text('{"mine": 1}')  # the user edits
    >>> _ = (src / "a.ipynb").write_text('{"v": 2}')                    # a new release
    >>> install_examples(home, src, version="2").versioned
    ['a.v2.ipynb']
    >>> (home / "examples" / "a.ipynb").read_text()
    '{"mine": 1}'
    """
    home, source = Path(home), Path(source)
    target = home / EXAMPLES_DIR
    target.mkdir(parents=True, exist_ok=True)
    manifest_path = target / MANIFEST
    manifest: dict[str, str] = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    report = ExamplesReport()
    for src in sorted(p for p in source.glob("*.ipynb") if p.name != START_HERE):
        recorded = _install_one(src, target / src.name, manifest.get(src.name), version, report)
        if recorded is not None:
            manifest[src.name] = recorded
    start = source / START_HERE
    key = f"../{START_HERE}"
    if start.exists():
        recorded = _install_one(start, home / START_HERE, manifest.get(key), version, report)
        if recorded is not None:
            manifest[key] = recorded
    tmp = manifest_path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, manifest_path)
    return report
