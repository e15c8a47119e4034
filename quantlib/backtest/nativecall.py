"""Artifacts of :mod:`quantlib.backtest.native`: typing, writing, loading and calling.

An artifact (a pickle of plain Python values) holds one overload of one kernel: the ELF
object numba compiled, the native function's symbol, the argument codes (:func:`typekey`),
the return layout, the LLVM parameter types (checked against this module's flattening when
written) and, for each undefined symbol of the object, where its address comes from
(numba's runtime and helper C extensions, a builtin exception, or the process). Loading
links the object with :mod:`quantlib.backtest.elfload` (no LLVM) where the artifact was
written on this host (:func:`load`), else with LLVM's MCJIT; calling follows numba's
calling convention
``int32 fn(ret*, excinfo**, flattened args...)``: an array argument is numba's array
struct (meminfo, parent, nitems, itemsize, data, shape, strides) filled by numba's own
``NRT_adapt_ndarray_from_python``, array results are boxed by
``NRT_adapt_ndarray_to_python_acqref``, exactly as numba's CPython wrapper does.

Examples
--------
>>> import numpy as np
>>> from quantlib.backtest.nativecall import typekey
>>> typekey((np.zeros((2, 3)), 3, 1.5, True))
('a<f8:2:C:w', 's<i8', 's<f8', 's|b1')
>>> typekey((np.zeros((3, 2))[:, 0], None)) is None     # None: numba serves it
True
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import pickle
import struct
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["typekey", "describe", "write", "load", "valid", "links", "FORMAT"]

FORMAT = 2  # 2: artifacts carry "host" (native.host), linked without LLVM where it matches
_KINDS = "biuf"  # bool, signed, unsigned, float dtypes: what numba types the same way here
_RUNTIME: dict[str, Any] = {}
_LINKS = {"linked_elf": 0, "linked_llvm": 0, "elf_failed": 0}


def links() -> dict[str, int]:
    """Artifacts linked in this process by quantlib's ELF loader and by LLVM's MCJIT, and
    ELF links that failed (then MCJIT linked the artifact).

    Examples
    --------
    >>> from quantlib.backtest import nativecall
    >>> sorted(nativecall.links())
    ['elf_failed', 'linked_elf', 'linked_llvm']
    """
    return dict(_LINKS)


def _code(a: Any) -> str | None:
    """numba's type of one argument as a short code, or None (a kind artifacts don't serve)."""
    t = type(a)
    if t is np.ndarray:
        dt, fl = a.dtype, a.flags
        if dt.kind not in _KINDS or not dt.isnative or not fl.aligned:
            return None
        lay = "C" if fl.c_contiguous else "F" if fl.f_contiguous else "A"
        return f"a{dt.str}:{a.ndim}:{lay}:{'w' if fl.writeable else 'r'}"
    if t is bool or t is np.bool_:
        return "s|b1"
    if t is float:
        return "s<f8"
    if t is int:  # numba: up to 63 bits int64, a 64-bit non-negative uint64
        n = a.bit_length()
        return "s<i8" if n < 64 else "s<u8" if (n == 64 and a >= 0) else None
    if isinstance(a, np.generic) and a.dtype.kind in _KINDS and a.dtype.isnative:
        return f"s{a.dtype.str}"
    return None


def typekey(args: tuple[Any, ...]) -> tuple[str, ...] | None:
    """The argument codes of a call (numba's typing of them), or None if any kind is not
    served by artifacts."""
    out = []
    for a in args:
        c = _code(a)
        if c is None:
            return None
        out.append(c)
    return tuple(out)


# ------------------------------------------------------------------ writing (numba process)


def _numba_code(ty: Any) -> str | None:
    """The code of a numba type, if it is one :func:`_code` produces."""
    from numba.core import types
    from numba.np import numpy_support

    if isinstance(ty, types.Array):
        if not ty.aligned:
            return None
        dt = numpy_support.as_dtype(ty.dtype)
        return f"a{dt.str}:{ty.ndim}:{ty.layout}:{'w' if ty.mutable else 'r'}" \
            if dt.kind in _KINDS else None
    if isinstance(ty, types.Boolean):
        return "s|b1"
    if isinstance(ty, (types.Integer, types.Float)):
        return f"s{numpy_support.as_dtype(ty).str}"
    return None


def _flat(code: str) -> list[str]:
    """LLVM parameter types of one argument in numba's calling convention."""
    if code[0] == "a":
        ndim = int(code.split(":")[1])
        return ["ptr", "ptr", "i64", "i64", "ptr"] + ["i64"] * (2 * ndim)
    return {"s|b1": ["i8"], "<f8": ["double"], "<f4": ["float"]}.get(
        code if code == "s|b1" else code[1:], [f"i{8 * int(code[-1])}"])


def _ret_layout(ty: Any) -> tuple[bool, list[str]] | None:
    """Return value layout: whether it is a tuple, and the codes of its parts (``[]``:
    None); only 8-byte scalars and arrays (no padding in numba's return struct)."""
    from numba.core import types

    if isinstance(ty, types.NoneType):
        return False, []
    is_tuple = isinstance(ty, types.BaseTuple)
    codes = [_numba_code(p) for p in (list(ty.types) if is_tuple else [ty])]
    if any(c is None or (c[0] == "s" and c[-1] != "8") for c in codes):
        return None
    return is_tuple, [str(c) for c in codes]


def describe(disp: Any, args: tuple[Any, ...], key: tuple[str, ...], nogil: bool
             ) -> dict[str, Any] | None:
    """The artifact of the overload numba ran for ``args`` (None if it cannot be one)."""
    argtypes = tuple(disp.typeof_pyval(a) for a in args)
    cres = disp.overloads.get(argtypes)
    if cres is None or tuple(_numba_code(t) for t in argtypes) != key:
        return None  # this module's typing must be numba's
    lib = cres.library
    obj = lib.__dict__.get("_ql_object") or lib.__dict__.get("_compiled_object") \
        or _cached_object(disp, argtypes, lib)
    ret = _ret_layout(cres.signature.return_type)
    if not isinstance(obj, bytes) or ret is None or obj[:6] != b"\x7fELF\x02\x01":
        return None
    params = _llvm_params(lib, cres.fndesc.mangled_name)
    want = ["ptr", "ptr"] + [p for c in key for p in _flat(c)]
    if params != want:
        return None
    symbols = _classify(_undefined(obj))
    if symbols is None:
        return None
    return {"format": FORMAT, "object": obj, "object_hash": _digest(obj),
            "symbol": cres.fndesc.mangled_name, "params": params, "ret": ret[1],
            "ret_tuple": ret[0], "nogil": bool(nogil), "symbols": symbols,
            "elf": _elf_agrees(symbols)}


def _cached_object(disp: Any, argtypes: tuple[Any, ...], lib: Any) -> bytes | None:
    """The object code of an overload numba loaded the stock way, from numba's cache."""
    cache: Any = getattr(disp, "_cache", None)
    with contextlib.suppress(Exception):
        data = cache._cache_file.load(cache._index_key(argtypes, lib.codegen))
        if data is not None and data[0][1] == "object" and isinstance(data[0][2][0], bytes):
            return bytes(data[0][2][0])
    return None


def _llvm_params(lib: Any, name: str) -> list[str] | None:
    import llvmlite.binding as ll

    mod = lib.__dict__.get("_ql_shared") or lib._get_module_for_linking()
    if isinstance(mod, bytes):
        mod = ll.parse_bitcode(mod)
    try:
        fn = mod.get_function(name)
    except NameError:
        return None
    return [str(a.type) for a in fn.arguments]


def _undefined(obj: bytes) -> list[str]:
    """Undefined symbols of an ELF64 little-endian relocatable object."""
    shoff, = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
    out = []
    for s in secs:
        if s[1] != 2:  # SHT_SYMTAB
            continue
        stroff, off, size, entsize = secs[s[6]][4], s[4], s[5], s[9]
        for j in range(1, size // entsize):
            name, _info, _other, shndx = struct.unpack_from("<IBBH", obj, off + j * entsize)
            if shndx == 0 and name:
                out.append(obj[stroff + name:obj.index(b"\0", stroff + name)].decode())
    return sorted(set(out))


def _classify(names: list[str]) -> dict[str, list[str]] | None:
    """Where each symbol's address comes from, checked against the address numba gave it
    in this process (None if one is not accounted for)."""
    import builtins

    import llvmlite.binding as ll

    rt = _runtime()
    out: dict[str, list[str]] = {}
    for name in names:
        where = _source(name, rt, builtins)
        addr = ll.address_of_symbol(name)
        if where[0] != "process" and _address(where, rt) != addr:
            return None
        if where[0] == "process" and not addr:
            return None
        out[name] = where
    return out


def _elf_agrees(symbols: dict[str, list[str]]) -> bool:
    """Whether the process resolves each of the object's process symbols to the address
    LLVM gave it (elfload may link the artifact)."""
    import llvmlite.binding as ll

    return all(_process_symbol(n) == ll.address_of_symbol(n)
               for n, where in symbols.items() if where[0] == "process")


def _source(name: str, rt: dict[str, Any], builtins: Any) -> list[str]:
    nrt, helper, dyn = (rt[k].c_helpers for k in ("nrt", "helper", "dynfunc"))
    if name == "_Py_NoneStruct":
        return ["none"]
    exc = getattr(builtins, name[6:], None) if name.startswith("PyExc_") else None
    if isinstance(exc, type) and issubclass(exc, BaseException):
        return ["exc", name[6:]]
    if name.startswith("NRT_") and name[4:] in nrt:
        return ["nrt", name[4:]]
    if name.startswith("_") and name in nrt:
        return ["nrt", name]
    if name.startswith("numba_") and name[6:] in helper:
        return ["helper", name[6:]]
    if name.startswith("numba_") and name[6:] in dyn:
        return ["dynfunc", name[6:]]
    if name in helper:  # C math functions numba binds to its helper library's
        return ["helper", name]
    return ["process"]


def _address(where: list[str], rt: dict[str, Any]) -> int:
    import builtins

    kind = where[0]
    if kind == "none":
        return id(None)
    if kind == "exc":
        return id(getattr(builtins, where[1]))
    return int(rt[kind].c_helpers[where[1]])


def write(path: str, art: dict[str, Any]) -> bool:
    """Write an artifact atomically (a temporary file renamed); False on error."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".quantlib-tmp-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(art, f, protocol=4)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


# ------------------------------------------------------------------ loading and calling


def _llvm() -> Any:
    """``llvmlite.binding`` with its native target initialized (MCJIT linking only)."""
    import llvmlite.binding as ll

    if not _RUNTIME.get("llvm"):
        ll.initialize_native_target()
        ll.initialize_native_asmprinter()
        _RUNTIME["llvm"] = True
    return ll


def _runtime() -> dict[str, Any]:
    """numba's runtime C extensions, loaded once, without importing the numba package
    (each extension is loaded from its file)."""
    if "nrt" in _RUNTIME:
        return _RUNTIME
    import importlib.util

    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.origin:
        raise ImportError("numba is not installed")
    base = os.path.dirname(spec.origin)
    mods = {}
    for key, name in (("nrt", "numba.core.runtime._nrt_python"), ("helper", "numba._helperlib"),
                      ("dynfunc", "numba._dynfunc")):
        mods[key] = sys.modules.get(name) or _load_extension(name, base)
    if "numba.core.runtime.nrt" not in sys.modules:
        mods["nrt"].memsys_use_cpython_allocator()  # as numba's runtime does on import
    c = mods["nrt"].c_helpers
    proto = ctypes.PYFUNCTYPE
    mods["from_python"] = proto(ctypes.c_int, ctypes.py_object, ctypes.c_void_p)(
        c["adapt_ndarray_from_python"])
    mods["to_python"] = proto(ctypes.py_object, ctypes.c_void_p, ctypes.py_object,
                              ctypes.c_int, ctypes.c_int, ctypes.py_object)(
        c["adapt_ndarray_to_python_acqref"])
    mods["release"] = proto(None, ctypes.c_void_p)(c["MemInfo_release"])
    _RUNTIME.update(mods)
    return _RUNTIME


def _load_extension(name: str, base: str) -> Any:
    import importlib.machinery
    import importlib.util

    rel = name.split(".", 1)[1].replace(".", os.sep)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(base, rel + suffix)
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                break
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return mod
    raise ImportError(f"numba's extension {name} not found under {base}")


def _read(path: str, expect: dict[str, Any]) -> dict[str, Any] | None:
    """The artifact at ``path`` if it is one built from ``expect`` (else None)."""
    try:
        with open(path, "rb") as f:
            art = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError,
            ImportError, IndexError, TypeError, KeyError, MemoryError):
        return None
    if not (isinstance(art, dict) and art.get("format") == FORMAT
            and all(art.get(k) == v for k, v in expect.items())
            and isinstance(art.get("object"), bytes)
            and art.get("object_hash") == _digest(art["object"])):
        return None
    return art


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def valid(path: str, expect: dict[str, Any]) -> bool:
    """Whether ``path`` holds an artifact built from ``expect``."""
    return _read(path, expect) is not None


_FAILS = (KeyError, TypeError, ValueError, RuntimeError, ImportError, OSError, IndexError,
          AttributeError, struct.error)


def load(paths: list[str], expect: dict[str, Any], host: str | None,
         header: Callable[[], str]) -> Any:
    """The callable of the first valid artifact among ``paths`` (None: a miss).

    ``expect`` holds what the artifact must have been built from (kernel, source, argument
    types). An artifact written on this host (its ``host`` equal to ``host``: see
    :func:`quantlib.backtest.native.host`) is linked by :mod:`quantlib.backtest.elfload`,
    without LLVM; one whose host differs, or that the ELF loader cannot link, is linked by
    MCJIT if its ``header`` (LLVM's own view of the CPU, importing llvmlite) matches."""
    for path in paths:
        art = _read(path, expect)
        if art is None:
            continue
        if host is not None and art.get("host") == host and art.get("elf") is True \
                and _elf_enabled():
            try:
                return _Native(art, elf=True)
            except _FAILS:
                _LINKS["elf_failed"] += 1
        with contextlib.suppress(*_FAILS):
            if art.get("header") == header():
                return _Native(art, elf=False)
    return None


def _elf_enabled() -> bool:
    return sys.platform.startswith("linux") and os.uname().machine == "x86_64" \
        and os.environ.get("QUANTLIB_NATIVE_ELF", "1").strip() != "0"


class _ExcInfo(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("size", ctypes.c_int32),
                ("hash", ctypes.c_void_p), ("unwrap", ctypes.c_void_p),
                ("ndyn", ctypes.c_int32)]


_CT: dict[str, Any] = {"ptr": ctypes.c_void_p, "i64": ctypes.c_int64, "double": ctypes.c_double,
       "float": ctypes.c_float, "i8": ctypes.c_uint8, "i32": ctypes.c_int32,
       "i16": ctypes.c_int16}
_SCALAR: dict[str, Any] = {"<f8": ctypes.c_double, "<i8": ctypes.c_int64, "<u8": ctypes.c_uint64}


class _Native:
    """One loaded artifact: its code linked by quantlib's ELF loader (``elf``) or MCJIT,
    called through ctypes."""

    def __init__(self, art: dict[str, Any], elf: bool) -> None:
        rt = _runtime()
        addr = self._link_elf(art, rt) if elf else self._link_llvm(art, rt)
        _LINKS["linked_elf" if elf else "linked_llvm"] += 1
        types: list[Any] = [ctypes.c_void_p, ctypes.c_void_p]
        for code in art["types"]:
            if code[0] == "a":
                types += [_CT[p] for p in _flat(code)]
            else:
                types.append(_SCALAR.get(code[1:], _CT[_flat(code)[0]]))
        proto = ctypes.CFUNCTYPE if art["nogil"] else ctypes.PYFUNCTYPE
        self._fn = proto(ctypes.c_int32, *types)(addr)
        self._codes, self._ret, self._rt = art["types"], art["ret"], rt
        self._tuple = bool(art["ret_tuple"])
        self._words = sum(_words(c) for c in self._ret) or 1

    @staticmethod
    def _link_elf(art: dict[str, Any], rt: dict[str, Any]) -> int:
        from quantlib.backtest import elfload

        resolve = {name: _process_symbol(name) if where[0] == "process"
                   else _address(where, rt) for name, where in art["symbols"].items()}
        return elfload.link(art["object"], resolve, art["symbol"])

    def _link_llvm(self, art: dict[str, Any], rt: dict[str, Any]) -> int:
        ll = _llvm()
        tm = ll.Target.from_default_triple().create_target_machine(codemodel="jitdefault",
                                                                   jit=True)
        mod = ll.parse_assembly("")
        mod.triple = ll.get_process_triple()
        # first: creating the engine makes the process's own symbols resolvable (LLVM)
        self._ee = ll.create_mcjit_compiler(mod, tm)
        for name, where in art["symbols"].items():
            have = ll.address_of_symbol(name)
            if where[0] == "process":
                if not have:
                    raise KeyError(name)
                continue
            ll.add_symbol(name, _address(where, rt))  # as numba binds it (it overrides)
        self._ee.add_object_file(ll.ObjectFileRef.from_data(art["object"]))
        self._ee.finalize_object()
        addr = self._ee.get_function_address(art["symbol"])
        if not addr:
            raise KeyError(art["symbol"])
        return int(addr)

    def __call__(self, args: tuple[Any, ...], kernel: Any) -> Any:
        rt, flat, held = self._rt, [], []
        try:
            for code, a in zip(self._codes, args, strict=True):
                if code[0] == "a":
                    st = (ctypes.c_int64 * _words(code))()
                    if rt["from_python"](a, ctypes.addressof(st)) != 0:
                        raise TypeError(f"cannot pass {type(a).__name__} as an array")
                    held.append(st[0])
                    flat += list(st)
                elif code == "s|b1":
                    flat.append(1 if a else 0)
                else:
                    flat.append(float(a) if code[2] == "f" else int(a))
            ret = (ctypes.c_int64 * self._words)()
            exc = ctypes.c_void_p()
            status = self._fn(ctypes.addressof(ret), ctypes.byref(exc), *flat)
        finally:
            for mi in held:
                rt["release"](mi)
        if status not in (0, -2):
            return self._raise(status, exc, args, kernel)
        return self._box(ret)

    def _box(self, ret: Any) -> Any:
        base, out = ctypes.addressof(ret), []
        off = 0
        for code in self._ret:
            if code[0] == "a":
                dt, ndim, _, rw = code[1:].split(":")
                out.append(self._rt["to_python"](base + off, np.ndarray, int(ndim),
                                                 int(rw == "w"), np.dtype(dt)))
                self._rt["release"](ctypes.c_void_p.from_address(base + off).value)
            else:
                out.append(_SCALAR[code[1:]].from_address(base + off).value)
            off += 8 * _words(code)
        if self._tuple:
            return tuple(out)
        return out[0] if out else None

    def _raise(self, status: int, exc: Any, args: tuple[Any, ...], kernel: Any) -> Any:
        """Raise what numba raises for a failed call: its static exception, decoded here;
        anything else by running the call on numba."""
        if status == -3:
            raise StopIteration
        if status >= 1 and exc.value:
            info = _ExcInfo.from_address(exc.value)
            if not info.unwrap and info.ndyn == 0 and info.size > 0 and info.buf:
                cls, exc_args, _loc = pickle.loads(ctypes.string_at(info.buf, info.size))
                raise cls(*exc_args)
        with contextlib.suppress(Exception):
            ctypes.pythonapi.PyErr_Clear()
        return kernel.run_on_numba(args)


def _process_symbol(name: str) -> int:
    """The address of a symbol of the process (Python's C API, libc), as the dynamic
    linker finds it (LLVM asks it the same way); 0 if there is none."""
    if "process" not in _RUNTIME:
        _RUNTIME["process"] = ctypes.CDLL(None)
    try:
        fn = _RUNTIME["process"][name]
    except AttributeError:
        return 0
    return int(ctypes.cast(fn, ctypes.c_void_p).value or 0)


def _words(code: str) -> int:
    return 5 + 2 * int(code.split(":")[1]) if code[0] == "a" else 1
