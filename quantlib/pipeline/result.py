"""What a refresh or an ingest reports back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RefreshResult"]


@dataclass
class RefreshResult:
    """Outcome of :func:`quantlib.pipeline.refresh` or :func:`quantlib.pipeline.ingest`.

    Attributes
    ----------
    refresh_id : str
        Id of the run (names its manifest file, quarantine and reports).
    snapshot_id, tag : str or None
        The curated-store version it committed (``None`` when nothing was committed).
    markets : list of str
        Markets (and ``FX``) it covered.
    rows : dict
        Rows per stage: ``fetch`` (rows in the deliveries), ``standardize``,
        ``validate`` (clean rows), ``commit`` (rows written, previous rows kept included).
    seconds : dict
        Seconds per stage (``sandbox``, ``fetch``/``standardize``/``validate`` summed
        over markets, ``fan_out`` wall time, ``commit``, ``report``, ``total``).
    quarantine : dict
        Quarantined rows per market.
    report_paths : dict
        ``quarantine``, ``validation``, ``json``, ``markdown`` file URLs.
    summary : str
        The validation summary.
    per_market : dict
        ``{market: {"rows": {...}, "seconds": {...}}}`` for each fan-out task.
    note : str
        Why nothing was committed, when nothing was (e.g. a drop with no data rows).
    mode : str
        ``"full"`` (whole vendor history read, panels rewritten) or ``"incremental"``
        (only new or changed deliveries; ``rows`` then also holds ``region_cells``,
        ``appended_dates`` and ``rewrites`` of the delta commit).
    rebases : int
        Times the commit was rebuilt on a newer version because another writer committed
        first (0: no conflict).
    """

    refresh_id: str
    snapshot_id: str | None = None
    tag: str | None = None
    markets: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    quarantine: dict[str, int] = field(default_factory=dict)
    report_paths: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    per_market: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    rebases: int = 0
    note: str = ""
    mode: str = "full"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"refresh {self.refresh_id} ({self.mode}): snapshot {self.snapshot_id} "
                 f"tag {self.tag}",
                 f"markets: {', '.join(self.markets)}"]
        for stage in ("fetch", "standardize", "validate", "commit"):
            if stage in self.rows:
                secs = self.seconds.get(stage, float("nan"))
                lines.append(f"  {stage:<12} {self.rows[stage]:>10} rows  {secs:8.2f} s")
        lines.append(f"  total        {self.seconds.get('total', float('nan')):8.2f} s")
        if self.note:
            lines.append(self.note)
        if self.rebases:
            lines.append(f"rebased {self.rebases} time(s) on versions other writers "
                         "committed meanwhile")
        if self.quarantine:
            lines.append("quarantine: " + ", ".join(f"{m}={n}" for m, n in
                                                    self.quarantine.items()))
        if self.report_paths.get("markdown"):
            lines.append(f"report: {self.report_paths['markdown']}")
        return "\n".join(lines)
