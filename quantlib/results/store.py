"""Content-addressed results store and its published index (the writer side).

The layout (files, meta schema, older layouts) is :mod:`quantlib.results.layout`'s;
the read-only, per-viewer side for the API and dashboards is
:mod:`quantlib.results.view`. A store URL becomes a filesystem only through
:func:`quantlib.store.location.resolve_location`, so a configured S3 endpoint holds here.

Atomicity: a result's objects are written before its ``meta.json``; the index is
replaced whole, by temp file + rename on a local folder and by a single PUT on
object stores, so readers never see a half-written index. Concurrent publishers never
lose each other's entries: the index is updated by compare-and-swap
(:func:`quantlib.store.cas.update_object`: a file lock on a local folder, a
conditional PUT on S3), re-applying the change on the newer index after a lost race.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from quantlib.config import load_config
from quantlib.errors import StoreError
from quantlib.results.layout import (
    INDEX_PATH,
    OBJECTS,
    object_path,
    parse_index,
    parse_meta,
    read_result,
    write_result,
)
from quantlib.storage import resolve_location

if TYPE_CHECKING:  # backtest (numba) and the curated store package load on first use
    from quantlib.backtest.result import Result

__all__ = ["results_url", "save_result", "load_result", "load_meta", "has_result",
           "publish", "list_results", "read_index", "ResultStore", "SYNTHETIC_MARK"]

#: prefix of the title of a result published from synthetic data
SYNTHETIC_MARK = "[synthetic]"


def results_url(url: str | None = None) -> str:
    """The results store URL: ``url`` if given, else the configured one.

    Examples
    --------
    >>> results_url("memory://r")
    'memory://r'
    """
    return url or load_config().results_url


def _fs(url: str | None) -> tuple[Any, str]:
    loc = resolve_location(results_url(url))
    return loc.filesystem(), loc.fs_path()


def has_result(result_id: str, url: str | None = None) -> bool:
    """Whether a complete result (its ``meta.json``) is stored under ``result_id``."""
    fs, root = _fs(url)
    return bool(fs.exists(object_path(root, result_id, "meta.json")))


def save_result(result: Result, url: str | None = None) -> str:
    """Store ``result`` under its content address; return the ``result_id``.

    Examples
    --------
    >>> import pandas as pd
    >>> from quantlib.backtest.result import Result
    >>> idx = pd.date_range("2024-01-01", periods=2, name="date")
    >>> r = Result(pd.DataFrame({"net": [0.0, 0.1], "gross": [0.0, 0.1], "turnover": [1.0, 0],
    ...            "costs": [0.0, 0]}, index=idx), pd.DataFrame({"A": [1.0, 1.0]}, index=idx),
    ...            provenance={"strategy": "demo", "snapshot": "s1"})
    >>> rid = save_result(r, "memory://doc-results")
    >>> load_result(rid, "memory://doc-results").returns.equals(r.returns)
    True
    """
    rid = result.result_id
    fs, root = _fs(url)
    write_result(result, fs, object_path(root, rid))
    return rid


def load_result(result_id: str, url: str | None = None) -> Result:
    """Load the stored result ``result_id``.

    Raises
    ------
    StoreError
        If no such result is stored; the message names the id and the store.
    """
    fs, root = _fs(url)
    if not fs.exists(object_path(root, result_id, "meta.json")):
        raise StoreError("result must exist in the results store",
                         found=f"no result {result_id!r}",
                         fix="list ids with quantlib.results.list_results(published_only=False)",
                         file=object_path(results_url(url), result_id))
    return read_result(fs, object_path(root, result_id))


def load_meta(result_id: str, url: str | None = None) -> dict[str, Any]:
    """The ``meta.json`` of a stored result, as a dict (current schema, any stored version)."""
    fs, root = _fs(url)
    path = object_path(root, result_id, "meta.json")
    if not fs.exists(path):
        raise StoreError("result must exist in the results store", found=f"no {path}",
                         fix="check the result id", file=path)
    return parse_meta(fs.cat_file(path), path, result_id)


def read_index(url: str | None = None) -> list[dict[str, Any]]:
    """The published index (a list of meta documents, newest first); empty if none."""
    fs, root = _fs(url)
    path = f"{root}/{INDEX_PATH}"
    return parse_index(fs.cat_file(path) if fs.exists(path) else None, path)


def _index_with(meta: dict[str, Any], path: str, gone: set[str] | None = None) -> Any:
    """The update that puts ``meta`` first in an index (replacing its old entry).

    ``gone`` are the ids this publish replaces (removed). A different result of the same
    title that appeared since the publish checked (a concurrent publisher) is an error.
    """
    gone = gone or set()

    def update(current: bytes | None) -> bytes:
        entries = parse_index(current, path)
        entries = [e for e in entries if e.get("result_id") not in {meta.get("result_id"), *gone}]
        clash = [e["result_id"] for e in entries if e.get("title") == meta.get("title")]
        if clash:
            raise StoreError("publish must not replace a different result silently",
                             found=f"{', '.join(clash)} was published meanwhile under the "
                                   f"title {meta.get('title')!r}",
                             fix="publish again (replace=True to replace it)", file=path)
        return json.dumps([meta, *entries], indent=1, sort_keys=True,
                          allow_nan=False).encode()
    return update


def publish(result: Result, title: str, description: str = "", tags: list[str] | None = None,
            author: str | None = None, allowed_params: dict[str, Any] | None = None,
            url: str | None = None, *, replace: bool = False,
            allow_synthetic: bool = False) -> str:
    """Store ``result`` and list it in the published index the dashboards read.

    Publishing never replaces a different result silently: if another published result
    has the same ``title``, or a different result is stored under the same id, it raises
    :class:`~quantlib.errors.StoreError` unless ``replace=True``; then the replaced
    result leaves the index (its object stays in the store) and the new meta records it
    under ``replaces``. Republishing the same result (same id and content) updates its
    publication fields. A result on synthetic data (``meta["synthetic"]``) is refused
    unless ``allow_synthetic=True``; its title then starts with ``[synthetic]``.

    Parameters
    ----------
    result : Result
        A backtest result (from :func:`quantlib.backtest.run` or ``simulate``).
    title, description : str
        Shown in the dashboards' gallery.
    tags : list of str, optional
        Free labels for filtering.
    author : str, optional
        Defaults to ``$JUPYTERHUB_USER`` or ``$USER``.
    allowed_params : dict, optional
        Ranges a what-if may change, e.g. ``{"fast": {"min": 5, "max": 50, "step": 5}}``
        or ``{"rebalance": {"choices": ["W", "M"]}}``.
    url : str, optional
        Results store URL (default: the configured ``results``). Without one, in a
        notebook run by the hub (``QUANTLIB_RESULTS_API`` set), the result is sent to the
        results service, which records the hub user as author (``author`` is ignored).
    replace : bool, default False
        Replace (and record) a different published result of the same title or id.
    allow_synthetic : bool, default False
        Publish a result computed on synthetic data (marked as such).

    Returns
    -------
    str
        The ``result_id``.

    Examples
    --------
    >>> import pandas as pd
    >>> from quantlib.backtest.result import Result
    >>> idx = pd.date_range("2024-01-01", periods=2, name="date")
    >>> r = Result(pd.DataFrame({"net": [0.0, 0.1], "gross": [0.0, 0.1], "turnover": [1.0, 0],
    ...            "costs": [0.0, 0]}, index=idx), pd.DataFrame({"A": [1.0, 1.0]}, index=idx),
    ...            provenance={"strategy": "demo", "snapshot": "s1"})
    >>> rid = publish(r, "Demo", tags=["demo"], author="ann", url="memory://doc-pub")
    >>> [m["title"] for m in list_results(url="memory://doc-pub")]
    ['Demo']
    """
    if not title or not isinstance(title, str):
        raise StoreError("a published result needs a title", found=repr(title),
                         fix="pass title='...'")
    from quantlib.results.remote import publish_via_service, service_target
    from quantlib.store.cas import update_object

    target = service_target(url)
    if target is not None:  # in a hub's notebook: the results service writes, as this user
        return publish_via_service(result, *target, title=title, description=description,
                                   tags=tags, allowed_params=allowed_params, replace=replace,
                                   allow_synthetic=allow_synthetic)
    if allowed_params is not None and not isinstance(allowed_params, dict):
        raise StoreError("allowed_params must be a dict of parameter -> range",
                         found=type(allowed_params).__name__,
                         fix='pass e.g. {"fast": {"min": 5, "max": 50}}')
    title = _synthetic_title(result, title, allow_synthetic)
    now = dt.datetime.now(dt.UTC).isoformat()
    rid = result.result_id
    index = read_index(url)
    replaced = _conflicts(result, title, index, url)
    if replaced and not replace:
        raise StoreError("publish must not replace a different result silently",
                         found="; ".join(f"{r['result_id']} ({r['title']!r}): {r['why']}"
                                         for r in replaced),
                         fix="choose another title, or pass replace=True to replace it "
                             "(recorded in the new result's meta as 'replaces')")
    result.info.update({
        "author": author or os.environ.get("JUPYTERHUB_USER") or os.environ.get("USER"),
        "published": True, "published_at": now,
        "title": title, "description": description, "tags": list(tags or []),
        "allowed_params": allowed_params,
        "replaces": [*(result.info.get("replaces") or []),
                     *({**r, "replaced_at": now} for r in replaced)] or None,
    })
    save_result(result, url)
    meta = load_meta(rid, url)
    path = f"{results_url(url).rstrip('/')}/{INDEX_PATH}"
    update_object(path, _index_with(meta, path, {r["result_id"] for r in replaced}))
    return rid


def _synthetic_title(result: Result, title: str, allow_synthetic: bool) -> str:
    if not result.provenance.get("synthetic"):
        return title
    if not allow_synthetic:
        raise StoreError("a published result must be computed on real data",
                         found=f"result {result.result_id} ran on synthetic data "
                               f"(snapshot {result.provenance.get('snapshot')})",
                         fix="backtest catalog data (quantlib.load_dataset), or pass "
                             "allow_synthetic=True (CLI: --allow-synthetic) to publish it "
                             "marked as synthetic")
    return title if title.startswith(SYNTHETIC_MARK) else f"{SYNTHETIC_MARK} {title}"


def _conflicts(result: Result, title: str, index: list[dict[str, Any]], url: str | None
               ) -> list[dict[str, Any]]:
    """Different results this publish would replace: same title, or same id, other content."""
    rid = result.result_id
    out = [{"result_id": e["result_id"], "title": e.get("title"),
            "published_at": e.get("published_at"), "why": "same title"}
           for e in index if e.get("title") == title and e.get("result_id") != rid]
    if has_result(rid, url):
        stored = load_result(rid, url)
        same = all(_frames_equal(getattr(stored, k), getattr(result, k))
                   for k in ("returns", "weights"))
        if not same:
            meta = load_meta(rid, url)
            out.append({"result_id": rid, "title": meta.get("title"),
                        "published_at": meta.get("published_at"),
                        "why": "same id, different returns or weights"})
    return out


def _frames_equal(a: Any, b: Any) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_freq=False,
                                      check_column_type=False, check_index_type=False)
    except AssertionError:
        return False
    return True


def list_results(published_only: bool = True, author: str | None = None,
                 url: str | None = None) -> list[dict[str, Any]]:
    """Meta documents of stored results, newest first.

    ``published_only=True`` reads the published index; ``False`` scans every stored
    object. ``author`` keeps only that author's results.
    """
    if published_only:
        entries = read_index(url)
    else:
        fs, root = _fs(url)
        paths = fs.glob(f"{root}/{OBJECTS}/*/meta.json")
        entries = [parse_meta(fs.cat_file(p), p, p.rsplit("/", 2)[-2]) for p in paths]
        entries.sort(key=lambda m: m.get("published_at") or m.get("created_at") or "",
                     reverse=True)
    if author is not None:
        entries = [e for e in entries if e.get("author") == author]
    return entries


@dataclass(frozen=True)
class ResultStore:
    """A results store as the backtest's cache (:class:`~quantlib.backtest.result.ResultCache`).

    ``run(strategy, data, cache=ResultStore(url))`` serves an identical request from
    the store and keeps new results there; ``url=None`` is the configured store.

    Examples
    --------
    >>> from quantlib.backtest import run
    >>> from quantlib.backtest.synthetic import make_dataset
    >>> cache = ResultStore("memory://doc-cache")
    >>> ds = make_dataset(8, 120, seed=1, markets=())
    >>> a = run("ma_crossover", ds, fast=5, slow=20, cache=cache)
    >>> cache.get(a.result_id).result_id == a.result_id
    True
    """

    url: str | None = None

    def get(self, result_id: str) -> Result | None:
        """The stored result ``result_id``, or ``None`` if none is stored."""
        return load_result(result_id, self.url) if has_result(result_id, self.url) else None

    def put(self, result: Result) -> str:
        """Store ``result``; return its ``result_id``."""
        return save_result(result, self.url)
