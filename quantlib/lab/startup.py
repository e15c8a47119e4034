"""IPython extension loaded in every kernel of a hub-spawned JupyterLab.

The platform's kernelspec (``hub-config/lab/share/kernels/python3/kernel.json``) starts
ipykernel with ``--InteractiveShellApp.extensions=quantlib.lab.startup``. It does three
things, both no-ops outside a hub session:

- **Panel behind the hub's prefix.** Panel's Jupyter server extension serves its
  JavaScript at ``<base_url>panel-preview/``, but the notebook bootstrap Panel writes
  names ``/panel-preview/`` from the site root (right for a server at ``/``; behind
  JupyterHub that path is the hub's, which answers 405 and leaves every plot blank).
  When ``panel.io.notebook`` is imported, the endpoint root is rewritten to
  ``$JUPYTERHUB_SERVICE_PREFIX/panel-preview/`` in both the resource URLs Panel computes
  in Python and the bootstrap's own check of the endpoint.
- **``.show()`` behind the hub.** Panel's ``.show()``/``pn.serve(show=True)`` serve the
  app under ``$JUPYTERHUB_SERVICE_PREFIX/proxy/absolute/<port>/`` and display its link
  (:func:`quantlib.lab.serve.route_show`) instead of opening a browser on the server.
- **Quiet logs.** ``distributed``'s loggers are set to WARNING (the server's environment
  also sets ``DASK_LOGGING__DISTRIBUTED=warning`` for the cluster's processes).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from quantlib.lab.serve import route_show

__all__ = ["load_ipython_extension", "patch_panel", "panel_endpoint"]

_DEFAULT_ROOT = "/panel-preview/"


def panel_endpoint(environ: dict[str, str] | None = None) -> str | None:
    """The Panel extension's root under the hub's prefix, or ``None`` outside a hub.

    Examples
    --------
    >>> panel_endpoint({"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"})
    '/user/alice/panel-preview/'
    >>> panel_endpoint({}) is None
    True
    """
    env = os.environ if environ is None else environ
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if not prefix or prefix == "/":
        return None
    return prefix.rstrip("/") + _DEFAULT_ROOT


class _PrefixedTemplate:
    """Panel's notebook bootstrap template with the endpoint root moved under the prefix."""

    def __init__(self, template: Any, root: str) -> None:
        self.template, self.root = template, root

    def render(self, *args: Any, **kwargs: Any) -> str:
        text = self.template.render(*args, **kwargs)
        return text.replace(json.dumps(_DEFAULT_ROOT), json.dumps(self.root))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.template, name)


def patch_panel(root: str) -> None:
    """Serve Panel's notebook resources from ``root`` (its Jupyter extension's real path)."""
    import panel.io.notebook as notebook
    import panel.io.resources as resources

    original = getattr(resources.jupyter_endpoint_root, "__wrapped__",
                       resources.jupyter_endpoint_root)

    def jupyter_endpoint_root() -> str:
        found = original()
        return root if found == _DEFAULT_ROOT else found

    jupyter_endpoint_root.__wrapped__ = original  # type: ignore[attr-defined]
    resources.jupyter_endpoint_root = jupyter_endpoint_root
    template = notebook.AUTOLOAD_NB_JS
    if isinstance(template, _PrefixedTemplate):
        template = template.template
    notebook.AUTOLOAD_NB_JS = _PrefixedTemplate(template, root)  # type: ignore[assignment]


class _AfterImport(importlib.abc.MetaPathFinder):
    """Run each hook right after its module is first imported (module name -> hook)."""

    def __init__(self, hooks: dict[str, Callable[[], None]]) -> None:
        self.hooks = hooks

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        hook = self.hooks.pop(name, None)
        if hook is None:
            return None
        if not self.hooks:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # the hook is gone: no recursion
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            hook()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def load_ipython_extension(ipython: Any = None) -> None:
    """IPython's entry point (``%load_ext quantlib.lab.startup``)."""
    for name in ("distributed", "distributed.scheduler", "distributed.nanny",
                 "distributed.worker", "distributed.core", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    root = panel_endpoint()
    if root is None:
        return
    hooks: dict[str, Callable[[], None]] = {
        "panel.io.notebook": lambda: patch_panel(root),
        "panel": route_show,  # runs once the whole package is imported
    }
    for name in [n for n in hooks if n in sys.modules]:
        hooks.pop(name)()
    if hooks and not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(hooks))
