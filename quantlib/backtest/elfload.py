"""Link an x86-64 ELF relocatable object into this process, without LLVM.

A kernel's artifact (:mod:`quantlib.backtest.nativecall`) holds the object file numba's
LLVM emitted for one overload. Linking it through llvmlite's MCJIT costs importing
``llvmlite.binding`` (LLVM itself, ~0.05 s of CPU); the object needs far less than a
general linker. :func:`link` does what MCJIT's runtime linker does for it:

1. check the header: ELF64, little-endian, System V or GNU ABI, relocatable (``ET_REL``),
   x86-64;
2. lay out every allocated section at its alignment in one anonymous mapping, in three
   page-aligned parts: code, read-only data, and writable data (zero-filled
   ``SHT_NOBITS`` sections and the object's common symbols: numba's environment and
   exception globals, zeroed, at their alignment); ``.eh_frame`` is left out (it only
   serves C++ unwinding through the code, which numba never does);
3. give each symbol its address: a section's base plus its value, a common symbol its
   slot, an undefined one the address the caller resolved for it (numba's C helpers, a
   builtin exception, the process's own ``Py*`` and libc functions);
4. apply the relocations of the laid-out sections: ``R_X86_64_64`` (all numba's
   large-code-model objects use), ``PC64``, ``PC32``/``PLT32`` and ``32``/``32S`` where
   the value fits; any other type, an unresolved symbol or a reference into a section
   left out is an error (the caller then links with MCJIT);
5. make the code read-only and executable, the read-only data read-only (``mprotect``;
   no page is ever writable and executable at once) and return the address of the
   requested symbol.

The mapping is never unmapped (as MCJIT never frees the code of a live engine).

Examples
--------
>>> from quantlib.backtest import elfload
>>> try:
...     elfload.link(b"not an object", {}, "f")
... except ValueError as exc:
...     print(exc)
not an ELF64 little-endian System V x86-64 relocatable object (header b'not an o')
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from collections.abc import Mapping

__all__ = ["link"]

_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 0x1, 0x2, 0x4
_SHT_RELA, _SHT_NOBITS, _SHT_SYMTAB = 4, 8, 2
_SHT_X86_64_UNWIND = 0x70000001
_SHN_ABS, _SHN_COMMON = 0xFFF1, 0xFFF2
_STT_SECTION = 3
#: relocation types: (size in bytes, pc-relative, signed)
_RELOCS = {1: (8, False, False), 24: (8, True, True), 2: (4, True, True),
           4: (4, True, True), 10: (4, False, False), 11: (4, False, True)}
_KEEP: list[mmap.mmap] = []  # linked code lives as long as the process
_LIBC: list[ctypes.CDLL] = []


def link(obj: bytes, resolve: Mapping[str, int], symbol: str) -> int:
    """Link the ELF object ``obj`` in this process; the address of ``symbol`` in it.

    Parameters
    ----------
    obj : bytes
        An ELF64 x86-64 relocatable object (what LLVM emits for a module).
    resolve : mapping of str to int
        The address of each undefined symbol the object references.
    symbol : str
        The defined symbol whose address is returned (the function to call).

    Returns
    -------
    int
        The address of ``symbol`` in the linked, executable code.

    Raises
    ------
    ValueError
        Anything this linker does not handle (the caller falls back to MCJIT).
    """
    if obj[:7] != b"\x7fELF\x02\x01\x01" or obj[7] not in (0, 3) \
            or struct.unpack_from("<HH", obj, 16) != (1, 62):
        raise ValueError("not an ELF64 little-endian System V x86-64 relocatable object "
                         f"(header {obj[:8]!r})")
    shoff, = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize)
            for i in range(shnum)]
    syms = _symbols(obj, secs)
    place, parts = _layout(secs)
    size = parts[-1]
    commons = {}
    for i, (_, _, shndx, value, sz) in enumerate(syms):
        if shndx == _SHN_COMMON:
            size = _align(size, max(int(value), 1))
            commons[i], size = size, size + sz
    length = _align(max(size, 1), mmap.PAGESIZE)
    mem = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                    prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    addr = [_address(s, i, base, place, commons, resolve) for i, s in enumerate(syms)]
    image = bytearray(length)
    for i, off in place.items():
        if secs[i][1] != _SHT_NOBITS:
            image[off:off + secs[i][5]] = obj[secs[i][4]:secs[i][4] + secs[i][5]]
    for s in secs:
        if s[1] == _SHT_RELA and s[7] in place:
            _relocate(image, obj, s, place[s[7]], base, addr)
    mem.write(bytes(image))
    _protect(base, parts[0], mmap.PROT_READ | mmap.PROT_EXEC)
    _protect(base + parts[0], parts[1] - parts[0], mmap.PROT_READ)
    _KEEP.append(mem)
    for i, (name, bind, shndx, _, _) in enumerate(syms):
        found = addr[i]
        if name == symbol and bind > 0 and shndx != 0 and found is not None:
            return found
    raise ValueError(f"symbol {symbol!r} is not defined in the object")


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _layout(secs: list[tuple[int, ...]]) -> tuple[dict[int, int], list[int]]:
    """Offsets of the allocated sections (``.eh_frame`` left out) in the mapping, and
    where the code, the read-only data and the writable data end (the first two
    page-aligned)."""
    place, size, ends = {}, 0, []
    for part in (_SHF_EXECINSTR, 0, _SHF_WRITE):
        for i, s in enumerate(secs):
            flags = s[2] & (_SHF_EXECINSTR | _SHF_WRITE)
            if not s[2] & _SHF_ALLOC or s[1] == _SHT_X86_64_UNWIND or flags & ~part \
                    or (part and not flags & part):
                continue
            size = _align(size, max(s[8], 1))
            place[i], size = size, size + s[5]
        ends.append(size if part == _SHF_WRITE else _align(size, mmap.PAGESIZE))
        size = ends[-1]
    return place, ends


def _symbols(obj: bytes, secs: list[tuple[int, ...]]) -> list[tuple[str, int, int, int, int]]:
    """(name, binding, section index, value, size) of each entry of the symbol table; the
    name only of a global or undefined symbol (a local one is reached by its index)."""
    tabs = [s for s in secs if s[1] == _SHT_SYMTAB]
    if len(tabs) != 1:
        raise ValueError(f"expected one symbol table, found {len(tabs)}")
    tab = tabs[0]
    strtab = secs[tab[6]][4]
    out = []
    for st_name, info, _other, shndx, value, sz in struct.iter_unpack(
            "<IBBHQQ", obj[tab[4]:tab[4] + tab[5] // 24 * 24]):
        bind = info >> 4 if (info & 0xF) != _STT_SECTION else -1
        name = obj[strtab + st_name:obj.index(b"\0", strtab + st_name)].decode() \
            if st_name and (bind > 0 or shndx == 0) else ""
        out.append((name, bind, shndx, value, sz))
    return out


def _address(sym: tuple[str, int, int, int, int], i: int, base: int, place: dict[int, int],
             commons: dict[int, int], resolve: Mapping[str, int]) -> int | None:
    """A symbol's address (None: it may not be the target of a relocation)."""
    name, _bind, shndx, value, _ = sym
    if shndx == 0:
        if not name:
            return None
        where = resolve.get(name)
        if not where:
            raise ValueError(f"undefined symbol {name!r} has no address")
        return int(where)
    if shndx == _SHN_COMMON:
        return base + commons[i]
    if shndx == _SHN_ABS:
        return int(value)
    if shndx in place:
        return base + place[shndx] + value
    return None


def _relocate(image: bytearray, obj: bytes, rela: tuple[int, ...], at: int, base: int,
              addr: list[int | None]) -> None:
    """Apply one ``SHT_RELA`` section to the section laid out at offset ``at``."""
    for j in range(rela[5] // 24):
        off, info, addend = struct.unpack_from("<QQq", obj, rela[4] + j * 24)
        kind, target = info & 0xFFFFFFFF, addr[info >> 32]
        if kind not in _RELOCS or target is None:
            raise ValueError(f"relocation type {kind} against symbol {info >> 32} "
                             "is not handled")
        width, pcrel, signed = _RELOCS[kind]
        val = target + addend - (base + at + off if pcrel else 0)
        if width == 8:
            struct.pack_into("<Q", image, at + off, val & 0xFFFFFFFFFFFFFFFF)
        elif (-(1 << 31) <= val < 1 << 31) if signed else (0 <= val < 1 << 32):
            struct.pack_into("<i" if signed else "<I", image, at + off, val)
        else:
            raise ValueError(f"relocation type {kind} overflows at offset {off}")


def _protect(base: int, length: int, prot: int) -> None:
    if not length:
        return
    if not _LIBC:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _LIBC.append(libc)
    if _LIBC[0].mprotect(base, length, prot) != 0:
        raise ValueError(f"mprotect failed (errno {ctypes.get_errno()})")
