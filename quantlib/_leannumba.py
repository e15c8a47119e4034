"""Import numba without two optional imports that quantlib's kernels never use (start-up).

``import numba`` makes two imports that a process running quantlib's cached kernels does
not need (issue #15; measured in bench/RESULTS.md, "Start-up, lean numba import"):

1. Its dependency check (``numba._ensure_critical_deps``) imports scipy, when installed,
   only to refuse a scipy older than 1.0 (~25 ms of CPU). No scipy that old installs on
   the Python 3.10+ this numba requires (scipy 1.0 predates Python 3.7), so the check
   cannot fail here; numba imports scipy itself where it compiles code that needs it
   (``numba.np.linalg``), and nothing in numba remembers whether the check ran.
2. ``numba.core.config`` imports yaml (~16 ms) to read a ``.numba_config.yaml`` in the
   working directory, if there is one. After the import, ``config.yaml`` is a stand-in
   that imports yaml the first time numba reads such a file (numba re-reads its
   configuration before each compile), so a file created later is honoured as before.
   If the file exists when numba is imported, yaml is imported as usual.

:func:`import_numba` imports numba with the imports of scipy and yaml refused, for this
thread only and for the duration of ``import numba`` (numba's own ``except ImportError``
takes the "not installed" branch), then puts the yaml stand-in in place. It is a no-op
once numba is imported: a script that imports numba itself before quantlib gets numba's
stock import. :func:`quantlib.backtest.native.numba` calls it when quantlib first needs
numba (``import quantlib.backtest`` itself no longer imports numba). Set ``QUANTLIB_NUMBA_LEAN_LOAD=0`` to keep numba's stock import (and its stock
cache loading, see :mod:`quantlib.backtest.jitload`).

Examples
--------
>>> from quantlib._leannumba import import_numba
>>> import_numba().__name__      # numba, imported already in this process: a no-op
'numba'
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["import_numba", "SKIPPED"]

#: imports refused while numba imports (top-level names), unless already imported
SKIPPED = ("scipy", "yaml")
_CONFIG_FILE = ".numba_config.yaml"  # numba.core.config._config_fname, read from the cwd


class _Refuse:
    """A meta path finder that refuses ``names`` to one thread (numba's importer)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names, self.thread = names, threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name in self.names and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"{name} is not imported while numba imports "
                                      "(quantlib._leannumba)", name=name)


class _YamlOnDemand:
    """``numba.core.config.yaml``: imports yaml when numba reads a config file."""

    def __getattr__(self, attr: str) -> Any:
        import yaml

        return getattr(yaml, attr)


def import_numba() -> ModuleType:
    """Import numba without its optional scipy and yaml imports; return the module.

    Examples
    --------
    >>> import sys
    >>> from quantlib._leannumba import import_numba
    >>> import_numba() is sys.modules["numba"]
    True
    """
    if "numba" in sys.modules or os.environ.get("QUANTLIB_NUMBA_LEAN_LOAD", "1").strip() == "0":
        import numba

        return numba
    names = tuple(n for n in SKIPPED if n not in sys.modules
                  and not (n == "yaml" and os.path.isfile(_CONFIG_FILE)))
    finder = _Refuse(names)
    sys.meta_path.insert(0, finder)
    try:
        import numba
    finally:
        sys.meta_path.remove(finder)
    from numba.core import config

    if "yaml" in names and not getattr(config, "_HAVE_YAML", True):
        config._HAVE_YAML = importlib.util.find_spec("yaml") is not None  # type: ignore[attr-defined]
        config.yaml = _YamlOnDemand()  # type: ignore[attr-defined,assignment]
    return numba
