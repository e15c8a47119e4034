"""Contract test of every catalog entry against a real Icechunk store and the sandbox truth."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import yaml

import quantlib
from quantlib import calendars
from quantlib.catalog import CATALOG_FILE, ENTRIES, open_catalog
from quantlib.errors import CatalogError
from quantlib.markets import DEFAULT_MARKETS
from quantlib.sandbox import generate
from quantlib.store import CuratedStore

START, END = "2025-03-03", "2025-07-31"


@pytest.fixture(scope="module")
def truth():
    return generate(n_assets=6, years=1, seed=11)


@pytest.fixture(scope="module")
def store(truth, tmp_path_factory, two_version_store):
    return two_version_store(truth, str(tmp_path_factory.mktemp("store")), 2.0)


def _check_prices(ds, truth):
    p = truth.prices[(truth.prices["date"] >= START) & (truth.prices["date"] <= END)]
    want = p.set_index(["date", "asset_id"])["close"].sort_index()
    got = ds["close"].to_series().dropna().sort_index()
    np.testing.assert_array_equal(got.index.to_numpy(), want.index.to_numpy())
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    vol = ds["volume"].to_series().dropna().sort_index()
    np.testing.assert_array_equal(vol.to_numpy(), p.set_index(["date", "asset_id"])
                                  ["volume"].sort_index().to_numpy())
    r = ds["returns"].values
    assert np.isfinite(r).sum() > 0.9 * np.isfinite(ds["close"].values).sum()
    assert np.array_equal(np.isfinite(ds["returns_base"].values), np.isfinite(r))


def _check_fundamentals(ds, truth):
    # independent reference for each cell: rows known by the asset's own decision time,
    # latest period, then that period's latest revision
    st = truth.statements
    market = truth.assets.set_index("asset_id")["market"]
    dates = pd.DatetimeIndex(ds["date"].values)
    rng = np.random.default_rng(1)
    for _ in range(40):
        a = str(rng.choice(ds["asset"].values))
        d = dates[rng.integers(len(dates))]
        t = calendars.decision_time(pd.DatetimeIndex([d]), market[a])[0]
        rows = st[(st["asset_id"] == a) & (st["field"] == "revenue") & (st["known_at"] <= t)]
        got = ds["revenue"].sel(asset=a, date=d).item()
        if rows.empty:
            assert np.isnan(got)
            continue
        latest = rows[rows["period_end"] == rows["period_end"].max()]
        assert got == latest.sort_values("known_at")["value"].iloc[-1]
        assert ds["period_end"].sel(asset=a, date=d).values >= rows["period_end"].max()


def _check_universe(ds, truth):
    a = truth.assets.set_index("asset_id").reindex(ds["asset"].values)
    dates = pd.DatetimeIndex(ds["date"].values).to_numpy()[:, None]
    listed = pd.DatetimeIndex(a["listed"]).to_numpy()[None, :]
    delisted = pd.DatetimeIndex(a["delisted"]).to_numpy()[None, :]
    want = (dates >= listed) & (pd.isna(delisted) | (dates <= delisted))
    np.testing.assert_array_equal(ds["in_universe"].values, want)


def _check_fx(ds, truth):
    krw = truth.fx[truth.fx["currency"] == "KRW"].sort_values("known_at")
    dec = calendars.decision_time(pd.DatetimeIndex(ds["date"].values), "KR")
    want = pd.merge_asof(pd.DataFrame({"t": dec}), krw.rename(columns={"known_at": "t"}),
                         on="t")["rate"].to_numpy()
    np.testing.assert_array_equal(ds["rate"].sel(currency="KRW").values, want)
    assert (ds["rate"].sel(currency="USD").values == 1.0).all()


CHECKS = {"prices": _check_prices, "fundamentals": _check_fundamentals,
          "universe": _check_universe, "fx": _check_fx}
DTYPES = {"in_universe": np.bool_, "period_end": np.dtype("datetime64[ns]")}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_entry_contract(entry, store, truth):
    declared = yaml.safe_load(CATALOG_FILE.read_text())["entries"][entry]["metadata"]
    variables, dims = declared["variables"], declared["dims"]     # the hand-written file
    cat = quantlib.open_catalog(store, start=START, end=END, snapshot="v1")
    ds = cat[entry].read()
    assert sorted(ds.data_vars) == sorted(variables)
    for v in variables:
        assert ds[v].dims == tuple(dims), v
        assert isinstance(ds[v].data, da.Array), f"{entry}.{v} is not dask-backed"
        assert ds[v].dtype == DTYPES.get(v, np.float64), v
    dates = pd.DatetimeIndex(ds["date"].values)
    assert dates[0] == pd.Timestamp(START) and dates[-1] <= pd.Timestamp(END)
    assert dates.equals(calendars.global_sessions(list(DEFAULT_MARKETS), START, END))
    if "asset" in dims:
        for c in ("market", "currency", "sector", "symbol"):
            assert c in ds.coords and ds[c].dims == ("asset",)
            assert not isinstance(ds[c].data, da.Array)
        a = truth.assets.set_index("asset_id").reindex(ds["asset"].values)
        assert ds["market"].values.tolist() == a["market"].tolist()
        assert ds["sector"].values.tolist() == a["sector"].tolist()
        # latest ticker known at the panel's end (a later change is not shown)
        known = truth.symbols[truth.symbols["valid_from"] <= END]
        sym = known.sort_values("valid_from").groupby("asset_id")["symbol"].last()
        assert ds["symbol"].values.tolist() == sym.reindex(ds["asset"].values).tolist()
    assert ds.attrs["snapshot_id"] == CuratedStore(store).resolve("v1")
    CHECKS[entry](ds.load(), truth)


def test_snapshot_pins_a_version_and_latest_is_default(store, truth):
    cat = open_catalog(store, markets=["US"], start=START, end=END)
    latest = cat["prices"].read()
    v1 = cat["prices"].read(snapshot="v1")
    ratio = (latest["close"] / v1["close"]).values
    assert np.nanmin(ratio) == 2.0 and np.nanmax(ratio) == 2.0
    assert latest.attrs["snapshot_id"] == CuratedStore(store).resolve("v2")
    assert set(latest["market"].values) == {"US"}


def test_decision_clock_parameter_shifts_us_bars_under_kr_clock(store):
    own = open_catalog(store, markets=["KR", "US"], start=START, end=END)["prices"].read()
    kr = open_catalog(store, markets=["KR", "US"], start=START, end=END,
                      decision_clock="KR")["prices"].read()
    us_cols = own["market"].values == "US"
    kr_cols = ~us_cols
    a = own["close"].values[:, us_cols]
    b = kr["close"].values[:, us_cols]
    # each US bar of date i is seen at the KR decision of the next global date
    np.testing.assert_array_equal(b[1:], a[:-1])
    np.testing.assert_array_equal(kr["close"].values[:, kr_cols], own["close"].values[:, kr_cols])


def test_store_defaults_to_config(store, monkeypatch):
    monkeypatch.setenv("QUANTLIB_STORE", store)
    ds = open_catalog(markets=["EU"], start=START, end=END)["universe"].read()
    assert set(ds["market"].values) == {"EU"} and ds["in_universe"].values.any()


def test_hand_written_catalog_file_matches_the_code_and_holds_no_credentials():
    """catalogs/quantlib.yaml is the data team's file (written by hand, comments and
    descriptions theirs); what the code relies on must agree with it."""
    from quantlib.catalog import PARAMETERS
    from quantlib.catalog.readers import READERS as CATALOG_READERS
    from quantlib.markets import DEFAULT_MARKETS, STATEMENT_FIELDS

    text = CATALOG_FILE.read_text()
    doc = yaml.safe_load(text)
    assert doc["version"] == 2
    # parameters: the names, defaults and the Intake "params:" indirection of the code
    params = doc["user_parameters"]
    assert list(params) == list(PARAMETERS)
    assert {k: v["default"] for k, v in params.items()} == {
        k: default for k, (default, _) in PARAMETERS.items()}
    assert params["markets"]["default"] == list(DEFAULT_MARKETS)
    assert all(v["description"].strip() for v in params.values())
    # entries: one per catalog reader, declared variables/dims are the readers' (the entry
    # contract test reads each entry and compares with these declarations)
    entries = doc["entries"]
    assert sorted(entries) == sorted(CATALOG_READERS) == sorted(doc["aliases"])
    for name, entry in entries.items():
        module, cls = entry["reader"].split(":")
        assert module == "quantlib.catalog.readers" and CATALOG_READERS[name].__name__ == cls
        assert entry["kwargs"] == {"params": {p: "{" + p + "}" for p in PARAMETERS}}
        assert entry["output_instance"] == "xarray:Dataset"
        _, _, variables, dims = ENTRIES[name]
        assert entry["metadata"]["variables"] == variables, name
        assert entry["metadata"]["dims"] == dims, name
        assert entry["metadata"]["description"].strip()
    assert entries["fundamentals"]["metadata"]["variables"] == [*STATEMENT_FIELDS, "period_end"]
    for word in ("secret", "password", "aws_access_key", "api_key", "token:"):
        assert word not in text.lower()


@pytest.mark.parametrize("params, field, words", [
    (dict(markets=["KR", "CH"]), "markets", "catalog parameter markets must be a list of KR, US,"
     " EU, JP; found 'CH'"),
    (dict(decision_clock="London"), "decision_clock", "must be one of own, KR, US, EU"),
    (dict(start="2025-13-01"), "start", "catalog parameter start must be a date YYYY-MM-DD"),
    (dict(start="2025-05-01", end="2025-04-01"), "start", "start must be on or before end"),
    (dict(snapshot=3), "snapshot", "a tag, a snapshot id or 'latest'"),
    (dict(decision_clok="US"), "decision_clok", "catalog parameters must be among"),
])
def test_wrong_parameters_raise_catalog_error_naming_the_fix(store, params, field, words):
    with pytest.raises(CatalogError) as info:
        open_catalog(store, **params)
    assert info.value.context["field"] == field
    assert words in str(info.value) and "Fix:" in str(info.value)


def test_errors_found_at_read_time_name_the_parameter(store, tmp_path, frames):
    cat = open_catalog(store, start=START, end=END)
    with pytest.raises(CatalogError, match=r"snapshot must name a data version; found 'nope'"
                       r".*Fix: pass snapshot='latest'") as info:
        cat["prices"].read(snapshot="nope")
    assert info.value.context["field"] == "snapshot"
    with pytest.raises(CatalogError, match="start must be a date") as info:
        cat["universe"].read(start="soon")
    only_us = str(tmp_path / "us")
    us = generate(n_assets=5, years=1, seed=2, markets=("US",))
    CuratedStore(only_us).commit({k: getattr(us, k) for k in frames}, message="US only")
    with pytest.raises(CatalogError, match=r"markets must name markets in the store; found "
                       r"\['KR', 'EU'\] \(store has \['US'\]\).*Fix: pass markets=\['US'\]"):
        open_catalog(only_us)["universe"].read()


def test_credentials_in_store_url_are_refused():
    with pytest.raises(CatalogError, match=r"without credentials; found 's3://\*\*\*@bucket/q'"):
        open_catalog("s3://AKIA123:hunter2@bucket/q")


@pytest.mark.parametrize("clock", ["own", "US"])
def test_store_panels_and_canonical_frames_build_identical_prices(store, truth, clock):
    from quantlib import pit

    st = CuratedStore(store)
    panels = {m: st.open_prices(m, "v1") for m in DEFAULT_MARKETS}
    kw = dict(start=START, end=END, decision_clock=clock, symbols=truth.symbols)
    from_store = pit.build_prices(panels, truth.assets, st.open_fx("v1"), **kw)
    from_frames = pit.build_prices(truth.prices, truth.assets, truth.fx,
                                   corporate_actions=truth.corporate_actions, **kw)
    for v in from_frames.data_vars:
        np.testing.assert_array_equal(from_store[v].values, from_frames[v].values, err_msg=v)
    assert np.isfinite(from_frames["returns_base"].values).sum() > 100
