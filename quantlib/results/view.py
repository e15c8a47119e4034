"""Read-only view of the results store for the results API and the dashboards.

The layout, and every older one, is read through :mod:`quantlib.results.layout`
(``docs/architecture.md`` "Results store layout"); every meta this view returns is the
current schema.

Who may see what (the same rule for the API and the dashboards, see
:func:`can_view`): everybody with access to the service sees published results;
a result's author also sees it unpublished. Nobody sees another user's unpublished
result.

The URL becomes a filesystem through :func:`quantlib.storage.resolve_location`, so an
``s3://`` results URL (with the configured endpoint) works as a local folder does.
:meth:`ResultsView.version` is a cheap token (the index's modification time and size)
that changes whenever a publish replaces the index; caches key on it.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quantlib.errors import AccessDeniedError, StoreError
from quantlib.results.layout import INDEX_PATH, OBJECTS, object_path, parse_index, parse_meta
from quantlib.results.layout import read_table as _read_table
from quantlib.storage import resolve_location

__all__ = ["ResultsView", "Viewer", "can_view", "metric_value", "KEY_METRICS"]

#: Metrics shown in the gallery and compared in the browser tests -> their name in
#: ``meta["metrics"]`` (as :func:`quantlib.backtest.metrics.summary` names them; the
#: meta schema is one, so there are no aliases to try).
KEY_METRICS: dict[str, tuple[str, ...]] = {
    "cagr": ("cagr",), "sharpe": ("sharpe",), "max_drawdown": ("max_drawdown",),
    "volatility": ("annual_volatility",),
}


@dataclass(frozen=True)
class Viewer:
    """Who is asking: a hub user name and their hub groups.

    Examples
    --------
    >>> Viewer("ann", ("researchers",)).is_researcher
    True
    >>> Viewer("mo", ("managers",)).is_researcher
    False
    """

    name: str
    groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_researcher(self) -> bool:
        """True when the user is in the ``researchers`` group."""
        return "researchers" in self.groups

    @property
    def is_manager(self) -> bool:
        """True when the user is in the ``managers`` group."""
        return "managers" in self.groups


def can_view(viewer: Viewer, meta: dict[str, Any]) -> bool:
    """Whether ``viewer`` may see the result described by ``meta``.

    Examples
    --------
    >>> can_view(Viewer("mo", ("managers",)), {"published": False, "author": "ann"})
    False
    >>> can_view(Viewer("ann", ("researchers",)), {"published": False, "author": "ann"})
    True
    >>> can_view(Viewer("mo", ("managers",)), {"published": True, "author": "ann"})
    True
    """
    if meta.get("published"):
        return True
    return bool(meta.get("author")) and meta.get("author") == viewer.name


def metric_value(meta: dict[str, Any], key: str) -> float | None:
    """A key metric from ``meta["metrics"]`` by canonical name, or None.

    Examples
    --------
    >>> metric_value({"metrics": {"sharpe": 1.5}}, "sharpe")
    1.5
    >>> metric_value({"metrics": {"annual_volatility": 0.2}}, "volatility")
    0.2
    >>> metric_value({"metrics": {}}, "cagr") is None
    True
    """
    metrics = meta.get("metrics") or {}
    for alias in KEY_METRICS.get(key, (key,)):
        value = metrics.get(alias)
        if isinstance(value, int | float):
            return float(value)
    return None


class ResultsView:
    """Read-only access to a results store, filtered per viewer.

    Parameters
    ----------
    url : str
        URL of the results store (``quantlib.config.load_config().results_url``).
    version_ttl : float, optional
        Seconds a looked-up index version stays valid; default 0 (stat on every call)
        for local folders, 1 s for object stores.

    Examples
    --------
    >>> import tempfile
    >>> view = ResultsView(tempfile.mkdtemp())
    >>> view.list(Viewer("mo", ("managers",)))
    []
    """

    def __init__(self, url: str, *, version_ttl: float | None = None) -> None:
        self.url = url.rstrip("/")
        self.location = resolve_location(self.url)
        self.fs, self.root = self.location.open_fs()
        local = self.location.protocol == "file"
        self.version_ttl = version_ttl if version_ttl is not None else (0.0 if local else 1.0)
        self._version: tuple[float, str] = (0.0, "")
        self._meta_cache: dict[str, tuple[str, dict[str, Any]]] = {}

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def version(self) -> str:
        """A token that changes whenever the published index or the set of results does.

        Examples
        --------
        >>> import tempfile
        >>> ResultsView(tempfile.mkdtemp()).version()
        'none'
        """
        now = time.monotonic()
        if self._version[1] and now - self._version[0] < self.version_ttl:
            return self._version[1]
        parts = []
        for path in (self._path(INDEX_PATH), self._path(OBJECTS)):
            try:
                info = self.fs.info(path)
            except FileNotFoundError:
                continue
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
            parts.append(f"{mtime}:{info.get('size', '')}")
        token = "|".join(parts) or "none"
        self._version = (now, token)
        return token

    def _published_index(self) -> list[dict[str, Any]]:
        path = self._path(INDEX_PATH)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return []
        return parse_index(data, path)

    def _result_ids(self) -> list[str]:
        try:
            entries = self.fs.ls(self._path(OBJECTS), detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e.rstrip("/")) for e in entries)

    def list(self, viewer: Viewer, *, query: str | None = None,
             strategy: str | None = None, author: str | None = None,
             tag: str | None = None) -> list[dict[str, Any]]:
        """Metadata of every result ``viewer`` may see, newest first, optionally filtered.

        Published results come from the index; the viewer's own unpublished ones from
        their ``meta.json``. ``query`` matches title, description, strategy, author and tags
        (case-insensitive substring).
        """
        by_id: dict[str, dict[str, Any]] = {}
        for meta in self._published_index():  # current schema: parse_index upgrades
            by_id[meta["result_id"]] = meta
        for rid in self._result_ids():
            if rid in by_id:
                continue
            try:
                meta = self.meta(rid)
            except StoreError:
                continue
            if not meta.get("published") and meta.get("author") == viewer.name:
                by_id[rid] = meta
        out = [m for m in by_id.values() if can_view(viewer, m)
               and _matches(m, query=query, strategy=strategy, author=author, tag=tag)]
        out.sort(key=lambda m: str(m.get("created_at", "")), reverse=True)
        return out

    def exists(self, result_id: str) -> bool:
        """Whether a complete result (its ``meta.json``) is stored under ``result_id``.

        Examples
        --------
        >>> import tempfile
        >>> ResultsView(tempfile.mkdtemp()).exists("abc")
        False
        """
        return bool(self.fs.exists(object_path(self.root, result_id, "meta.json")))

    def meta(self, result_id: str) -> dict[str, Any]:
        """A result's ``meta.json`` (current schema, any stored version), unfiltered."""
        path = object_path(self.root, result_id, "meta.json")
        try:
            info = self.fs.info(path)
        except FileNotFoundError as exc:
            raise StoreError("result must exist in the results store", found="no meta.json",
                             fix="list results to find valid ids", file=path) from exc
        stamp = f"{info.get('mtime') or info.get('LastModified')}:{info.get('size')}"
        cached = self._meta_cache.get(result_id)
        if cached and cached[0] == stamp:
            return dict(cached[1])
        meta = parse_meta(self.fs.cat_file(path), path, result_id)
        self._meta_cache[result_id] = (stamp, meta)
        return dict(meta)

    def meta_for(self, viewer: Viewer, result_id: str) -> dict[str, Any]:
        """A result's metadata if ``viewer`` may see it.

        Raises
        ------
        AccessDeniedError
            If the result is another user's unpublished result. The message does not
            reveal whether it exists.
        """
        try:
            meta = self.meta(result_id)
        except StoreError:
            meta = None
        if meta is None or not can_view(viewer, meta):
            raise AccessDeniedError("result must be published or yours",
                                    found="no visible result with this id",
                                    fix="list results to find the ids you may read",
                                    user=viewer.name, result=result_id)
        return meta

    def _frame(self, result_id: str, name: str) -> pd.DataFrame:
        return _read_table(self.fs, object_path(self.root, result_id, name))

    def returns(self, result_id: str) -> pd.DataFrame:
        """Daily returns frame indexed by ``date``: net, gross, benchmark?, turnover, costs."""
        return self._frame(result_id, "returns.parquet")

    def weights(self, result_id: str) -> pd.DataFrame:
        """End-of-day weights, dates x assets."""
        return self._frame(result_id, "weights.parquet")

    def optional_frame(self, result_id: str, name: str) -> pd.DataFrame | None:
        """An optional per-result table (e.g. ``factor_ic.parquet``) or None."""
        try:
            return self._frame(result_id, name)
        except StoreError:
            return None


def _matches(meta: dict[str, Any], *, query: str | None, strategy: str | None,
             author: str | None, tag: str | None) -> bool:
    if strategy and str(meta.get("strategy", "")).lower() != strategy.lower():
        return False
    if author and str(meta.get("author", "")) != author:
        return False
    if tag and tag not in (meta.get("tags") or []):
        return False
    if query:
        hay = " ".join(str(meta.get(k, "")) for k in ("title", "description", "strategy",
                                                       "author", "result_id"))
        hay += " " + " ".join(map(str, meta.get("tags") or []))
        return query.lower() in hay.lower()
    return True
