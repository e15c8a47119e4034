"""The catalog reads lazily: opening reads no panel chunk, a variable reads only its inputs.

Chunk reads are counted where the store serves them: every ``get`` of a key under
``<array>/c/`` on the real Icechunk store, and every chunk
:class:`~quantlib.store.chunkread.ChunkedArray` looks up in the repository directly (its
file read, or, where none is stored because it is all fill value, e.g. a ``split``
chunk without a split, filled in), so the assertions are about what was actually read.
"""

from __future__ import annotations

import icechunk
import numpy as np
import pytest

import quantlib
from quantlib import pit
from quantlib.backtest.engine import data_fingerprint
from quantlib.markets import DEFAULT_MARKETS
from quantlib.sandbox import generate
from quantlib.store import CuratedStore
from quantlib.store.chunkread import ChunkedArray

START, END = "2025-03-03", "2025-07-31"
COORDS = ("date", "asset", "currency")


@pytest.fixture(scope="module")
def truth():
    return generate(n_assets=6, years=1, seed=5)


@pytest.fixture(scope="module")
def store(truth, tmp_path_factory, two_version_store):
    return two_version_store(truth, str(tmp_path_factory.mktemp("lazy-store")), 3.0)


@pytest.fixture
def reads(monkeypatch):
    """Chunk reads per stored array (``prices/US/close``: n), counted on the store."""
    counts: dict[str, int] = {}
    original = icechunk.IcechunkStore.get

    async def get(self, key, *args, **kwargs):
        if "/c/" in key:
            name = key.split("/c/")[0]
            counts[name] = counts.get(name, 0) + 1
        return await original(self, key, *args, **kwargs)

    direct = ChunkedArray._jobs

    def jobs(self, sel):
        if self._chunk_refs() is None:      # fetched through store.get: counted there
            yield from direct(self, sel)
            return
        for job in direct(self, sel):
            counts[self.path] = counts.get(self.path, 0) + 1
            yield job

    monkeypatch.setattr(icechunk.IcechunkStore, "get", get)
    monkeypatch.setattr(ChunkedArray, "_jobs", jobs)
    return counts


def _panel_reads(counts: dict[str, int]) -> dict[str, int]:
    """Reads of the price panels' data variables (coordinates left out)."""
    return {k: v for k, v in counts.items()
            if k.startswith("prices/") and k.rsplit("/", 1)[-1] not in COORDS}


def test_open_and_read_touch_no_price_chunk(store, reads):
    cat = quantlib.open_catalog(store, start=START, end=END)
    assert reads == {}                               # opening the catalog reads nothing
    ds = cat["prices"].read()
    assert _panel_reads(reads) == {}                 # the dataset is a graph, not data
    # one block per market (each holds fewer than 512 assets), every date in it
    assert ds["close"].data.npartitions == len(DEFAULT_MARKETS)
    assert ds["close"].data.chunks[0] == (ds.sizes["date"],)


@pytest.mark.parametrize(("var", "inputs"), [
    ("close", {"close", "known_at"}),
    ("open", {"open", "close", "known_at"}),
    ("returns", {"close", "known_at", "split", "dividend"}),
    ("fx_rate", set()),
])
def test_one_variable_reads_only_its_stored_inputs(store, reads, var, inputs):
    ds = quantlib.open_catalog(store, start=START, end=END)["prices"].read()
    assert ds[var].values.shape == ds[var].shape
    got = _panel_reads(reads)
    assert {k.rsplit("/", 1)[-1] for k in got} == inputs
    assert {k.split("/")[1] for k in got} == (set(DEFAULT_MARKETS) if inputs else set())


def test_one_market_reads_only_that_markets_panel(store, reads):
    ds = quantlib.open_catalog(store, markets=["US"], start=START, end=END)["prices"].read()
    assert np.isfinite(ds["close"].values).any()
    assert set(_panel_reads(reads)) == {"prices/US/close", "prices/US/known_at"}


@pytest.mark.parametrize("clock", ["own", "KR"])
def test_lazy_read_equals_the_eager_build_cell_for_cell(store, truth, clock):
    st = CuratedStore(store)
    panels = {m: st.open_prices(m, "v1").load() for m in DEFAULT_MARKETS}
    kw = dict(start=START, end=END, decision_clock=clock, symbols=truth.symbols)
    eager = pit.build_prices(panels, truth.assets, st.open_fx("v1"), **kw)
    lazy = quantlib.open_catalog(store, snapshot="v1", decision_clock=clock)["prices"].read(
        start=START, end=END)
    small = pit.build_prices_lazy(panels, truth.assets, st.open_fx("v1"), block_assets=2, **kw)
    per_market = [int((eager["market"].values == m).sum()) for m in DEFAULT_MARKETS]
    # blocks of 2 assets never span two markets
    assert small["close"].data.npartitions == sum((n + 1) // 2 for n in per_market)
    for v in eager.data_vars:
        np.testing.assert_array_equal(lazy[v].values, eager[v].values, err_msg=v)
        np.testing.assert_array_equal(small[v].values, eager[v].values, err_msg=v)
        assert lazy[v].attrs == eager[v].attrs
    assert np.isfinite(eager["returns_base"].values).sum() > 100
    for c in eager.coords:
        np.testing.assert_array_equal(lazy[c].values, eager[c].values)


def test_graph_names_follow_the_snapshot(store):
    def read(snapshot):
        return quantlib.load_dataset(store, snapshot=snapshot, fundamentals=False,
                                     start=START, end=END)

    v1, v1_again, v2 = read("v1"), read("v1"), read("v2")
    assert data_fingerprint(v1) == data_fingerprint(v1_again)
    assert data_fingerprint(v1) != data_fingerprint(v2)
    ratio = v2["close"].values / v1["close"].values
    assert np.nanmin(ratio) == pytest.approx(3.0) and np.nanmax(ratio) == pytest.approx(3.0)


@pytest.mark.parametrize("seed", range(5))
def test_placement_equals_the_kernels_restamp_and_scatter(seed):
    """Bars known late (landing on a later row, over another bar), early, never, or after
    the last date: the fast placement puts the same value in every cell."""
    from quantlib.pit import kernels as K
    from quantlib.pit.lazy import Placement

    rng = np.random.default_rng(seed)
    n, w = 60, 7
    dec = np.cumsum(rng.integers(5, 15, n)).astype(np.int64) * 10
    hint = np.sort(rng.choice(n, 45, replace=False))
    known = dec[hint][:, None] - rng.integers(0, 5, (45, w))          # on time
    late = rng.random((45, w)) < 0.2
    known = np.where(late, dec[np.minimum(hint + rng.integers(1, 4, 45), n - 1)][:, None]
                     + rng.integers(-3, 3, (45, w)), known)
    known = np.where(rng.random((45, w)) < 0.05, dec[-1] + 1, known)   # after the end
    known = np.where(rng.random((45, w)) < 0.1, K.NAT, known)
    known[3, :] = dec[0] - 100                                         # earlier than its row
    values = rng.normal(size=(45, w))
    want = K.scatter_rows(values, K.restamp_index(known, dec[:, None], np.zeros(w, int)), n)
    got = Placement(known, hint, dec).scatter(values)
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(want).sum() > 100


def test_lazy_graph_survives_pickling_for_dask_workers(store):
    """A worker of a distributed cluster gets the graph pickled: it reads the same cells."""
    import cloudpickle

    ds = quantlib.open_catalog(store, markets=["US"], start=START, end=END)["prices"].read()
    for var in ("close", "returns_base"):
        shipped = cloudpickle.loads(cloudpickle.dumps(ds[var].data))
        np.testing.assert_array_equal(np.asarray(shipped), ds[var].values)


def test_a_variable_used_twice_is_read_once(store, reads):
    """The dataset keeps computed blocks: a second use reads nothing, gets the same
    values, and owns them (changing one use's array leaves the next one intact)."""
    ds = quantlib.open_catalog(store, markets=["US"], start=START, end=END)["prices"].read()
    first = ds["close"].values
    once = dict(_panel_reads(reads))
    assert set(once) == {"prices/US/close", "prices/US/known_at"}
    first[:] = -1.0
    again = ds["close"].values
    assert _panel_reads(reads) == once
    assert np.isfinite(again).any() and not (again == -1.0).any()
    returns = ds["returns"].values                     # another variable: its own reads
    assert _panel_reads(reads)["prices/US/split"] >= 1
    np.testing.assert_array_equal(ds["returns"].values, returns)


def test_without_a_cache_every_use_reads_the_store(store, truth, reads):
    st = CuratedStore(store)
    panels = {"US": st.open_prices("US", "v1")}
    ds = pit.build_prices_lazy(panels, truth.assets, st.open_fx("v1"), markets=["US"],
                               start=START, end=END, cache_bytes=0)
    first = ds["close"].values
    n = _panel_reads(reads)["prices/US/close"]
    np.testing.assert_array_equal(ds["close"].values, first)
    assert _panel_reads(reads)["prices/US/close"] == 2 * n
