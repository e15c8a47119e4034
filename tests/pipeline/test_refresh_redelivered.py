"""A re-delivered file is read only for what changed (issue #12: a refresh standardizes
only new or changed rows), and nothing it carries is lost.

The EU vendor re-delivers its month file every session with one more day; a whole
reference table is re-sent when one row is added. The incremental refresh standardizes
the rows the last published version lacked (a new day, a corrected bar, an added
action) and leaves the rest, already stored, unread: counted in rows, not seconds.
"""

from __future__ import annotations

import hashlib
import tempfile

import numpy as np
import pandas as pd

from quantlib.pipeline import refresh
from quantlib.raw import RawZone
from quantlib.sandbox import start_sandbox
from quantlib.standardize.delta import read_changed
from quantlib.store import CuratedStore

_CA = "ISIN;ExDate;Type;Value;AnnouncedAt"


def _rewrite(path, data: bytes) -> None:
    """Replace a vendor file and its sidecar, as the vendor does."""
    path.write_bytes(data)
    rows = data.count(b"\n") - 1
    (path.parent / (path.name + ".sha256")).write_text(
        f"{hashlib.sha256(data).hexdigest()} {rows}\n")


def test_redelivered_month_file_standardizes_only_the_new_day_and_the_correction(tmp_path):
    store = str(tmp_path / "s")
    with start_sandbox(n_assets=8, years=0.25, seed=3, end="2024-03-26", markets=("EU",),
                       write_state=False) as sb:
        first = refresh(store, connection=sb.connection(), markets=["EU"])
        sb.advance("2024-03-27")                 # the month file comes again, one day more
        month = sb.root / "eu" / "prices" / "prices_202403.csv"
        lines = month.read_bytes().split(b"\n")
        cells = lines[1].split(b";")             # a bar of an earlier day, corrected
        asset, day = cells[0].decode(), pd.to_datetime(cells[2].decode(), format="%d.%m.%Y")
        assert day < pd.Timestamp("2024-03-27")
        cells[6] = cells[5]                      # close := low
        lines[1] = b";".join(cells)
        _rewrite(month, b"\n".join(lines))
        new_day = sum(1 for line in lines if b";27.03.2024;" in line)
        total = sum(1 for line in lines[1:] if line)
        second = refresh(store, connection=sb.connection(), markets=["EU"])
    rows = second.per_market["EU"]["rows"]
    assert second.mode == "incremental" and second.snapshot_id
    assert new_day >= 5 and total > 10 * new_day
    # the month's unchanged bars were not read again; the new day and the correction were
    assert rows["held"] == total - new_day - 1
    st = CuratedStore(store)
    px = st.open_prices("EU")
    low = float(cells[5].decode().replace(",", "."))
    assert float(px.sel(asset=asset, date=day)["close"]) == low
    assert float(st.open_prices("EU", first.snapshot_id).sel(asset=asset, date=day)[
        "close"]) != low
    assert np.isfinite(px.sel(date=pd.Timestamp("2024-03-27"))["close"].values).sum() == new_day
    # the manifest records the re-delivery, published
    m = RawZone(store).manifest()
    hit = m[(m["file"] == "eu/prices/prices_202403.csv") & (m["status"] == "published")]
    assert hit["sha256"].nunique() == 2


def _table(raw: RawZone, lines: list[str], published: bool):
    data = ("\n".join([_CA, *lines]) + "\n").encode()
    d = raw.put(data, source="ftp-eu", market="EU", file="eu/corporate_actions.csv",
                fetch_id="f", fmt="eu-ftp-csv", rows=len(lines))
    if published:
        raw.record([d], status="published")
    return d


_SAP1 = "DE0007164600;01.03.2024;DIVIDEND;2,2;2024-02-20T08:00:00+01:00"
_SAP2 = "DE0007164600;01.06.2024;DIVIDEND;2,3;2024-05-20T08:00:00+02:00"
_BMW1 = "DE0005190003;15.05.2024;SPLIT;2;2024-05-02T08:00:00+02:00"
_VOW1 = "DE0007664039;10.05.2024;DIVIDEND;8,7;2024-04-10T08:00:00+02:00"


def test_a_table_with_an_added_row_is_read_for_that_asset_only():
    raw = RawZone(tempfile.mkdtemp())
    _table(raw, [_SAP1, _SAP2, _VOW1], published=True)
    out = read_changed([_table(raw, [_SAP1, _BMW1, _SAP2, _VOW1], published=False)], raw)
    ca = out.batch.corporate_actions
    assert out.skipped == 3                      # SAP's and VOW's rows: not read again
    assert ca["asset_id"].tolist() == ["DE0005190003"] and ca["row"].tolist() == [2]
    assert [d.rows for d in out.read] == [1]     # the batch reconciles with what was read


def test_a_table_with_an_edited_row_is_read_for_every_row_of_that_asset():
    raw = RawZone(tempfile.mkdtemp())
    _table(raw, [_SAP1, _SAP2, _VOW1], published=True)
    edited = _SAP2.replace("2,3", "2,4")
    out = read_changed([_table(raw, [_SAP1, edited, _VOW1], published=False)], raw)
    ca = out.batch.corporate_actions
    assert out.skipped == 1                      # VOW's row only
    # SAP's table rows whole (the upsert replaces an asset's stored rows by them)
    assert ca["value"].tolist() == [2.2, 2.4] and ca["row"].tolist() == [1, 2]


def test_a_table_with_a_removed_row_is_read_for_the_rest_of_that_asset():
    raw = RawZone(tempfile.mkdtemp())
    _table(raw, [_SAP1, _SAP2, _VOW1], published=True)
    out = read_changed([_table(raw, [_SAP1, _VOW1], published=False)], raw)
    ca = out.batch.corporate_actions
    assert out.skipped == 1 and ca["value"].tolist() == [2.2] and ca["row"].tolist() == [1]


def test_statements_published_before_a_listing_arrive_with_the_listing(tmp_path):
    from quantlib.sandbox import generate

    args = {"n_assets": 25, "years": 1.5, "seed": 5, "markets": ("EU",),
            "start": "2024-01-02"}
    u = generate(end="2025-06-30", **args)
    a, st = u.assets, u.statements
    listed = a.set_index("asset_id")["listed"]
    early = st[st["known_at"].dt.tz_localize(None) <
               st["asset_id"].map(listed) - pd.Timedelta(days=3)]
    new = listed[listed > pd.Timestamp("2024-06-01")]
    asset = next(x for x in new.sort_values().index if x in set(early["asset_id"]))
    e1, e2 = listed[asset] - pd.Timedelta(days=2), listed[asset] + pd.Timedelta(days=3)
    store = str(tmp_path / "s")
    with start_sandbox(end=str(e1.date()), write_state=False, **args) as sb:
        refresh(store, connection=sb.connection(), markets=["EU"])
        sb.advance(e2)
        second = refresh(store, connection=sb.connection(), markets=["EU"])
    assert second.mode == "incremental"
    got = CuratedStore(store).read_table("statements")
    got = got[got["asset_id"] == asset]
    truth = st[(st["asset_id"] == asset) & (st["known_at"].dt.tz_localize(None) <= e2)]
    before = truth["known_at"].dt.tz_localize(None) < e1
    assert before.sum() >= 6                       # filings older than the last poll
    assert len(got) == len(truth)                  # every one arrived, none left out
    assert set(got["period_end"]) == set(truth["period_end"])
