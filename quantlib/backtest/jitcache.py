"""On-disk caches that make a lean kernel load cheaper still (start-up; used by jitload).

Two costs of loading quantlib's cached numba kernels remain after
:mod:`quantlib.backtest.jitload`'s lean initialization, both paid at every start
(measured in bench/RESULTS.md, "Start-up, lean numba import, cached NRT and symbol
tables"):

1. **NRT helpers.** ``rtsys.initialize`` compiles numba's runtime helpers (atomic
   reference counts, ``NRT_MemInfo_data_fast``, ...) from LLVM IR at each start.
   :func:`cached_nrt` keeps their machine code in the kernels' numba cache directory,
   in the form numba's own cache keeps a function's (object code plus the bitcode that
   later compiles link against), under a key that hashes what generates their IR (the
   stamp of numba's ``nrtdynmod.py``, the numba version, the NRT debug settings), the
   llvmlite version, the host CPU (numba's ``magic_tuple``: triple, CPU name, features)
   and the code generation settings. A fresh process loads it instead of
   compiling; on a miss it compiles as numba does and saves the result.
2. **Symbol tables.** Loading a cached kernel parses its whole linking module from
   bitcode only to list the names it defines (numba's ``JitEngine._load_defined_symbols``
   walks every function and global through llvmlite). :func:`lean_libraries` reads
   that list from a small JSON file keyed by a hash of the bitcode (written the first
   time a process parses it) and parses the bitcode only if a later compile links
   against the kernel. The engine's table of defined symbols ends up the same.
3. **Hash secret.** The lean load imported ``numba.cpython.hashing`` for the symbols it
   registers; now only when a kernel's machine code names them (none of quantlib's does).

Both are used only inside a lean load of quantlib's own kernels; an unreadable or
unwritable cache falls back to numba's own path.

Examples
--------
>>> from quantlib.backtest import jitcache
>>> len(jitcache.nrt_cache_key("define void @f() {ret void}", ("x86_64", "cpu", "")))
32
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
from collections.abc import Iterator
from typing import Any

__all__ = ["cached_nrt", "lean_libraries", "nrt_cache_key", "counts"]

_COUNTS = {"nrt_loaded": 0, "nrt_saved": 0, "symbols_read": 0, "symbols_parsed": 0}
_FORMAT = 1


def counts() -> dict[str, int]:
    """What this process's lean loads took from (and wrote to) these caches.

    Examples
    --------
    >>> from quantlib.backtest import jitcache
    >>> sorted(jitcache.counts())
    ['nrt_loaded', 'nrt_saved', 'symbols_parsed', 'symbols_read']
    """
    return dict(_COUNTS)


def nrt_cache_key(source: str, magic: tuple[Any, ...]) -> str:
    """Cache key of the NRT helpers' machine code: what generates their IR (``source``:
    the target context's class and the stamp of numba's ``nrtdynmod.py``), the host CPU
    (``magic``, the codegen's ``magic_tuple()``), numba, llvmlite and the code generation
    and NRT debug settings.

    Examples
    --------
    >>> from quantlib.backtest import jitcache
    >>> cpu = ("x86_64-unknown-linux-gnu", "skylake", "+avx2")
    >>> key = jitcache.nrt_cache_key("a", cpu)
    >>> key == jitcache.nrt_cache_key("a", cpu), key == jitcache.nrt_cache_key("b", cpu)
    (True, False)
    >>> key == jitcache.nrt_cache_key("a", (*cpu[:2], "-avx2"))
    False
    """
    import llvmlite
    import numba
    from numba.core import config

    settings = [getattr(config, k, None) for k in ("OPT", "LOOP_VECTORIZE", "SLP_VECTORIZE",
                                                  "ENABLE_AVX", "CPU_NAME", "CPU_FEATURES",
                                                  "DEBUGINFO_DEFAULT", "BOUNDSCHECK",
                                                  "DEBUG_NRT", "DEBUG_NRT_STACK_LIMIT",
                                                  "MACHINE_BITS")]
    head = repr((_FORMAT, numba.__version__, llvmlite.__version__, tuple(magic), settings))
    return hashlib.sha256(f"{head}\n{source}".encode()).hexdigest()[:32]


@contextlib.contextmanager
def cached_nrt(cache_dir: str | None) -> Iterator[None]:
    """While ``rtsys.initialize`` runs: numba's NRT helpers come from (or go to) the
    cache in ``cache_dir`` instead of being compiled at every start."""
    from numba.core.runtime import nrt, nrtdynmod

    if cache_dir is None or getattr(nrt.rtsys, "_init", True) or not all(
            hasattr(nrtdynmod, f) for f in ("compile_nrt_functions", "create_nrt_module")):
        yield
        return
    stock = nrtdynmod.compile_nrt_functions

    def compile_nrt_functions(ctx: Any) -> Any:
        st = os.stat(nrtdynmod.__file__)
        source = f"{type(ctx).__module__}.{type(ctx).__qualname__}|{st.st_mtime_ns}|{st.st_size}"
        key = nrt_cache_key(source, ctx.codegen().magic_tuple())
        path = os.path.join(cache_dir, f"quantlib-nrt-{key}.bin")
        loaded = _load_library(ctx.codegen(), path)
        if loaded is not None:
            _COUNTS["nrt_loaded"] += 1
            return loaded
        ir_mod, library = nrtdynmod.create_nrt_module(ctx)
        library.enable_object_caching()
        library.add_ir_module(ir_mod)
        library.finalize()
        if _write(path, pickle.dumps(library.serialize_using_object_code(), protocol=4)):
            _COUNTS["nrt_saved"] += 1
        return library

    nrtdynmod.compile_nrt_functions = compile_nrt_functions
    try:
        yield
    finally:
        nrtdynmod.compile_nrt_functions = stock


def _load_library(codegen: Any, path: str) -> Any:
    """The NRT library saved at ``path``, or None (absent, unreadable, not the format)."""
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError):
        return None
    if not (isinstance(state, tuple) and len(state) == 3 and state[1] == "object"):
        return None
    return codegen.unserialize_library(state)


@contextlib.contextmanager
def lean_libraries(codegen: Any, cache_dir: str | None) -> Iterator[None]:
    """While a cached kernel loads: its library's defined symbols come from the symbol
    file in ``cache_dir`` and its linking module is parsed on first use (point 2)."""
    engine: Any = getattr(codegen, "_engine", None)
    if cache_dir is None or not isinstance(getattr(engine, "_defined_symbols", None), set):
        _hash_secret()
        yield
        return
    stock = type(codegen).unserialize_library

    def unserialize_library(serialized: Any) -> Any:
        name, kind, data = serialized
        if kind != "object":
            _hash_secret()
            return stock(codegen, serialized)
        object_code, bitcode = data
        if _HASH_SECRET in object_code:  # the machine code links against these symbols
            _hash_secret()
        names, parsed = _symbols(cache_dir, bitcode)
        library = codegen.create_library(name)
        library.enable_object_caching()
        library._set_compiled_object(object_code)
        library._ql_object = object_code  # kept for quantlib.backtest.native's artifacts
        library.__class__ = _lazy_class(type(library))
        library._ql_bitcode, library._ql_shared = bitcode, parsed
        library._finalize_final_module()
        engine._defined_symbols |= names
        return library

    codegen.unserialize_library = unserialize_library  # this codegen, this load only
    try:
        yield
    finally:
        del codegen.unserialize_library


_LAZY: dict[type, type] = {}
#: prefix of the symbols numba.cpython.hashing registers on import (Python's hash secret)
_HASH_SECRET = b"_numba_hashsecret_"


def _hash_secret() -> None:
    """Register the hash secret symbols (``numba.cpython.hashing`` does on import; it
    imports numba's random and unsafe-bytes lowering with it, ~10 ms). A lean load does
    so only for machine code that names them: an object file names every symbol it links
    against, so code that does not name them cannot need them."""
    import numba.cpython.hashing  # noqa: F401


def _lazy_class(cls: type) -> type:
    """``cls`` with ``_shared_module`` (the linking module) parsed from its bitcode on
    first use: by a later compile that links against this library."""
    if cls not in _LAZY:
        def get(self: Any) -> Any:
            mod = self.__dict__.get("_ql_shared")
            if mod is None and self.__dict__.get("_ql_bitcode") is not None:
                import llvmlite.binding as ll

                mod = self.__dict__["_ql_shared"] = ll.parse_bitcode(self._ql_bitcode)
            return mod

        def put(self: Any, value: Any) -> None:
            self.__dict__["_ql_shared"] = value

        _LAZY[cls] = type(f"Lean{cls.__name__}", (cls,),
                          {"_shared_module": property(get, put), "__module__": __name__})
    return _LAZY[cls]


def _symbols(cache_dir: str, bitcode: bytes) -> tuple[set[str], Any]:
    """Names a linking module defines (functions and globals), and the module if it had to
    be parsed: from its symbol file, else parsed from the bitcode and written there for
    the next process."""
    import llvmlite
    import llvmlite.binding as ll

    key = hashlib.blake2b(llvmlite.__version__.encode() + b"\0" + bitcode,
                          digest_size=16).hexdigest()
    path = os.path.join(cache_dir, f"quantlib-symbols-{key}.json")
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if isinstance(saved, dict) and saved.get("key") == key and isinstance(
                saved.get("names"), list):
            _COUNTS["symbols_read"] += 1
            return set(map(str, saved["names"])), None
    mod = ll.parse_bitcode(bitcode)
    names = {gv.name for gsets in (mod.functions, mod.global_variables) for gv in gsets
             if not gv.is_declaration}
    _COUNTS["symbols_parsed"] += 1
    _write(path, json.dumps({"key": key, "names": sorted(names)}).encode())
    return names, mod


def _write(path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically (a temporary file renamed); False on error."""
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".quantlib-tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)
        return False
