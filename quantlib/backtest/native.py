"""quantlib's numba kernels, run from their own machine-code cache without importing numba.

Every kernel is compiled by numba (``numba.njit(cache=True)``). Importing numba alone costs
~0.2 s of CPU (its typing, lowering and parfors registries, ~200 modules): most of what
``import quantlib; quantlib.backtest.run(...)`` pays past the user's own numpy, pandas and
xarray imports (issue #15; bench/RESULTS.md, "Start-up, numba-free kernel loading").

:func:`jit` decorates a kernel like ``numba.njit`` and returns a :class:`Kernel`. Called
from Python, a Kernel types its arguments as numba would (dtype, dimensions, layout,
writeability of arrays; int, float, bool scalars) and looks for an **artifact**: the
machine code numba produced for that signature (an ELF object), saved next to numba's
own cache of the kernel (same ``NUMBA_CACHE_DIR`` rules: :func:`cache_dirs`) with what
it takes to call it: the native function's symbol, how its arguments are flattened, its
return layout and where each symbol it links against comes from. On a hit the object is
linked in process by quantlib's own ELF loader (:mod:`quantlib.backtest.elfload`: the
sections mapped, x86-64 relocations applied; no LLVM) or, where that cannot serve, by
LLVM's MCJIT (``llvmlite.binding``, ~0.05 s to import), against numba's small C
extensions (its runtime ``_nrt_python``, ``_helperlib``, ``_dynfunc``: loaded from
numba's install without importing the ``numba`` package) and called through
``ctypes`` with numba's calling convention: arrays are adapted and boxed by numba's own
runtime functions, so results are bit-identical (the same machine code runs).

An artifact is used only if everything it was built from matches: the source files of the
kernel (and of the kernels it calls), numba's and llvmlite's versions, the Python version,
the host CPU and every ``NUMBA_*`` setting; an unreadable, foreign or stale file is a
miss. The ELF loader links an artifact whose :func:`host` matches (the CPU as
``/proc/cpuinfo`` reports it, llvmlite's version from its file: nothing imported);
otherwise MCJIT links it if its :func:`header` matches (LLVM's own triple, CPU name and
features: llvmlite imported). ``QUANTLIB_NATIVE_ELF=0`` always links with MCJIT. On a miss, or for a signature or argument kind an
artifact cannot serve (keywords, ``None``, object arrays, ...), the kernel runs on numba
as before: numba is imported (the lean way, :mod:`quantlib._leannumba` and
:mod:`quantlib.backtest.jitload`), every Kernel becomes its numba dispatcher (module
globals are swapped, so numba compiles calls between kernels exactly as before), and the
artifact for that signature is written for the next process. A process where numba is
already imported, ``QUANTLIB_NUMBA_LEAN_LOAD=0`` or ``QUANTLIB_NATIVE_CACHE=0`` runs on
numba from the start (artifacts are still written); so does a working directory with a
``.numba_config.yaml``. Linux ELF only; elsewhere numba always runs.

A numba exception raised by a native call is re-raised as numba would (the static
exception numba encoded); an exception numba builds at run time (a message with values)
is raised by running the call again on numba.

Examples
--------
>>> from quantlib.backtest import native
>>> sorted(native.counts())  # doctest: +NORMALIZE_WHITESPACE
['artifacts_loaded', 'artifacts_saved', 'elf_failed', 'linked_elf', 'linked_llvm',
 'native_calls', 'numba_calls']
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from quantlib.backtest import nativecall

__all__ = ["jit", "Kernel", "numba", "counts", "enabled", "cache_dirs", "ARTIFACT_PREFIX"]

ARTIFACT_PREFIX = "quantlib-native-"
_COUNTS = {"native_calls": 0, "numba_calls": 0, "artifacts_loaded": 0, "artifacts_saved": 0}
_STATE: dict[str, Any] = {"numba": False, "header": None}
_KERNELS: list[Kernel] = []
_LOCK = threading.RLock()


def counts() -> dict[str, int]:
    """Calls served natively or by numba in this process, artifacts loaded and saved, and
    how they were linked (:func:`quantlib.backtest.nativecall.links`).

    Examples
    --------
    >>> from quantlib.backtest import native
    >>> all(v >= 0 for v in native.counts().values())
    True
    """
    return {**_COUNTS, **nativecall.links()}


def enabled() -> bool:
    """Whether kernels may run from their artifacts (without numba) in this process.

    Examples
    --------
    >>> from quantlib.backtest import native
    >>> isinstance(native.enabled(), bool)   # False once numba runs the kernels
    True
    """
    off = any(os.environ.get(k, "1").strip() == "0"
              for k in ("QUANTLIB_NUMBA_LEAN_LOAD", "QUANTLIB_NATIVE_CACHE"))
    return not (off or _STATE["numba"] or "numba" in sys.modules
                or os.environ.get("NUMBA_DISABLE_JIT", "0").strip() not in ("", "0")
                or os.path.isfile(".numba_config.yaml")
                or not sys.platform.startswith("linux"))


def numba() -> Any:
    """numba, imported the lean way with the lean cache loader installed; from now on every
    :class:`Kernel` runs on its numba dispatcher (module globals name the dispatchers).

    Examples
    --------
    >>> from quantlib.backtest import native
    >>> native.numba().__name__
    'numba'
    """
    from quantlib._leannumba import import_numba

    nb = import_numba()
    with _LOCK:
        if not _STATE["numba"]:
            from quantlib.backtest import jitload

            jitload.install()
            _STATE["numba"] = True
            for k in list(_KERNELS):
                k._swap_in()
    return nb


def jit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(cache=True, **options)``, served from artifacts where it can (a
    :class:`Kernel`); a numba dispatcher itself once numba runs the kernels.

    Examples
    --------
    >>> import numpy as np
    >>> from quantlib.backtest import native
    >>> from quantlib.backtest.kernels import last_bar_rows    # decorated by native.jit
    >>> type(last_bar_rows).__name__
    'Kernel'
    >>> last_bar_rows(np.array([[1.0], [np.nan]])).tolist()     # from its artifact or numba
    [0]
    """
    opts = {"cache": True, **options}

    def deco(fn: Callable[..., Any]) -> Any:
        k = Kernel(fn, opts)
        with _LOCK:
            _KERNELS.append(k)
            if _STATE["numba"]:
                k._swap_in()
        return k

    return deco


class Kernel:
    """A numba kernel that runs from its artifacts while numba is not needed.

    Calls with positional arguments of the kinds an artifact serves run its machine code;
    anything else runs on numba (see the module docstring).
    """

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func, self.options = fn, options
        self.__name__, self.__qualname__ = fn.__name__, fn.__qualname__
        self.__module__, self.__doc__ = fn.__module__, fn.__doc__
        self.__wrapped__ = fn
        self._disp: Any = None
        self._native: dict[tuple[str, ...], Any] = {}
        self._missed: set[tuple[str, ...]] = set()
        self._checked: set[tuple[str, ...]] = set()

    def __repr__(self) -> str:
        return f"<quantlib kernel {self.__module__}.{self.__qualname__}>"

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by name, like a module function
        return _by_name, (self.__module__, self.__qualname__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = None if kwargs else nativecall.typekey(args)
        if self._disp is None and key is not None and enabled():
            call = self._native.get(key)
            if call is None and key not in self._missed:
                call = self._load(key)
            if call is not None:
                _COUNTS["native_calls"] += 1
                return call(args, self)
        out = self.dispatcher()(*args, **kwargs)
        _COUNTS["numba_calls"] += 1
        if key is not None and key not in self._checked:
            self._checked.add(key)
            self._save(key, args)
        return out

    @property
    def _numba_type_(self) -> Any:  # numba code that reaches a Kernel calls its dispatcher
        from numba.core import types

        return types.Dispatcher(self.dispatcher())

    def dispatcher(self) -> Any:
        """The kernel's numba dispatcher (imports numba: :func:`numba`)."""
        if self._disp is None:
            nb = numba()
            with _LOCK:
                if self._disp is None:
                    self._disp = nb.njit(**self.options)(self.py_func)
        return self._disp

    def _swap_in(self) -> None:
        """An ``inline="always"`` kernel: name its dispatcher instead of this Kernel in the
        defining module's globals (numba inlines only dispatchers it finds there; it calls
        any other Kernel through its dispatcher, :attr:`_numba_type_`)."""
        if self.options.get("inline", "never") == "never":
            return
        disp = self.dispatcher()
        mod = sys.modules.get(self.__module__)
        if mod is not None and mod.__dict__.get(self.__name__) is self:
            setattr(mod, self.__name__, disp)

    def run_on_numba(self, args: tuple[Any, ...]) -> Any:
        """Run one call on numba (a native call's run-time exception is raised this way)."""
        return self.dispatcher()(*args)

    def _load(self, key: tuple[str, ...]) -> Any:
        with _LOCK:
            call = self._native.get(key)
            if call is None and key not in self._missed:
                call = nativecall.load(self._artifact_paths(key), self._expect(key), host(),
                                       header)
                if call is None:
                    self._missed.add(key)
                else:
                    self._native[key] = call
                    _COUNTS["artifacts_loaded"] += 1
        return call

    def _save(self, key: tuple[str, ...], args: tuple[Any, ...]) -> None:
        """Write the artifact of this call's overload (numba ran it), if it can serve one."""
        with contextlib.suppress(OSError, ValueError, KeyError, AttributeError, TypeError,
                                 RuntimeError):
            disp = self.dispatcher()
            cache_dir = getattr(getattr(disp, "_cache", None), "_cache_path", None)
            if not isinstance(cache_dir, str):
                return
            path = os.path.join(cache_dir, self._file_name(key))
            full = {**self._expect(key), "header": header(), "host": host()}
            if nativecall.valid(path, full):
                return
            art = nativecall.describe(disp, args, key, self.options.get("nogil", False))
            if art is None:
                return
            art.update(full)
            if nativecall.write(path, art):
                _COUNTS["artifacts_saved"] += 1

    def _expect(self, key: tuple[str, ...]) -> dict[str, Any]:
        """What an artifact for ``key`` must have been built from (all must match), besides
        the host it runs on (:func:`host`, else :func:`header`)."""
        return {"kernel": f"{self.__module__}.{self.__qualname__}",
                "source": self._source_hash(), "types": list(key)}

    def _file_name(self, key: tuple[str, ...]) -> str:
        sig = hashlib.blake2b(repr(key).encode(), digest_size=10).hexdigest()
        return f"{ARTIFACT_PREFIX}{self.__module__}.{self.__qualname__}-{sig}.bin"

    def _artifact_paths(self, key: tuple[str, ...]) -> list[str]:
        name = self._file_name(key)
        return [os.path.join(d, name) for d in cache_dirs(self.py_func.__code__.co_filename)]

    def _source_hash(self) -> str:
        """Hash of this kernel's source file and those of the Kernels it names, transitively."""
        files, todo, seen = set(), [self], set()
        while todo:
            k = todo.pop()
            if id(k) in seen:
                continue
            seen.add(id(k))
            files.add(k.py_func.__code__.co_filename)
            g = k.py_func.__globals__
            todo += [v for n in k.py_func.__code__.co_names
                     if isinstance(v := g.get(n), Kernel)]
        h = hashlib.blake2b(digest_size=16)
        for f in sorted(files):
            with open(f, "rb") as fh:
                h.update(f.encode() + b"\0" + fh.read() + b"\0")
        return h.hexdigest()


def _by_name(module: str, qualname: str) -> Any:
    """The kernel (or, swapped in, its dispatcher) named ``module.qualname``."""
    import importlib

    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def header() -> str:
    """What every artifact of this process must match: Python, numba and llvmlite builds,
    the host CPU and the ``NUMBA_*`` settings (except the cache location)."""
    if _STATE["header"] is None:
        import importlib.util

        import llvmlite
        import llvmlite.binding as ll

        spec = importlib.util.find_spec("numba")
        stamp = b""
        if spec is not None and spec.origin:
            with open(os.path.join(os.path.dirname(spec.origin), "_version.py"), "rb") as f:
                stamp = f.read()
        env = sorted((k, v) for k, v in os.environ.items()
                     if k.startswith("NUMBA_") and k != "NUMBA_CACHE_DIR")
        parts = (nativecall.FORMAT, sys.version, sys.platform, llvmlite.__version__,
                 hashlib.sha256(stamp).hexdigest(), ll.get_process_triple(),
                 ll.get_host_cpu_name(), ll.get_host_cpu_features().flatten(), env)
        _STATE["header"] = hashlib.sha256(repr(parts).encode()).hexdigest()
    return str(_STATE["header"])


#: /proc/cpuinfo fields that identify a CPU model and what it can run (LLVM's host CPU
#: name and features follow from them); per-core and clock fields left out
_CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags")


def host() -> str | None:
    """What an artifact must match to be linked without LLVM (:mod:`.elfload`): as
    :func:`header`, with the CPU as the kernel reports it (``/proc/cpuinfo``: vendor,
    family, model, stepping, feature flags) and llvmlite's build read from its
    ``_version.py``, so llvmlite is not imported. Written into each artifact beside its
    header by the process that computed both; None where ``/proc/cpuinfo`` is unreadable
    (then only MCJIT links, on a matching header).

    Examples
    --------
    >>> from quantlib.backtest import native
    >>> h = native.host()
    >>> h is None or len(h) == 64
    True
    """
    if "host" not in _STATE:
        _STATE["host"] = _host()
    return _STATE["host"]


def _host() -> str | None:
    import importlib.util

    cpu: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block
                name, _, value = line.partition(":")
                if name.strip() in _CPU_FIELDS:
                    cpu[name.strip()] = value.strip()
    except OSError:
        return None
    if "flags" not in cpu:
        return None
    stamps = []
    for pkg in ("numba", "llvmlite"):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.origin:
            return None
        try:
            with open(os.path.join(os.path.dirname(spec.origin), "_version.py"), "rb") as fh:
                stamps.append(hashlib.sha256(fh.read()).hexdigest())
        except OSError:
            return None
    env = sorted((k, v) for k, v in os.environ.items()
                 if k.startswith("NUMBA_") and k != "NUMBA_CACHE_DIR")
    parts = (nativecall.FORMAT, sys.version, sys.platform, os.uname().machine, stamps,
             sorted(cpu.items()), env)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def cache_dirs(py_file: str) -> list[str]:
    """Where numba keeps the cache of a function defined in ``py_file`` (numba's locators,
    in its order): ``$NUMBA_CACHE_DIR/<dir>_<sha1 of dir>`` when set, else the source's
    ``__pycache__``, else the user-wide ``$XDG_CACHE_HOME/numba/<dir>_<sha1 of dir>``.

    Examples
    --------
    >>> from quantlib.backtest import native
    >>> native.cache_dirs("/src/pkg/mod.py")[0] in ("/src/pkg/__pycache__",
    ...     os.path.join(os.path.abspath(os.environ.get("NUMBA_CACHE_DIR", "/")),
    ...                  "pkg_" + hashlib.sha1(b"/src/pkg").hexdigest()))
    True
    """
    src_dir = os.path.dirname(os.path.abspath(py_file))
    sub = f"{os.path.basename(src_dir)}_{hashlib.sha1(src_dir.encode()).hexdigest()}"
    user = os.environ.get("NUMBA_CACHE_DIR", "")
    if user:
        return [os.path.join(os.path.abspath(user), sub)]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return [os.path.join(src_dir, "__pycache__"), os.path.join(xdg, "numba", sub)]
