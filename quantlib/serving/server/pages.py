"""The dashboards' page registry: ``dashboards/pages.yaml``, one entry per page.

The server (:mod:`quantlib.serving.server.launch`) serves every entry, the quantlib bar
(:func:`dashboards.layout.nav_links`) links the ones with ``nav``, and
``tests/dashboards/test_pages.py`` checks each one, all from this one table. The file
is validated against ``pages.schema.json`` (beside this module) and for unique names and
routes; targets are lazy ``"module:attr"`` strings, imported only by :func:`load`.
"""

from __future__ import annotations

import importlib
import importlib.resources
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from quantlib.errors import ConfigError
from quantlib.yamlfile import load_schema, load_yaml

__all__ = ["Page", "Registry", "registry", "pages", "load", "REGISTRY_FILE", "SCHEMA_FILE"]

SCHEMA_FILE = Path(__file__).with_name("pages.schema.json")
#: the registry ships inside the ``dashboards`` package, beside the pages
REGISTRY_FILE = Path(str(importlib.resources.files("dashboards") / "pages.yaml"))


@dataclass(frozen=True)
class Page:
    """One dashboards page (see ``dashboards/pages.yaml`` for the fields)."""

    name: str
    route: str
    title: str
    kind: Literal["panel", "html"]
    target: str
    nav: bool = True

    @property
    def href(self) -> str:
        """The page's link relative to the dashboards' root.

        Examples
        --------
        >>> Page("home", "", "Home", "html", "m:H").href, Page("g", "gallery", "G", "panel", "m:p").href
        ('./', './gallery')
        """
        return f"./{self.route}"


@dataclass(frozen=True)
class Registry:
    """The validated registry: the pages in navigation order and the background tasks."""

    pages: tuple[Page, ...]
    background: tuple[str, ...]


def load(target: str) -> Any:
    """The object a lazy ``"module:attr"`` string names.

    Examples
    --------
    >>> load("quantlib.serving.server.pages:load") is load
    True
    """
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("a page target must name an importable 'module:attr'",
                          found=f"{target!r}: {exc}", fix="correct dashboards/pages.yaml",
                          file=str(REGISTRY_FILE), field="target") from exc


@cache
def registry(path: str | None = None) -> Registry:
    """Read and check the page registry (default: the one in the ``dashboards`` package).

    Raises
    ------
    ConfigError
        If the file breaks the schema, or two pages share a name or a route.

    Examples
    --------
    >>> [p.name for p in registry().pages][:3]
    ['home', 'gallery', 'compare']
    """
    source = Path(path) if path else REGISTRY_FILE
    raw = load_yaml(source, load_schema(SCHEMA_FILE), what="the page registry",
                    fix=f"see {SCHEMA_FILE.name}")
    out = tuple(Page(**entry) for entry in raw["pages"])
    for key in ("name", "route"):
        values = [getattr(p, key) for p in out]
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise ConfigError(f"each page's {key} must be unique", found=f"{key} {dup} twice",
                              fix="rename one of them", file=str(source), field=key)
    return Registry(out, tuple(raw.get("background", ())))


def pages(kind: str | None = None) -> tuple[Page, ...]:
    """The registered pages, in navigation order (only those of ``kind`` if given).

    Examples
    --------
    >>> [p.route for p in pages("panel")]
    ['gallery', 'whatif', 'health']
    """
    return tuple(p for p in registry().pages if kind is None or p.kind == kind)
