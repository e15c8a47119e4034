"""Serialized tear-sheet plots, built once per (result id, plots code version).

Results are immutable (content-addressed), so a result's plots never change unless the
code that draws them does. :class:`PlotCache` keeps Bokeh's ``json_item`` of
:func:`dashboards.figures.tear_sheet_layout` as a JSON file
``<folder>/<result_id>-<code_version>.json`` plus an in-process copy of the most recent
ones; the tear-sheet page hands the text to the browser, which embeds it with BokehJS
(``Bokeh.embed.embed_item``). A viewer then costs the server a file read (usually not
even that), not ten figures' construction and serialization.

- The code version (:data:`CODE_VERSION`) hashes the sources of ``dashboards/plots.py``
  and ``dashboards/figures.py`` and Bokeh's version: editing a plot or upgrading Bokeh
  rebuilds every result's plots on its next view; files of older versions of the same
  result are removed when the new one is written.
- Concurrent first views of one result build it once (a lock per result id); other
  results build in parallel.
- Files are written to a temporary name and renamed, so a reader never sees half a file.
- Access control stays with the caller: the cache never checks who asks, so pages must
  check ``ResultsView.meta_for`` first (the tear sheet does).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bokeh

from quantlib.errors import ConfigError

__all__ = ["PlotCache", "CODE_VERSION", "code_version", "plot_cache"]

log = logging.getLogger(__name__)


#: the modules whose code draws a cached tear sheet
SOURCES = ("dashboards.plots", "dashboards.figures", "dashboards.sections",
           "dashboards.glossary", "quantlib.serving.views.tearstats")


def code_version() -> str:
    """12 hex digits of sha256 over the tear sheet's sources, the benchmark setting and Bokeh.

    Examples
    --------
    >>> len(code_version()), code_version() == CODE_VERSION
    (12, True)
    """
    digest = hashlib.sha256(bokeh.__version__.encode())
    digest.update(os.environ.get("QUANTLIB_TEARSHEET_BENCHMARK", "auto").encode())
    for module in SOURCES:
        spec = importlib.util.find_spec(module)
        digest.update(Path(str(spec and spec.origin)).read_bytes())
    return digest.hexdigest()[:12]


CODE_VERSION = code_version()


class PlotCache:
    """Tear-sheet plots as ``json_item`` JSON text, one file per result and code version.

    Parameters
    ----------
    folder : str or Path
        Local folder of the cache files (created, mode 0700).
    memory_items : int
        How many results' JSON text stay in process memory (most recently used).
    version : str, optional
        Code version in the file names; default :data:`CODE_VERSION`.
    kind : str
        What the items are, in log lines (``plots``; ``tables`` for the HTML tables).

    Examples
    --------
    >>> import tempfile
    >>> from bokeh.plotting import figure
    >>> cache = PlotCache(tempfile.mkdtemp())
    >>> text = cache.get_or_build("abc123", lambda: figure(title="t"))
    >>> cache.get("abc123") == text, cache.builds
    (True, 1)
    """

    def __init__(self, folder: str | os.PathLike[str], *, memory_items: int = 32,
                 version: str | None = None, kind: str = "plots") -> None:
        self.folder = Path(folder).expanduser()
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError("the tear-sheet plot cache folder must be writable",
                              found=str(exc), fix="set QUANTLIB_HOME to a writable folder",
                              file=str(self.folder)) from exc
        self.version = version or CODE_VERSION
        self.kind = kind  # what the log lines call the cached items
        self.memory_items = memory_items
        self.builds = 0
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, result_id: str) -> Path:
        """The cache file of ``result_id`` for this code version."""
        return self.folder / f"{result_id}-{self.version}.json"

    def get(self, result_id: str) -> str | None:
        """The cached JSON text of ``result_id``'s plots, or None if not built yet."""
        with self._guard:
            text = self._memory.get(result_id)
            if text is not None:
                self._memory.move_to_end(result_id)
                return text
        try:
            text = self.path(result_id).read_text()
        except FileNotFoundError:
            return None
        self._remember(result_id, text)
        return text

    def get_or_build(self, result_id: str, build: Callable[[], Any]) -> str:
        """The cached text, building it with ``build()`` on a miss.

        ``build`` returns a Bokeh layout (kept as its ``json_item`` JSON) or text (kept
        as is, e.g. the tear sheet's HTML tables).
        """
        text = self.get(result_id)
        if text is not None:
            return text
        with self._guard:
            lock = self._locks.setdefault(result_id, threading.Lock())
        with lock:
            text = self.get(result_id)  # another session built it while we waited
            if text is None:
                text = self._build(result_id, build)
        return text

    def _build(self, result_id: str, build: Callable[[], Any]) -> str:
        from bokeh.embed import json_item

        started = time.perf_counter()
        built = build()
        text = built if isinstance(built, str) else json.dumps(json_item(built),
                                                                separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{result_id}-", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.path(result_id))
        for stale in self.folder.glob(f"{result_id}-*.json"):
            if stale != self.path(result_id):
                stale.unlink(missing_ok=True)
        self.builds += 1
        self._remember(result_id, text)
        log.info("tear-sheet %s of %s built and cached in %.3f s (%d bytes)", self.kind,
                 result_id, time.perf_counter() - started, len(text))
        return text

    def _remember(self, result_id: str, text: str) -> None:
        with self._guard:
            self._memory[result_id] = text
            self._memory.move_to_end(result_id)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)


_CACHES: dict[str, PlotCache] = {}
_CACHES_LOCK = threading.Lock()


def plot_cache(folder: str | os.PathLike[str] | None = None, kind: str = "plots") -> PlotCache:
    """The process-wide cache for ``folder`` (default ``$QUANTLIB_HOME/cache/tearsheet``)."""
    if folder is None:
        from quantlib.config import quantlib_home

        folder = quantlib_home() / "cache" / "tearsheet"
    key = str(Path(folder).expanduser().resolve())
    with _CACHES_LOCK:
        if key not in _CACHES:
            _CACHES[key] = PlotCache(key, kind=kind)
        return _CACHES[key]
