"""Sweep kernels on every core of one process: blocks of assets (or series, or parameter
sets) are independent, so numba runs them in parallel (``prange``) without the GIL.

Each kernel is compiled twice from the same source: a ``parallel=True`` version and a
serial one (``prange`` is ``range`` there). :func:`kernel_threads` picks which runs:

- ``NUMBA_NUM_THREADS`` (or :func:`numba.set_num_threads`) caps the threads, as numba does;
- inside a Dask worker each task runs on ONE thread: the worker's ``nthreads`` tasks already
  use its cores, so a kernel must not add threads of its own (no oversubscription);
- one thread means the serial version (no thread pool at all).

Both versions do the same floating-point operations in the same order for each output
element, so their results are identical (tests/backtest/test_parallel.py).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from quantlib.backtest import native

# numba the lean way, before anything below imports it; the kernels named below are its
# dispatchers from now on (quantlib.backtest.native), so numba compiles calls to them
numba = native.numba()

import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.core import types as nbtypes  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from quantlib.backtest.kernels import _lf_finish, _lf_row, _lf_state, simulate_into  # noqa: E402
from quantlib.errors import BacktestError  # noqa: E402

__all__ = ["kernel_threads", "threads", "ma_cross_metrics", "sweep_metrics_fast",
           "balanced_blocks", "long_flat_metrics_kernel", "simulate_batch"]

_LOCAL = threading.local()


def _in_dask_worker() -> bool:
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def kernel_threads() -> int:
    """Threads the sweep kernels use now (see the module docstring).

    Examples
    --------
    >>> with threads(1):
    ...     kernel_threads()
    1
    """
    forced = getattr(_LOCAL, "n", None)
    if forced is not None:
        cap = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
        return max(1, min(int(forced), cap))
    if _in_dask_worker():
        return 1
    return max(1, numba.get_num_threads())


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run the sweep kernels on ``n`` threads in this block (``None``: the default).

    Examples
    --------
    >>> with threads(2):
    ...     kernel_threads() <= 2
    True
    """
    old = getattr(_LOCAL, "n", None)
    _LOCAL.n = n
    try:
        yield
    finally:
        _LOCAL.n = old


def balanced_blocks(n: int, target: int, workers: int) -> int:
    """Block width near ``target`` that splits ``n`` into a multiple of ``workers`` blocks
    of (nearly) equal width, so no thread waits on a short last block.

    Examples
    --------
    >>> balanced_blocks(200, 64, 2)
    50
    >>> balanced_blocks(10, 64, 2)
    5
    """
    nb = max(1, -(-n // max(1, target)))
    nb = -(-nb // workers) * workers
    return max(1, -(-n // nb))


def _dispatch(par: Any, ser: Any) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        n = kernel_threads()
        if n <= 1:
            return ser(*args)
        old = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            return par(*args)
        finally:
            numba.set_num_threads(old)
    return call


def _both(**opts: Any) -> Callable[[Callable[..., Any]], tuple[Any, Any]]:
    """A ``parallel=True`` and a serial compilation of one function.

    The serial one is compiled from a renamed copy (``<name>_serial``): numba's on-disk
    cache names its files by qualified name and line and keys them by signature and CPU
    only (not by ``parallel``), so the two versions of one function shared a cache entry
    and whichever loaded second ran the other's code (a "1 thread" run used every core,
    and a Dask worker's kernel added threads of its own).
    """
    def deco(fn: Callable[..., Any]) -> tuple[Any, Any]:
        ser = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_serial",
                                 fn.__defaults__, fn.__closure__)
        ser.__qualname__ = f"{fn.__qualname__}_serial"
        ser.__doc__ = fn.__doc__
        return (numba.njit(cache=True, nogil=True, parallel=True, **opts)(fn),
                numba.njit(cache=True, nogil=True, **opts)(ser))
    return deco


# ------------------------------------------------------------------ MA-crossover sweep
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _window_means(c: np.ndarray, k: np.ndarray, wins: np.ndarray, t: int, m: np.ndarray
                  ) -> None:
    """Means of every distinct window ending at session ``t`` (NaN: too few valid prices)."""
    c1, k1 = c[t + 1], k[t + 1]
    for w in range(wins.shape[0]):
        win = wins[w]
        j = max(t + 1 - win, 0)
        cj, kj = c[j], k[j]
        for i in range(c1.shape[0]):
            n = k1[i] - kj[i]
            mean = (c1[i] - cj[i]) / n
            m[w, i] = mean if n >= win else np.nan


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _lf_step(nw: float, held: float, r: float, fee: float, w: float, pk: float, md: float,
             s1: float, s2: float) -> tuple[float, float, float, float, float]:
    """One session of one long/flat backtest on scalars: the operations of
    :func:`~quantlib.backtest.kernels._lf_row` in the same order (identical floats)."""
    ret = (1.0 + held * r) * (1.0 - fee * abs(nw - held)) - 1.0
    w = w * (1.0 + ret)
    pk = max(pk, w)
    md = min(md, w / pk - 1.0)
    return w, pk, md, s1 + ret, s2 + ret * ret


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _ma_pair_tile(m: np.ndarray, f: int, s: int, rb: np.ndarray, t0: int, L: int,
                  reb: np.ndarray, fee: float, st: np.ndarray) -> None:
    """Advance one pair's state ``st`` (``(6, n)``: held, wealth, peak, max drawdown, sums
    of returns and squares) over sessions ``t0 .. t0 + L``; ``m`` holds the tile's window
    means ``(L, windows, n)``. Four sessions per pass over the assets: the state is loaded
    and stored once per pass (``+ 0.0`` keeps the stores unconditional: no masked stores),
    the means are read unconditionally (no masked loads), the asset loop vectorizes."""
    n = st.shape[1]
    H, W, PK, MD, S1, S2 = st[0], st[1], st[2], st[3], st[4], st[5]
    q = 0
    while q + 4 <= L:
        f0, f1, f2, f3 = m[q, f], m[q + 1, f], m[q + 2, f], m[q + 3, f]
        s0, s1_, s2_, s3 = m[q, s], m[q + 1, s], m[q + 2, s], m[q + 3, s]
        r0, r1, r2, r3 = rb[t0 + q], rb[t0 + q + 1], rb[t0 + q + 2], rb[t0 + q + 3]
        g0, g1, g2, g3 = reb[t0 + q], reb[t0 + q + 1], reb[t0 + q + 2], reb[t0 + q + 3]
        for i in range(n):
            h, w, pk, md, u, v = H[i], W[i], PK[i], MD[i], S1[i], S2[i]
            x0 = 1.0 if f0[i] > s0[i] else 0.0
            x1 = 1.0 if f1[i] > s1_[i] else 0.0
            x2 = 1.0 if f2[i] > s2_[i] else 0.0
            x3 = 1.0 if f3[i] > s3[i] else 0.0
            nw = x0 if g0 else h
            w, pk, md, u, v = _lf_step(nw, h, r0[i], fee, w, pk, md, u, v)
            h = nw
            nw = x1 if g1 else h
            w, pk, md, u, v = _lf_step(nw, h, r1[i], fee, w, pk, md, u, v)
            h = nw
            nw = x2 if g2 else h
            w, pk, md, u, v = _lf_step(nw, h, r2[i], fee, w, pk, md, u, v)
            h = nw
            nw = x3 if g3 else h
            w, pk, md, u, v = _lf_step(nw, h, r3[i], fee, w, pk, md, u, v)
            H[i] = nw + 0.0
            W[i] = w
            PK[i] = pk + 0.0
            MD[i] = md + 0.0
            S1[i] = u
            S2[i] = v
        q += 4
    while q < L:
        f0, s0, r0, g0 = m[q, f], m[q, s], rb[t0 + q], reb[t0 + q]
        for i in range(n):
            h = H[i]
            x0 = 1.0 if f0[i] > s0[i] else 0.0
            nw = x0 if g0 else h
            w, pk, md, u, v = _lf_step(nw, h, r0[i], fee, W[i], PK[i], MD[i], S1[i], S2[i])
            H[i] = nw + 0.0
            W[i] = w
            PK[i] = pk + 0.0
            MD[i] = md + 0.0
            S1[i] = u
            S2[i] = v
        q += 1


def _ma_cross_impl(c: np.ndarray, k: np.ndarray, wins: np.ndarray, fi: np.ndarray,
                   si: np.ndarray, r: np.ndarray, fee: float, ppy: float,
                   rebalance: np.ndarray, width: int) -> np.ndarray:
    T = c.shape[0] - 1
    N = c.shape[1]
    P = fi.shape[0]
    out = np.empty((P, N, 3))
    nb = (N + width - 1) // width
    for bi in numba.prange(nb):
        i0 = bi * width
        i1 = min(N, i0 + width)
        cb = np.ascontiguousarray(c[:, i0:i1])
        kb = np.ascontiguousarray(k[:, i0:i1])
        rb = np.ascontiguousarray(r[:, i0:i1])
        n = i1 - i0
        st = np.zeros((P, 6, n))
        st[:, 1] = 1.0
        st[:, 2] = 1.0
        # session tiles: the tile's window means (computed once, shared by every pair)
        # and one pair's state stay in the core's cache while the pairs take turns
        tile = max(4, min(64, 16384 // max(1, wins.shape[0] * n) * 4))
        m = np.full((tile, wins.shape[0], n), np.nan)
        for t0 in range(0, T, tile):
            L = min(tile, T - t0)
            for q in range(L):
                if rebalance[t0 + q]:
                    _window_means(cb, kb, wins, t0 + q, m[q])
            for p in range(P):
                _ma_pair_tile(m, fi[p], si[p], rb, t0, L, rebalance, fee, st[p])
        res = np.empty((P, n, 3))
        _lf_finish((st[:, 0], st[:, 1], st[:, 2], st[:, 3], st[:, 4], st[:, 5]), T, ppy, res)
        out[:, i0:i1] = res
    return out


_ma_cross_par, _ma_cross_ser = _both(error_model="numpy")(_ma_cross_impl)
_ma_cross = _dispatch(_ma_cross_par, _ma_cross_ser)


def ma_cross_metrics(c: np.ndarray, k: np.ndarray, fast: np.ndarray, slow: np.ndarray,
                     r: np.ndarray, fee: float, ppy: float, rebalance: np.ndarray,
                     width: int = 256) -> np.ndarray:
    """Long/flat MA-crossover backtests of every (fast, slow) pair and asset: ``(P, N, 3)``
    total return, max drawdown, Sharpe.

    ``c``/``k`` are ``(T + 1, N)`` cumulative sums (leading zero row) of the NaN-as-0 last
    known close and of its valid count; a window's mean is NaN (no position) until it
    holds ``window`` valid prices (as
    :func:`~quantlib.backtest.signals.rolling_mean_np`: same sums, same divisions, so
    identical positions). Each distinct window's mean is computed once per session and
    shared by every pair using it (20 windows for the 90 pairs of the bench, not 180).
    ``r`` is NaN-free; positions change on ``rebalance`` sessions only. Blocks of about
    ``width`` assets run in parallel on :func:`kernel_threads` threads; each block walks the
    sessions in tiles (the tile's window means, then every pair in turn over the tile, its
    state in cache, four sessions per vectorized pass over the assets).

    Examples
    --------
    >>> from quantlib.backtest.signals import zero_cumsum
    >>> close = np.array([[1.0], [2.0], [3.0], [2.0], [1.0]])
    >>> r = np.vstack([[0.0], close[1:] / close[:-1] - 1])
    >>> c, k = zero_cumsum(close), zero_cumsum(np.ones_like(close))
    >>> out = ma_cross_metrics(c, k, np.array([1]), np.array([2]), r, 0.0, 252.0,
    ...                        np.ones(5, bool))
    >>> round(float(out[0, 0, 0]), 6)  # long after sessions 1, 2: earns 3/2 - 1, then 2/3 - 1
    0.0
    """
    wins = np.unique(np.concatenate([fast, slow])).astype(np.int64)
    fi = np.searchsorted(wins, fast).astype(np.int64)
    si = np.searchsorted(wins, slow).astype(np.int64)
    w = balanced_blocks(c.shape[1], width, kernel_threads())
    return _ma_cross(np.ascontiguousarray(c, float), np.ascontiguousarray(k, float), wins, fi,
                     si, np.ascontiguousarray(r, float), float(fee), float(ppy),
                     np.asarray(rebalance, np.bool_), w)


def _long_flat_impl(pos: np.ndarray, r: np.ndarray, fee: float, ppy: float,
                    rebalance: np.ndarray) -> np.ndarray:
    P, T, N = pos.shape
    out = np.empty((P, N, 3))
    for p in numba.prange(P):
        st = _lf_state(1, N)
        for t in range(T):
            if rebalance[t]:
                _lf_row(pos[p, t], r[t], fee, st, 0)
            else:  # off the rebalance calendar the current positions (state 0) are held
                _lf_row(st[0][0], r[t], fee, st, 0)
        res = np.empty((1, N, 3))
        _lf_finish(st, T, ppy, res)
        out[p] = res[0]
    return out


_lf_par, _lf_ser = _both(error_model="numpy")(_long_flat_impl)
#: ``(P, N, 3)`` total return, max drawdown, Sharpe of ``(P, T, N)`` positions held from
#: each close against ``(T, N)`` NaN-free returns (one pass, no P&L array); positions change
#: only on ``rebalance`` sessions (``(T,)`` bool). Parameter sets run in parallel.
long_flat_metrics_kernel = _dispatch(_lf_par, _lf_ser)


# ------------------------------------------------------------------ metrics of many series
@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _mstep(x: float, w: float, pk: float, md: float, s1: float, s2: float
           ) -> tuple[float, float, float, float, float]:
    if np.isnan(x):
        x = 0.0
    w = w * (1.0 + x)
    pk = max(pk, w)
    md = min(md, w / pk - 1.0)
    return w, pk, md, s1 + x, s2 + x * x


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _metric_rows(src: np.ndarray, j0: int, T: int, st: np.ndarray) -> None:
    """Advance the state ``st`` (``(5, n)``: wealth, peak, max drawdown, sums of returns
    and squares) of columns ``j0 .. j0 + n`` over the ``T`` rows of C-ordered ``src``.
    Four rows per pass: the state is loaded and stored once per pass (``+ 0.0`` keeps
    the stores unconditional: no masked stores) and the column loop vectorizes."""
    n = st.shape[1]
    W, PK, MD, S1, S2 = st[0], st[1], st[2], st[3], st[4]
    t = 0
    while t + 4 <= T:
        r0, r1 = src[t, j0:j0 + n], src[t + 1, j0:j0 + n]
        r2, r3 = src[t + 2, j0:j0 + n], src[t + 3, j0:j0 + n]
        for j in range(n):
            w, pk, md, u, v = _mstep(r0[j], W[j], PK[j], MD[j], S1[j], S2[j])
            w, pk, md, u, v = _mstep(r1[j], w, pk, md, u, v)
            w, pk, md, u, v = _mstep(r2[j], w, pk, md, u, v)
            w, pk, md, u, v = _mstep(r3[j], w, pk, md, u, v)
            W[j] = w
            PK[j] = pk + 0.0
            MD[j] = md + 0.0
            S1[j] = u
            S2[j] = v
        t += 4
    while t < T:
        r0 = src[t, j0:j0 + n]
        for j in range(n):
            w, pk, md, u, v = _mstep(r0[j], W[j], PK[j], MD[j], S1[j], S2[j])
            W[j] = w
            PK[j] = pk + 0.0
            MD[j] = md + 0.0
            S1[j] = u
            S2[j] = v
        t += 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _metric_state(n: int) -> np.ndarray:
    st = np.zeros((5, n))
    st[0] = 1.0
    st[1] = 1.0
    return st


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _metric_finish(T: int, ppy: float, st: np.ndarray, out: np.ndarray, j0: int) -> None:
    for b in range(st.shape[1]):
        mean = st[3, b] / T
        var = (st[4, b] - st[3, b] * mean) / (T - 1)
        out[j0 + b, 0] = st[0, b] - 1.0
        out[j0 + b, 1] = st[2, b]
        out[j0 + b, 2] = mean / np.sqrt(var) * np.sqrt(ppy) if var > 0 else np.nan


def _metrics_rows_impl(r: np.ndarray, ppy: float, width: int) -> np.ndarray:
    """``r`` is ``(T, S)`` C-ordered: each block of (wide) columns streams the rows."""
    T, S = r.shape
    out = np.empty((S, 3))
    nb = (S + width - 1) // width
    for bi in numba.prange(nb):
        j0 = bi * width
        st = _metric_state(min(S, j0 + width) - j0)
        _metric_rows(r, j0, T, st)
        _metric_finish(T, ppy, st, out, j0)
    return out


def _vec_ptr(context: Any, builder: Any, aty: Any, arr: Any, i: Any, j: Any) -> Any:
    """LLVM pointer to ``arr[i, j]`` as a ``<4 x double>*`` (C-ordered 2-D float64)."""
    a = context.make_array(aty)(context, builder, arr)
    p = cgutils.get_item_pointer2(context, builder, a.data, cgutils.unpack_tuple(builder, a.shape, 2),
                                  cgutils.unpack_tuple(builder, a.strides, 2), "C", [i, j])
    return builder.bitcast(p, ir.VectorType(ir.DoubleType(), 4).as_pointer())


def _c2d(a: Any) -> bool:
    return (isinstance(a, nbtypes.Array) and a.ndim == 2 and a.layout == "C"
            and a.dtype == nbtypes.float64)


def _t4(builder: Any, rows: list[Any]) -> tuple[Any, ...]:
    """Transpose four ``<4 x double>`` rows in registers (eight shuffles): element ``b`` of
    the ``a``-th result is element ``a`` of ``rows[b]``."""
    def sh(x: Any, y: Any, m: list[int]) -> Any:
        return builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(ir.IntType(32), 4), m))
    t0, t1 = sh(rows[0], rows[1], [0, 4, 2, 6]), sh(rows[0], rows[1], [1, 5, 3, 7])
    t2, t3 = sh(rows[2], rows[3], [0, 4, 2, 6]), sh(rows[2], rows[3], [1, 5, 3, 7])
    return (sh(t0, t2, [0, 1, 4, 5]), sh(t1, t3, [0, 1, 4, 5]),
            sh(t0, t2, [2, 3, 6, 7]), sh(t1, t3, [2, 3, 6, 7]))


def _vload(context: Any, builder: Any, aty: Any, arr: Any, i: Any, j: Any) -> Any:
    return builder.load(_vec_ptr(context, builder, aty, arr, i, j), align=8)


def _vstep(builder: Any, x: Any, s: list[Any]) -> list[Any]:
    """:func:`_mstep` on four series at once, operation for operation (``np.isnan`` is
    ``fcmp uno``; numba's ``max(pk, w)`` is ``w > pk ? w : pk``, ``min`` likewise with
    ``<``): the same roundings, so the same bits."""
    vt = x.type
    zero, one = ir.Constant(vt, [0.0] * 4), ir.Constant(vt, [1.0] * 4)
    w, pk, md, s1, s2 = s
    x = builder.select(builder.fcmp_unordered("uno", x, x), zero, x)
    w = builder.fmul(w, builder.fadd(one, x))
    pk = builder.select(builder.fcmp_ordered(">", w, pk), w, pk)
    y = builder.fsub(builder.fdiv(w, pk), one)
    md = builder.select(builder.fcmp_ordered("<", y, md), y, md)
    return [w, pk, md, builder.fadd(s1, x), builder.fadd(s2, builder.fmul(x, x))]


#: sessions ahead of the current read that :data:`_cols4` asks the cache for (512 bytes
#: of each series; a hint, measured a little better than none on 2 threads, loaded box)
_AHEAD = 64


def _prefetch(builder: Any, p: Any) -> None:
    """Ask for the cache line at ``p`` (``llvm.prefetch``: no value, no fault)."""
    i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch")
    builder.call(fn, [builder.bitcast(p, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                      ir.Constant(i32, 1)])


def _cols4_typer(typingctx: Any, src: Any, i: Any, T: Any, st: Any, j: Any) -> Any:
    """Advance the state ``st[:, j:j + 4]`` (as :func:`_metric_rows`) over sessions
    ``0 .. T`` (a multiple of 4) of series ``src[i:i + 4]``: per four sessions, four vector
    loads, a 4x4 transpose in registers (:func:`_t4`) and four :func:`_vstep`, the state
    held in registers from the first session to the last (no buffer), and a prefetch of
    each series :data:`_AHEAD` sessions on (within the row). Typing of the numba intrinsic :data:`_cols4`."""
    if not (_c2d(src) and _c2d(st)):
        return None
    sig = nbtypes.void(src, i, T, st, j)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        s, i, T, d, j = args
        vt = ir.VectorType(ir.DoubleType(), 4)
        cells = [cgutils.alloca_once(builder, vt) for _ in range(5)]
        rows = [builder.add(i, ir.Constant(i.type, k)) for k in range(4)]
        for k in range(5):
            builder.store(_vload(context, builder, sig.args[3], d, ir.Constant(j.type, k), j),
                          cells[k])
        with cgutils.for_range_slice(builder, ir.Constant(T.type, 0), T,
                                     ir.Constant(T.type, 4), intp=T.type) as (t, _):
            x = [_vload(context, builder, sig.args[0], s, r, t) for r in rows]
            ahead = builder.add(t, ir.Constant(t.type, _AHEAD))
            ahead = builder.select(builder.icmp_signed("<", ahead, T), ahead, t)
            for r in rows:
                _prefetch(builder, _vec_ptr(context, builder, sig.args[0], s, r, ahead))
            state = [builder.load(c) for c in cells]
            for v in _t4(builder, x):
                state = _vstep(builder, v, state)
            for c, v in zip(cells, state, strict=True):
                builder.store(v, c)
        for k in range(5):
            builder.store(builder.load(cells[k]), _vec_ptr(
                context, builder, sig.args[3], d, ir.Constant(j.type, k), j), align=8)
        return context.get_dummy_value()
    return sig, codegen


_cols4: Any = intrinsic(_cols4_typer)

@numba.njit(cache=True, nogil=True, error_model="numpy")
def _metric_cols(rt: np.ndarray, j0: int, T: int, st: np.ndarray) -> None:
    """Advance the state ``st`` (as :func:`_metric_rows`) of series ``j0 .. j0 + n`` of
    ``(S, T)`` C-ordered ``rt``: four series at a time in vector registers
    (:func:`_cols4`) over the sessions up to a multiple of four, then the remaining
    sessions (and series past a multiple of four) one by one with :func:`_mstep`."""
    n = st.shape[1]
    T4 = T - T % 4
    j = 0
    while j + 4 <= n:
        _cols4(rt, j0 + j, T4, st, j)
        j += 4
    for b in range(n):
        w, pk, md, u, v = st[0, b], st[1, b], st[2, b], st[3, b], st[4, b]
        for t in range(T4 if b < j else 0, T):
            w, pk, md, u, v = _mstep(rt[j0 + b, t], w, pk, md, u, v)
        st[0, b], st[1, b], st[2, b], st[3, b], st[4, b] = w, pk, md, u, v


def _metrics_cols_impl(rt: np.ndarray, ppy: float, width: int) -> np.ndarray:
    """``rt`` is ``(S, T)`` C-ordered (a column-major ``(T, S)`` array transposed): each
    block of ``width`` series is read series by series, four at a time, each series a
    contiguous run (:func:`_metric_cols`; the same operations as the row-major kernel in
    the same order for each series: identical results)."""
    S, T = rt.shape
    out = np.empty((S, 3))
    nb = (S + width - 1) // width
    for bi in numba.prange(nb):
        j0 = bi * width
        st = _metric_state(min(S, j0 + width) - j0)
        _metric_cols(rt, j0, T, st)
        _metric_finish(T, ppy, st, out, j0)
    return out


_rows_par, _rows_ser = _both(error_model="numpy")(_metrics_rows_impl)
_cols_par, _cols_ser = _both(error_model="numpy")(_metrics_cols_impl)
_metrics_rows = _dispatch(_rows_par, _rows_ser)
_metrics_cols = _dispatch(_cols_par, _cols_ser)


def sweep_metrics_fast(r: np.ndarray, ppy: float = 252.0) -> np.ndarray:
    """Total return, max drawdown, Sharpe of each column of ``(T, S)`` returns (NaN as 0),
    ``(S, 3)``, reading the array once in whichever memory layout it has (no copy).

    Examples
    --------
    >>> r = np.array([[0.1, 0.0], [-0.1, 0.01]])
    >>> a, b = sweep_metrics_fast(r), sweep_metrics_fast(np.asfortranarray(r))
    >>> bool(np.array_equal(a, b)), round(float(a[0, 0]), 6)
    (True, -0.01)
    """
    r = np.asarray(r, dtype=float)
    if r.ndim != 2:
        raise BacktestError("sweep metrics need a 2-D (date, series) return array",
                            found=f"{r.ndim}-D, shape {r.shape}",
                            fix="pass returns[:, None] for one series")
    n = kernel_threads()
    if r.flags.f_contiguous and not r.flags.c_contiguous:
        return _metrics_cols(r.T, float(ppy), balanced_blocks(r.shape[1], 32, n))
    r = np.ascontiguousarray(r)
    return _metrics_rows(r, float(ppy), balanced_blocks(r.shape[1], 4096, n))


# ------------------------------------------------------------------ portfolio sweeps
def _sim_batch_impl(r_pre: np.ndarray, r_post: np.ndarray, targets: np.ndarray,
                    target_row: np.ndarray, rebalance: np.ndarray, tradable: np.ndarray,
                    lin: np.ndarray, impact: np.ndarray, borrow: float,
                    delist_row: np.ndarray, w0: np.ndarray, has_post: bool,
                    force_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    P = targets.shape[0]
    T, N = r_pre.shape
    nets = np.empty((P, T))
    turns = np.empty((P, T))
    for p in numba.prange(P):
        gross, net, costs, turn = np.empty(T), np.empty(T), np.empty(T), np.empty(T)
        simulate_into(r_pre, r_post, targets[p], target_row, rebalance, tradable, lin, impact,
                      borrow, delist_row, w0, has_post, force_rows, np.empty((0, N)),
                      np.full(T, -1, np.int64), gross, net, costs, turn, np.empty((T, 3)))
        nets[p] = net
        turns[p] = turn
    return nets, turns


_sim_par, _sim_ser = _both()(_sim_batch_impl)
_sim_batch = _dispatch(_sim_par, _sim_ser)


def simulate_batch(targets: np.ndarray, args: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Daily net returns and turnover ``(P, T)`` of ``P`` portfolios sharing everything but
    their rebalance-row targets ``(P, R, N)``; ``args`` are
    :func:`~quantlib.backtest.engine.kernel_args` of any one of them (its targets are
    replaced). Parameter sets run in parallel, no weights kept: one
    :func:`~quantlib.backtest.kernels.simulate_kernel` per set, same numbers.

    Examples
    --------
    >>> from quantlib.backtest.kernels import simulate_kernel
    >>> T, N = 30, 4
    >>> r = np.random.default_rng(1).normal(0, 0.01, (T, N))
    >>> tg = np.random.default_rng(2).random((3, T, N)) / N
    >>> args = (r, np.zeros((T, N)), tg[0], np.arange(T), np.ones(T, bool),
    ...         np.ones((T, N)), np.full((T, N), 1e-3), np.zeros((T, N)), 0.0,
    ...         np.full(N, -1), np.zeros(N), False, np.zeros(T, bool))
    >>> nets, _ = simulate_batch(tg, args)
    >>> one = simulate_kernel(*args[:2], tg[2], *args[3:])[2]
    >>> bool(np.array_equal(nets[2], one))
    True
    """
    (r_pre, r_post, _, target_row, rebalance, tradable, lin, impact, borrow, delist_row, w0,
     has_post, force_rows) = args
    return _sim_batch(r_pre, r_post, np.ascontiguousarray(targets, float), target_row,
                      rebalance, tradable, lin, impact, float(borrow), delist_row, w0,
                      bool(has_post), np.asarray(force_rows, np.bool_))
