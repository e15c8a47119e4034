"""quantlib.backtest.elfload: objects LLVM emits, linked without LLVM and called.

Each object is compiled here from LLVM IR (llvmlite): in the code model of numba's objects
(large: absolute 64-bit relocations) with a common symbol and an external C function,
and in the default one (small: pc-relative relocations) with a writable global; linking
through elfload and calling through ctypes must give the values the IR computes, and
what elfload cannot link must raise, never run.
"""

from __future__ import annotations

import ctypes
import math
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF only")

ll = pytest.importorskip("llvmlite.binding")

from quantlib.backtest import elfload  # noqa: E402

IR = """
@table = internal constant [4 x double] [double 1.5, double 2.5, double 27.0, double 8.0]
@calls = common global i64 0, align 8
declare double @cbrt(double)

define double @pick(i64 %i) {
  %p = getelementptr [4 x double], ptr @table, i64 0, i64 %i
  %v = load double, ptr %p
  %c = load i64, ptr @calls
  %c1 = add i64 %c, 1
  store i64 %c1, ptr @calls
  %r = call double @cbrt(double %v)
  ret double %r
}

define i64 @calls_made() {
  %c = load i64, ptr @calls
  ret i64 %c
}
"""


def _object(ir: str, codemodel: str, reloc: str = "static") -> bytes:
    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    tm = ll.Target.from_default_triple().create_target_machine(codemodel=codemodel,
                                                               reloc=reloc, opt=2)
    mod = ll.parse_assembly(ir)
    mod.triple = ll.get_process_triple()
    return bytes(tm.emit_object(mod))


def _cbrt() -> int:
    return int(ctypes.cast(ctypes.CDLL(None)["cbrt"], ctypes.c_void_p).value or 0)


def _call(obj: bytes, resolve: dict[str, int]) -> tuple[list[float], int]:
    pick = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64)(
        elfload.link(obj, resolve, "pick"))
    # the same object linked again: its own copy, with its own (zeroed) common symbol
    count = ctypes.CFUNCTYPE(ctypes.c_int64)(elfload.link(obj, resolve, "calls_made"))
    values = [pick(i) for i in (2, 0, 3)]
    return values, count()


#: the small code model, position-independent: the table and the counter reached
#: pc-relative (no GOT: both are local to the object), no external call (a call into
#: libm may lie beyond +-2 GiB)
IR_SMALL = IR.replace("common global", "dso_local global").replace(
    "call double @cbrt(double %v)", "fmul double %v, 2.0")


def test_linked_code_computes_what_the_ir_says():
    obj = _object(IR, "large")
    values, calls = _call(obj, {"cbrt": _cbrt()})
    assert values == [math.cbrt(27.0), math.cbrt(1.5), math.cbrt(8.0)]
    assert calls == 0  # pick's counter lives in the first copy, calls_made's in the second
    pick = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64)(
        elfload.link(obj, {"cbrt": _cbrt()}, "pick"))
    assert pick(1) == math.cbrt(2.5)


def test_pc_relative_code_computes_what_the_ir_says():
    obj = _object(IR_SMALL, "small", "pic")
    pick = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64)(elfload.link(obj, {}, "pick"))
    assert [pick(2), pick(0), pick(3)] == [54.0, 3.0, 16.0]
    count = ctypes.CFUNCTYPE(ctypes.c_int64)(elfload.link(obj, {}, "calls_made"))
    assert count() == 0


def test_a_common_symbol_is_shared_by_the_functions_of_one_object():
    ir = IR + """
define double @pick_and_count(i64 %i) {
  %v = call double @pick(i64 %i)
  %c = call i64 @calls_made()
  %f = sitofp i64 %c to double
  %r = fadd double %v, %f
  ret double %r
}
"""
    fn = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64)(
        elfload.link(_object(ir, "large"), {"cbrt": _cbrt()}, "pick_and_count"))
    assert [fn(2), fn(2), fn(3)] == [math.cbrt(27.0) + 1, math.cbrt(27.0) + 2,
                                      math.cbrt(8.0) + 3]


def test_what_it_cannot_link_raises():
    obj = _object(IR, "large")
    with pytest.raises(ValueError, match="undefined symbol 'cbrt' has no address"):
        elfload.link(obj, {}, "pick")
    with pytest.raises(ValueError, match="symbol 'nowhere' is not defined"):
        elfload.link(obj, {"cbrt": _cbrt()}, "nowhere")
    # position-independent code reaches cbrt through a GOT, which elfload does not build
    with pytest.raises(ValueError, match=r"relocation type (9|41|42) .* not handled"):
        elfload.link(_object(IR, "small", "pic"), {"cbrt": _cbrt()}, "pick")
    foreign = obj[:7] + b"\xff" + obj[8:]  # another OS ABI
    with pytest.raises(ValueError, match="System V x86-64 relocatable object"):
        elfload.link(foreign, {"cbrt": _cbrt()}, "pick")
