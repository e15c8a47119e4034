"""File drops: files someone places in a folder (a local path, ``s3://`` or ``memory://``).

A file with a ``<file>.sha256`` sidecar beside it is checked against it like an FTP file;
other files are taken as they are. Rows are counted from the (decompressed) CSV lines.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import ClassVar

from fsspec import AbstractFileSystem

from quantlib.errors import PermanentSourceError, TransientSourceError
from quantlib.raw import sha256_hex
from quantlib.sources.base import FetchContext
from quantlib.sources.ftp import count_rows
from quantlib.storage import resolve_location

__all__ = ["FileDropSource", "KNOWN_FORMATS"]

KNOWN_FORMATS = ("kr-ftp-csv", "eu-ftp-csv", "api-json", "yahoo-csv")


def _rows(data: bytes, fmt: str) -> int | None:
    if fmt == "api-json":
        return None
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return count_rows(data)


@dataclass(frozen=True)
class FileDropSource:
    """A folder (or single file) of vendor files in one format.

    Attributes
    ----------
    name, market, fmt : str
        Source name, market and reader format (one of :data:`KNOWN_FORMATS`).
    url : str
        A local path or store URL (:func:`~quantlib.store.location.resolve_location`):
        a folder (every file below it) or one file.
    """

    name: str
    market: str
    fmt: str
    url: str
    sidecar_suffix: str = ".sha256"
    kind: ClassVar[str] = "file-drop"

    def list_files(self) -> tuple[AbstractFileSystem, str, list[str]]:
        """The filesystem, the drop's root and the files below it (relative paths)."""
        fs, root = resolve_location(self.url).open_fs()
        if not fs.exists(root):
            raise PermanentSourceError("file drop must exist", found="no such file or folder",
                                       fix="check the path or URL of the drop",
                                       source=self.name, file=self.url)
        if fs.isfile(root):
            parent, _, base = root.rstrip("/").rpartition("/")
            return fs, parent, [base]
        found = sorted(fs.find(root))
        rel = [p[len(root.rstrip("/")) + 1:] for p in found]
        keep = [r for r in rel if not r.endswith(self.sidecar_suffix)
                and not r.rsplit("/", 1)[-1].startswith(".")]
        return fs, root.rstrip("/"), keep

    def fetch(self, ctx: FetchContext) -> None:
        """Store every new file of the drop in the raw zone."""
        if self.fmt not in KNOWN_FORMATS:
            raise PermanentSourceError(f"file drop format must be one of "
                                       f"{', '.join(KNOWN_FORMATS)}", found=repr(self.fmt),
                                       fix="pass fmt= with a registered reader name",
                                       source=self.name, file=self.url)
        fs, root, files = self.list_files()
        for rel in files:
            data = fs.cat_file(f"{root}/{rel}")
            sha = sha256_hex(data)
            side = f"{root}/{rel}{self.sidecar_suffix}"
            if fs.exists(side):
                want = fs.cat_file(side).decode("ascii", "replace").split()
                if not want or want[0] != sha:
                    raise TransientSourceError("dropped file must match its sidecar sha256",
                                               found=sha, fix="wait until the drop is complete "
                                               "and ingest again", source=self.name, file=rel)
            old = ctx.known(self.name, rel, sha)
            if old is not None:
                ctx.keep(old)
                continue
            ctx.add(ctx.raw.put(data, source=self.name, market=self.market, file=rel,
                                fetch_id=ctx.fetch_id, fmt=self.fmt,
                                rows=_rows(data, self.fmt), record=False))
