"""Fast loading of quantlib's cached numba kernels in a fresh process (start-up).

Every kernel is ``numba.njit(cache=True)``: a fresh process finds its machine code in
numba's on-disk cache and does not compile. Loading that cache is still slow in stock
numba, because the first load initializes the whole compiler:

1. ``Cache.load_overload`` calls ``target_context.refresh()``, which imports ~60 numba
   modules (unicode, lists, dicts, sets, jitclass, cffi, random, ...) and installs their
   typing and lowering registries: ~0.3 s of CPU, all of it compiler state. Machine code
   loaded from the cache needs none of it, only the symbols it links against.
2. ``Dispatcher._compile_for_args`` first runs ``entrypoints.init_all()``, which reads the
   metadata of every installed distribution looking for numba extensions (~0.03 s).

For quantlib's own dispatchers (functions defined in a ``quantlib.*`` module) this
module loads cached code after the *lean* initialization that such code needs: the
runtime's (NRT) symbols and compiled helpers (their machine code cached on disk by
:mod:`quantlib.backtest.jitcache`), and the hash secret symbols that
``numba.cpython.hashing`` registers on import (only for machine code that names them).
Each kernel's table of defined symbols comes from jitcache too. Two more costs of a stock load are left
out of a lean one (measured in bench/RESULTS.md, "Start-up"):

3. Each pickled function environment imports the module that defined the function:
   for the numba internals a kernel inlined (sorting, array methods, unicode, math:
   ~20 modules) that is the import of their lowering code. A lean load gives an
   environment of a numba module not imported yet a globals dict holding only its
   ``__name__``; nopython machine code reads only the environment's constants, and the
   globals serve object mode alone, which numba's internals never use.
4. Every LLVM C-API call during the load broadcasts numba's ``numba:llvm_lock`` events
   (a compile-time timer; ~2,600 calls for quantlib's kernels). A lean load holds the
   LLVM lock and mutes those callbacks until it is done.

Every other symbol the machine code references is registered when the target context is
created (numba's C helpers, the math functions) or by the cached entry's own
``reload_init`` (the parallel threading layer), exactly as in stock numba. On a cache
miss, the full initialization runs before numba compiles (extension entry points, then
``refresh()``), so compiling behaves as stock numba does; so does everything for
functions outside quantlib.

The patch is installed once, by :func:`quantlib.backtest.native.numba` (when quantlib
first needs numba: a kernel without a native artifact, a sweep), and only if numba has
the internals it replaces (otherwise stock loading stays, merely slower). Set the
environment variable ``QUANTLIB_NUMBA_LEAN_LOAD=0`` to keep stock loading (and numba's
stock import, see :mod:`quantlib._leannumba`).

Examples
--------
>>> from quantlib.backtest import jitload
>>> jitload.install()  # idempotent; quantlib.backtest.native.numba() does it
True
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from quantlib._leannumba import import_numba
from quantlib.backtest import jitcache

import_numba()  # before any quantlib module imports numba: no scipy, no yaml (start-up)

__all__ = ["install", "installed", "lean_loads"]

_STATE: dict[str, Any] = {"installed": False, "lean_loads": 0}
_OURS = "quantlib."


def installed() -> bool:
    """Whether the lean loader is in place in this process.

    Examples
    --------
    >>> from quantlib.backtest import jitload
    >>> jitload.install() and jitload.installed()   # native.numba() installs it
    True
    """
    return bool(_STATE["installed"])


def lean_loads() -> int:
    """How many quantlib kernels this process loaded from numba's cache the lean way.

    Examples
    --------
    >>> from quantlib.backtest import jitload
    >>> isinstance(jitload.lean_loads(), int)     # counted per process; 0 until a kernel loads
    True
    """
    return int(_STATE["lean_loads"])


def install() -> bool:
    """Install the lean cache loader for quantlib's kernels (idempotent).

    Returns whether it is installed: ``False`` when ``QUANTLIB_NUMBA_LEAN_LOAD=0`` or when
    this numba lacks an internal it relies on (stock loading then stays).

    Examples
    --------
    >>> from quantlib.backtest import jitload
    >>> jitload.install(), jitload.install()    # installed by native.numba(); again: a no-op
    (True, True)
    """
    if _STATE["installed"]:
        return True
    if os.environ.get("QUANTLIB_NUMBA_LEAN_LOAD", "1").strip() == "0":
        return False
    from numba.core import caching, dispatcher, entrypoints
    from numba.core.runtime import nrt

    cache_cls: Any = caching.FunctionCache
    disp_cls: Any = dispatcher.Dispatcher
    needed = (hasattr(cache_cls, "load_overload") and hasattr(cache_cls, "_load_overload")
              and hasattr(cache_cls, "_guard_against_spurious_io_errors")
              and hasattr(disp_cls, "_compilation_chain_init_hook")
              and hasattr(nrt, "rtsys") and hasattr(entrypoints, "init_all"))
    if not needed:
        return False
    stock_load, stock_hook = cache_cls.load_overload, disp_cls._compilation_chain_init_hook

    def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        if not _is_ours(getattr(self, "_py_func", None)):
            return stock_load(self, sig, target_context)
        cache_dir = _cache_dir(self)
        with _quiet_llvm_lock(), jitcache.cached_nrt(cache_dir):
            nrt.rtsys.initialize(target_context)
        with (self._guard_against_spurious_io_errors(), _lean_environments(), _quiet_llvm_lock(),
              jitcache.lean_libraries(target_context.codegen(), cache_dir)):
            cres = self._load_overload(sig, target_context)
        if cres is None:  # a miss: numba compiles next, fully initialized as it expects
            entrypoints.init_all()
            target_context.refresh()
        else:
            _STATE["lean_loads"] += 1
        return cres

    def init_hook(self: Any) -> None:
        # quantlib's cached kernels: the extensions are initialized on a miss (above)
        if not (_is_ours(getattr(self, "py_func", None))
                and isinstance(getattr(self, "_cache", None), cache_cls)):
            stock_hook(self)

    cache_cls.load_overload = load_overload
    disp_cls._compilation_chain_init_hook = init_hook
    _STATE["installed"] = True
    return True


def _cache_dir(cache: Any) -> str | None:
    """The kernel's numba cache directory (where jitcache keeps its files), if it has one."""
    path = getattr(cache, "_cache_path", None)
    return path if isinstance(path, str) and os.path.isdir(path) else None


def _is_ours(py_func: Any) -> bool:
    return str(getattr(py_func, "__module__", "") or "").startswith(_OURS)


@contextlib.contextmanager
def _lean_environments() -> Iterator[None]:
    """Unpickle function environments of numba modules not yet imported without importing
    them (point 3 of the module docstring); every other environment loads as stock."""
    from numba.core import environment

    stock = environment._rebuild_env

    def rebuild(modname: str, consts: Any, env_name: str) -> Any:
        env = environment.lookup_environment(env_name)
        if env is not None:
            return env
        if modname in sys.modules or not modname.startswith("numba."):
            return stock(modname, consts, env_name)
        env = environment.Environment({"__name__": modname})
        env.consts[:] = consts
        env.env_name = env_name
        environment.Environment._memo[env_name] = env
        return env

    environment._rebuild_env = rebuild  # pickle finds it by name while loading
    try:
        yield
    finally:
        environment._rebuild_env = stock


@contextlib.contextmanager
def _quiet_llvm_lock() -> Iterator[None]:
    """Hold llvmlite's lock with its callbacks muted (point 4 of the module docstring);
    a no-op where this llvmlite keeps them elsewhere."""
    from llvmlite.binding import ffi

    lock: Any = getattr(ffi.lib, "_lock", None)
    if not (hasattr(lock, "_lock") and isinstance(getattr(lock, "_cblist", None), list)):
        yield
        return
    with lock._lock:  # re-entrant: this thread's own LLVM calls go through
        saved, lock._cblist = lock._cblist, []
        try:
            yield
        finally:
            lock._cblist = saved
