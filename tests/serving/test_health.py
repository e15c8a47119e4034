"""Data-health facts from a data store written through quantlib.store's table API."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from quantlib.raw import RawZone
from quantlib.serving.views.health import data_health, schedule_runs
from quantlib.store import write_table_file


def make_store(root: str) -> None:
    t = pd.Timestamp("2025-06-02 23:40", tz="UTC")
    manifest = pd.DataFrame({
        "fetch_id": ["f1", "f1", "f2", "f3"], "source": ["ftp-kr", "ftp-kr", "ftp-kr", "http"],
        "market": ["KR", "KR", "KR", "US"], "file": ["a", "b", "c", "d"],
        "sha256": ["0" * 64] * 4, "bytes": [10, 10, 10, 10], "rows": [100, 50, 80, 300],
        "fmt": ["kr-csv"] * 3 + ["api-json"],
        "fetched_at": [t, t, t + pd.Timedelta(days=1), t], "status":
        ["published", "published", "rejected", "published"]})
    RawZone(root).record(manifest.to_dict("records"))
    quarantine = pd.DataFrame({
        "source": ["ftp-kr"] * 3 + ["http"], "file": ["c"] * 3 + ["d"], "row": [1, 2, 3, 4],
        "market": ["KR", "KR", "KR", "US"], "asset_id": ["KR7000000001"] * 3 + ["US0000000001"],
        "field": ["high"] * 3 + ["close"], "value": ["1"] * 4,
        "check": ["ohlc_order"] * 3 + ["jump"], "reason": ["high < low"] * 3 + ["unexplained jump"],
        "frame": ["prices"] * 4, "severity": ["error"] * 4})
    write_table_file(root, "quarantine", "refresh-20250603T234000Z-ab12", quarantine)
    (pd.io.common.Path(root) / "reports").mkdir()
    (pd.io.common.Path(root) / "reports" / "refresh-20250603T234000Z-ab12.md").write_text(
        "# Validation\n\nKR: 3 bad rows (ohlc_order)\n")


def test_data_health_from_store_tables(tmp_path):
    make_store(str(tmp_path))
    h = data_health(str(tmp_path))
    kr = h.runs[h.runs["market"] == "KR"]
    assert kr["fetch_id"].tolist() == ["f2", "f1"]  # newest first
    assert kr["outcome"].tolist() == ["rejected", "published"]
    assert kr["rows"].tolist() == [80, 150]
    top = h.reasons.iloc[0]
    assert (top["market"], top["reason"], top["rows"]) == ("KR", "high < low", 3)
    assert h.quarantine.set_index("market")["rows"].to_dict() == {"KR": 3, "US": 1}
    assert h.report is not None and "3 bad rows" in h.report[1]
    assert set(h.freshness["market"]) == {"KR", "US"}


def test_schedule_next_runs_from_schedules_yaml(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    frame = schedule_runs(now=datetime(2025, 6, 6, 12, 0, tzinfo=UTC))  # a Friday
    runs = frame.set_index("job")
    assert runs.loc["refresh-data", "next_run"].startswith("2025-06-06T23:30")
    assert runs.loc["data-health-report", "next_run"].startswith("2025-06-09T06:00")
    assert set(runs["source"]) == {"schedules.yaml"}


def test_a_published_refresh_reads_published_not_fetched(tmp_path):
    """The manifest keeps each delivery's ``fetched`` row beside its ``published`` one."""
    t = pd.Timestamp("2025-06-02 23:40", tz="UTC")
    rows = [{"fetch_id": fid, "source": "ftp-kr", "market": "KR", "file": f, "fmt": "kr-csv",
             "sha256": f * 64, "bytes": 10, "rows": n, "fetched_at": when, "status": st}
            for fid, f, n, when, st in [
                ("f1", "a", 100, t, "fetched"), ("f1", "b", 50, t, "fetched"),
                ("f1", "a", 100, t, "published"), ("f1", "b", 50, t, "published"),
                ("f2", "c", 80, t + pd.Timedelta(days=1), "fetched")]]
    RawZone(str(tmp_path)).record(rows)
    runs = data_health(str(tmp_path)).runs.set_index("fetch_id")
    assert runs.loc["f1", "outcome"] == "published"
    assert (runs.loc["f1", "files"], runs.loc["f1", "rows"]) == (2, 150)  # each file once
    assert runs.loc["f2", "outcome"] == "fetched"  # fetched and nothing after: not finished
