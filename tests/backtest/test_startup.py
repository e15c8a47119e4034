"""Start-up guards (issue #15): what a fresh process imports on the way to its first result,
and the lean loading of quantlib's cached numba kernels (quantlib.backtest.jitload).

Each check runs in a fresh interpreter: this test process has long imported everything.
Speed itself is measured in bench/bench_backtest.py (``--sections startup``), never here.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

#: heavy optional pieces that ``import quantlib.backtest`` (and a run on an in-memory
#: panel) must leave unloaded: they belong to the store, catalog, cluster and dashboards
DEFERRED_THIRD_PARTY = ("numba", "llvmlite", "dask", "distributed", "zarr", "icechunk", "intake", "fsspec", "s3fs",
                        "duckdb", "bokeh", "panel", "holoviews", "matplotlib", "jsonschema",
                        "exchange_calendars", "IPython", "jinja2", "requests")
DEFERRED_QUANTLIB = ("quantlib.store", "quantlib.results", "quantlib.catalog",
                     "quantlib.datasets", "quantlib.pipeline", "quantlib.cluster",
                     "quantlib.config", "quantlib.calendars", "quantlib.markets",
                     "quantlib.backtest.walkforward", "quantlib.backtest.factor",
                     "quantlib.backtest.lookahead", "quantlib.backtest.display",
                     "quantlib.backtest.cli", "quantlib.backtest.synthetic")


def _fresh(code: str, env: dict[str, str] | None = None, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded(names: tuple[str, ...]) -> str:
    return (f"[m for m in {list(names)!r} "
            "if m in sys.modules or any(k.startswith(m + '.') for k in sys.modules)]")


def test_import_quantlib_loads_no_third_party_module():
    out = _fresh("import sys, json; import quantlib; "
                 "print(json.dumps(sorted(k for k in sys.modules "
                 "if k.split('.')[0] in ('numpy', 'pandas', 'xarray', 'numba')"
                 " or k.startswith('quantlib.'))))")
    assert out == []


def test_import_backtest_defers_the_optional_pieces():
    out = _fresh("import sys, json; import quantlib.backtest; "
                 f"print(json.dumps({{'third': {_loaded(DEFERRED_THIRD_PARTY)}, "
                 f"'own': {_loaded(DEFERRED_QUANTLIB)}}}))")
    assert out == {"third": [], "own": []}


KERNEL_CODE = """
import json, sys
import numpy as np
from quantlib.backtest import jitload
from quantlib.backtest.kernels import last_bar_rows
close = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, 4.0], [2.0, np.nan, np.nan]])
from quantlib.backtest import jitcache
out = {"rows": last_bar_rows(close).tolist(), "lean_loads": jitload.lean_loads(),
       "compiler_registries_loaded": "numba.typed.typeddict" in sys.modules,
       "caches": jitcache.counts()}
if len(sys.argv) > 1:  # a new compile after the lean load: the full compiler must be there
    import numba
    @numba.njit
    def evens(n):
        kept = [0]
        for i in range(1, n):
            if i % 2 == 0:
                kept.append(i)
        return len(kept)
    out["compiled_after"] = evens(13)
    @numba.njit
    def rows_plus_one(x):  # links against the lean-loaded kernel's (lazily parsed) module
        return last_bar_rows(x) + 1
    out["linked_after"] = rows_plus_one(close).tolist()
print(json.dumps(out))
"""


def test_a_cache_miss_compiles_fully_and_the_next_process_loads_lean(tmp_path: Path):
    """Empty numba cache: the kernel compiles (the miss path initializes numba fully) and
    is saved, and so are numba's NRT helpers (jitcache); a second process loads both
    lean (compiler registries left unloaded), parses the kernel's symbol table once and
    saves it; a third reads it instead. Both get the same answer, and still compile a
    new function (a list) and one that calls the kernel (linking its bitcode) after."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    first = _fresh(KERNEL_CODE, env)
    assert first["lean_loads"] == 0 and first["compiler_registries_loaded"]
    assert first["caches"]["nrt_saved"] == 1 and first["caches"]["nrt_loaded"] == 0
    second = _fresh(KERNEL_CODE, env, "compile-after")
    assert second["lean_loads"] == 1 and not second["compiler_registries_loaded"]
    assert second["caches"] == {"nrt_loaded": 1, "nrt_saved": 0, "symbols_read": 0,
                                "symbols_parsed": 1}
    third = _fresh(KERNEL_CODE, env, "compile-after")
    assert third["lean_loads"] == 1 and not third["compiler_registries_loaded"]
    assert third["caches"] == {"nrt_loaded": 1, "nrt_saved": 0, "symbols_read": 1,
                               "symbols_parsed": 0}
    assert first["rows"] == second["rows"] == third["rows"] == [2, -1, 1]
    assert second["compiled_after"] == third["compiled_after"] == 7
    assert second["linked_after"] == third["linked_after"] == [3, 0, 2]
    saved = sorted(p.name.split("-")[1] for p in (tmp_path / "numba-cache").rglob("quantlib-*"))
    assert saved == ["native", "nrt", "symbols"]  # native: the kernel's artifact (native.py)


#: a W2-like panel (listings, delistings) and one momentum run on it
PANEL_RUN = """
import json, sys
import numpy as np, pandas as pd, xarray as xr
import quantlib
T, N = 400, 30
rng = np.random.default_rng(7)
ret = rng.normal(0.0004, 0.02, (T, N))
ret[:40, :5] = np.nan                       # listed later
ret[300:, 25:] = np.nan                     # delisted
close = 100 * np.exp(np.nancumsum(ret, axis=0))
close[np.isnan(ret)] = np.nan
data = xr.Dataset({"close": (("date", "asset"), close), "returns": (("date", "asset"), ret),
                   "in_universe": (("date", "asset"), ~np.isnan(ret))},
                  coords={"date": pd.bdate_range("2020-01-01", periods=T),
                          "asset": [f"A{i}" for i in range(N)]})
res = quantlib.backtest.run("xs_momentum", data, window=60, skip=5, quantile=5, costs="flat:10")
"""

RUN_CODE = PANEL_RUN + """
np.save(sys.argv[1], res.returns["net"].to_numpy())
from quantlib.backtest import jitload
from quantlib.backtest import jitcache
out = {"installed": jitload.installed(), "lean_loads": jitload.lean_loads(),
       "caches": jitcache.counts(),
       "compiler_registries_loaded": "numba.typed.typeddict" in sys.modules,
       "lowering_imported": [m for m in LOWERING if m in sys.modules], "deferred": DEFERRED}
if len(sys.argv) > 2:  # compile after the lean loads, through the numba internals they inlined
    import numba
    @numba.njit
    def order(x):
        return np.argsort(x, kind="mergesort")[::-1].copy()
    out["compiled_after"] = order(np.array([3.0, 1.0, 2.0])).tolist()
print(json.dumps(out))
"""

#: numba's lowering modules of internals that quantlib's kernels inline (sorting, array
#: methods, unicode): a lean load leaves them unimported (jitload, point 3)
LOWERING = ("numba.np.arrayobj", "numba.np.arraymath", "numba.misc.quicksort",
            "numba.misc.mergesort", "numba.cpython.unicode", "numba.cpython.listobj")


def test_run_in_a_fresh_process_loads_its_kernels_lean_with_the_stock_numbers(tmp_path: Path):
    """``quantlib.backtest.run`` in fresh processes on numba's default cache: the first
    one warms it if needed; the next loads every kernel lean, imports none of the
    deferred pieces nor the lowering of the numba internals its kernels inlined, still
    compiles a new function that sorts afterwards, and gives bit-identical numbers to
    stock loading (``QUANTLIB_NUMBA_LEAN_LOAD=0``), which imports that lowering."""
    script = tmp_path / "run_once.py"
    script.write_text(RUN_CODE.replace(
        "DEFERRED", _loaded(DEFERRED_QUANTLIB + ("matplotlib", "zarr", "icechunk")))
        .replace("LOWERING", repr(LOWERING)))

    def go(name: str, *args: str, **env: str) -> dict:
        env = {"QUANTLIB_NATIVE_CACHE": "0", **env}  # numba runs the kernels (native.py)
        done = subprocess.run([sys.executable, str(script), str(tmp_path / name), *args],
                              capture_output=True, text=True, timeout=900,
                              env={**os.environ, **env})
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    go("warm.npy")
    go("symbols.npy")  # the kernels' symbol tables are saved by the first lean load
    lean = go("lean.npy", "compile-after")
    assert lean["installed"] and lean["lean_loads"] >= 3
    assert not lean["compiler_registries_loaded"] and lean["deferred"] == []
    assert lean["lowering_imported"] == [] and lean["compiled_after"] == [0, 2, 1]
    assert lean["caches"]["nrt_loaded"] == 1
    assert lean["caches"]["symbols_read"] == lean["lean_loads"]
    assert lean["caches"]["symbols_parsed"] == 0
    stock = go("stock.npy", QUANTLIB_NUMBA_LEAN_LOAD="0")
    assert not stock["installed"] and stock["lean_loads"] == 0
    assert stock["compiler_registries_loaded"] and stock["deferred"] == []
    assert len(stock["lowering_imported"]) == len(LOWERING)
    assert stock["caches"] == dict.fromkeys(lean["caches"], 0)
    nets = [np.load(tmp_path / f"{n}.npy") for n in ("warm", "symbols", "lean", "stock")]
    assert np.isfinite(nets[2][100:]).all() and np.nanstd(nets[2][100:]) > 0
    for other in (nets[0], nets[1], nets[3]):
        assert np.array_equal(nets[2], other, equal_nan=True)


YAML_CODE = """
import json, os, sys
import quantlib.backtest
from quantlib.backtest import native
native.numba()                                # how quantlib imports numba when it needs it
from numba.core import config
out = {"yaml_imported": "yaml" in sys.modules, "scipy_imported": "scipy" in sys.modules,
       "scheme": config.COLOR_SCHEME}
with open(".numba_config.yaml", "w") as f:   # a config file written after the import
    f.write("color_scheme: dark_bg\\n")
config.reload_config()                        # numba does this before each compile
out["scheme_after"] = config.COLOR_SCHEME
out["yaml_imported_after"] = "yaml" in sys.modules
print(json.dumps(out))
"""


def _fresh_in(cwd: Path, code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_numba_is_imported_without_scipy_and_yaml_and_still_reads_its_config_file(
        tmp_path: Path):
    """quantlib imports numba (when a kernel needs it: ``native.numba()``) without scipy
    (its version check) and yaml (its config reader); a ``.numba_config.yaml`` is still honoured, whether it is
    there at import (yaml imported as usual) or written later (read through the stand-in)."""
    later = _fresh_in(tmp_path, YAML_CODE)
    assert later["yaml_imported"] is False and later["scipy_imported"] is False
    assert later["scheme"] == "no_color" and later["scheme_after"] == "dark_bg"
    assert later["yaml_imported_after"] is True
    (tmp_path / ".numba_config.yaml").write_text("color_scheme: light_bg\n")
    there = _fresh_in(tmp_path, YAML_CODE)
    assert there["yaml_imported"] is True and there["scipy_imported"] is False
    assert there["scheme"] == "light_bg" and there["scheme_after"] == "dark_bg"


NATIVE_RUN_CODE = PANEL_RUN + """
out = {"numba": sorted(m for m in sys.modules if m.split(".")[0] == "numba"
                       and m.count(".") < 2 and "_" not in m.split(".")[-1][:1]),
       "llvmlite": "llvmlite.binding" in sys.modules}
np.save(sys.argv[1], np.column_stack([res.returns[c].to_numpy() for c in res.returns.columns]
                                     + [res.weights.to_numpy().ravel()[:len(res.returns)]]))
from quantlib.backtest import native
out["counts"] = native.counts()
print(json.dumps(out))
"""


def test_run_in_a_fresh_process_on_a_warm_cache_does_not_import_numba(tmp_path: Path):
    """``quantlib.backtest.run`` (the W2 path: momentum, quantile mask, constraints,
    simulation, fingerprints) in fresh processes on numba's default cache: once the
    artifacts are written (by a numba run), a fresh process runs every kernel from them
    without importing numba (only its C extensions are loaded, not the ``numba`` package)
    nor llvmlite (quantlib's ELF loader links them), and its numbers are bit-identical to
    numba's, lean and stock, and to the same artifacts linked by llvmlite's MCJIT."""
    script = tmp_path / "native_run.py"
    script.write_text(NATIVE_RUN_CODE)

    def go(name: str, **env: str) -> dict:
        done = subprocess.run([sys.executable, str(script), str(tmp_path / name)],
                              capture_output=True, text=True, timeout=900,
                              env={**os.environ, **env})
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    lean = go("lean.npy", QUANTLIB_NATIVE_CACHE="0")  # numba (compiles if needed), writes
    assert lean["numba"] and lean["counts"]["native_calls"] == 0
    native = go("native.npy")
    assert native["numba"] == [] and not native["llvmlite"]
    counts = native["counts"]
    assert counts["numba_calls"] == 0 and counts["artifacts_saved"] == 0
    assert counts["artifacts_loaded"] >= 6 and counts["native_calls"] >= 6
    assert counts["linked_elf"] == counts["artifacts_loaded"] and counts["linked_llvm"] == 0
    mcjit = go("mcjit.npy", QUANTLIB_NATIVE_ELF="0")
    assert mcjit["numba"] == [] and mcjit["llvmlite"]
    assert mcjit["counts"]["linked_llvm"] == counts["artifacts_loaded"]
    assert mcjit["counts"]["linked_elf"] == 0 and mcjit["counts"]["numba_calls"] == 0
    stock = go("stock.npy", QUANTLIB_NUMBA_LEAN_LOAD="0")
    assert stock["numba"] and stock["counts"]["native_calls"] == 0
    nets = {n: np.load(tmp_path / f"{n}.npy") for n in ("lean", "native", "mcjit", "stock")}
    assert np.isfinite(nets["native"][100:, 0]).all() and np.nanstd(nets["native"][100:, 0]) > 0
    for other in ("lean", "mcjit", "stock"):
        assert np.array_equal(nets["native"], nets[other], equal_nan=True)


KERNEL_MODULE = '''
import numpy as np
from quantlib.backtest import native


@native.jit(nogil=True)
def scale(x, k):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = x[i] * FACTOR * k
    return out, x.sum()


@native.jit(nogil=True)
def inverse(a):
    return 1.0 / a
'''

KERNEL_CALLER = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import qlkern
x = np.arange(6.0)[::2]                           # strided: numba's 'A' layout
x.flags.writeable = False
out, total = qlkern.scale(x, 2)
res = {"out": out.tolist(), "total": total, "writeable": bool(out.flags.writeable)}
try:
    qlkern.inverse(0.0)
except ZeroDivisionError as exc:
    res["raised"] = [type(exc).__name__, str(exc)]
res["inverse"] = qlkern.inverse(4.0)
res["numba"] = "numba" in sys.modules
res["llvmlite"] = "llvmlite.binding" in sys.modules
from quantlib.backtest import native
res["counts"] = native.counts()
print(json.dumps(res))
"""


def test_artifacts_are_rebuilt_when_stale_or_corrupt(tmp_path: Path):
    """A kernel module outside quantlib, on its own numba cache: the first process
    compiles with numba and writes the artifacts; the next runs them without numba (an
    array and a scalar in a tuple, a strided read-only input, numba's exception); a corrupt
    artifact and a changed source each fall back to numba with the right numbers (never
    the stale code) and are rewritten; then the new artifacts serve."""
    src = tmp_path / "src"
    src.mkdir()
    module = src / "qlkern.py"
    module.write_text(KERNEL_MODULE.replace("FACTOR", "1.0"))
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def go() -> dict:
        return _fresh(KERNEL_CALLER, env, str(src))

    first, second = go(), go()
    assert first["numba"] and first["counts"]["artifacts_saved"] == 2
    assert not second["numba"] and second["counts"]["native_calls"] == 3
    for r in (first, second):
        assert r["out"] == [0.0, 4.0, 8.0] and r["total"] == 6.0 and r["writeable"]
        assert r["raised"] == ["ZeroDivisionError", "division by zero"]
        assert r["inverse"] == 0.25
    artifacts = sorted((tmp_path / "cache").rglob("quantlib-native-*"))
    assert len(artifacts) == 2
    scale_file = next(p for p in artifacts if ".scale-" in p.name)
    scale_file.write_bytes(scale_file.read_bytes()[:-100] + b"\0" * 100)  # corrupt
    third = go()
    assert third["numba"] and third["counts"]["artifacts_saved"] == 1
    assert third["out"] == [0.0, 4.0, 8.0]
    module.write_text(KERNEL_MODULE.replace("FACTOR", "1.5"))  # a new source hash
    fourth, fifth = go(), go()
    assert fourth["numba"] and fourth["counts"]["artifacts_saved"] == 2
    assert not fifth["numba"] and fifth["counts"]["artifacts_loaded"] == 2
    assert fourth["out"] == fifth["out"] == [0.0, 6.0, 12.0]
    assert fifth["raised"] == ["ZeroDivisionError", "division by zero"]


def _rewrite(path: Path, **fields: object) -> None:
    """Change an artifact's fields (the object's hash kept consistent with the object)."""
    art = pickle.loads(path.read_bytes())
    art.update(fields)
    art["object_hash"] = hashlib.blake2b(art["object"], digest_size=16).hexdigest()
    path.write_bytes(pickle.dumps(art, protocol=4))


def test_an_artifact_the_elf_loader_must_not_link_is_linked_by_llvm(tmp_path: Path):
    """The ELF loader links only artifacts written on this host (same CPU as
    /proc/cpuinfo reports it, Python, numba, llvmlite): one from another host is linked
    by MCJIT after LLVM's own check of the CPU (llvmlite imported, numba not), and so is
    one the ELF loader cannot link (an object of another OS ABI here); the numbers are
    the same, numba's exception too."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "qlkern.py").write_text(KERNEL_MODULE.replace("FACTOR", "1.0"))
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def go() -> dict:
        return _fresh(KERNEL_CALLER, env, str(src))

    first, elf = go(), go()
    assert first["numba"] and first["counts"]["artifacts_saved"] == 2
    assert not elf["numba"] and not elf["llvmlite"]
    assert elf["counts"]["linked_elf"] == 2 and elf["counts"]["linked_llvm"] == 0
    scale_file, inverse_file = (next((tmp_path / "cache").rglob(f"quantlib-native-*.{k}-*"))
                                for k in ("scale", "inverse"))
    _rewrite(scale_file, host="0" * 64)  # written on another machine
    obj = bytes(pickle.loads(inverse_file.read_bytes())["object"])
    _rewrite(inverse_file, object=obj[:7] + b"\xff" + obj[8:])  # EI_OSABI: standalone
    llvm = go()
    assert not llvm["numba"] and llvm["llvmlite"]
    assert llvm["counts"]["linked_llvm"] == 2 and llvm["counts"]["linked_elf"] == 0
    assert llvm["counts"]["elf_failed"] == 1 and llvm["counts"]["numba_calls"] == 0
    for r in (first, elf, llvm):
        assert r["out"] == [0.0, 4.0, 8.0] and r["total"] == 6.0 and r["writeable"]
        assert r["raised"] == ["ZeroDivisionError", "division by zero"]
        assert r["inverse"] == 0.25


def test_the_start_up_probe_links_every_kernel_without_llvmlite(tmp_path: Path):
    """bench/startup_probe.py (what the start-up floor is measured with) on a short W2-shaped
    panel (1,000 assets): on a warm cache its first ``run()`` links every kernel with the
    ELF loader; neither numba nor llvmlite is imported in its process."""
    rng = np.random.default_rng(3)
    T = 320
    ret = rng.normal(0.0003, 0.02, (T, 1000))
    ret[:30, :100] = np.nan
    np.save(tmp_path / "dates.npy", np.datetime64("2010-01-04", "ns")
            + np.arange(T) * np.timedelta64(1, "D"))
    np.save(tmp_path / "w2_1000_returns.npy", ret)
    np.save(tmp_path / "w2_1000_close.npy", 100 * np.exp(np.nancumsum(ret, axis=0)))
    np.save(tmp_path / "w2_1000_in_universe.npy", ~np.isnan(ret))
    probe = Path(__file__).parents[2] / "bench" / "startup_probe.py"

    def go() -> dict:
        done = subprocess.run([sys.executable, str(probe), str(tmp_path)], capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    go()  # writes the artifacts if this checkout's cache has none yet
    out = go()
    assert out["numba_imported"] is False and out["llvmlite_imported"] is False
    assert out["native"]["artifacts_loaded"] >= 6 and out["native"]["numba_calls"] == 0
    assert out["native"]["linked_elf"] == out["native"]["artifacts_loaded"]
    assert out["phases"]["first run()"]["modules"] < 20
