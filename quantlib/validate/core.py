"""validate(): schema + domain checks, quarantine, report, and the batch threshold.

Algorithm:

1. schema checks (pandera) on every frame, then duplicate keys on every frame;
2. prices: OHLC order, unknown assets, bars on non-sessions; then unexplained jumps and
   missing sessions on the rows that are still clean;
3. symbols, corporate actions and statements: unknown assets;
4. bad rows (and extra copies of exact duplicates) leave the clean batch and go to the
   quarantine with their source, file, row, field, value, check and reason;
5. per market, bad rows / rows in; above ``max_bad_row_fraction`` the whole batch is
   rejected (:class:`~quantlib.errors.BatchRejectedError`, nothing is published).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantlib.config import Config, load_config
from quantlib.errors import BatchRejectedError
from quantlib.raw import Delivery
from quantlib.standardize import CanonicalBatch
from quantlib.validate import checks
from quantlib.validate.schemas import ISSUE_COLUMNS, schema_issues

__all__ = ["validate", "ValidationOutcome", "QUARANTINE_COLUMNS"]

QUARANTINE_COLUMNS = ["source", "file", "row", "market", "asset_id", "field", "value", "check",
                      "reason", "frame", "severity"]


@dataclass
class ValidationOutcome:
    """What validation kept, what it quarantined, and its report."""

    clean: CanonicalBatch
    quarantine: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    kept: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Per frame, the positions of the input rows its clean frame kept (in order), when
    :func:`validate` made it."""

    @property
    def rejected(self) -> bool:
        """Whether some market went over the bad-row threshold."""
        return bool(self.report.get("rejected_markets"))


def _asset_market(batch: CanonicalBatch) -> pd.Series:
    a = batch.assets.dropna(subset=["asset_id"]).drop_duplicates("asset_id")
    return a.set_index("asset_id")["market"]


def _bar_markets(batch: CanonicalBatch) -> pd.Series:
    """asset -> market for the batch's bars: the batch's assets table, else the market
    of the source that delivered the asset's first bar (an incremental batch that did
    not re-deliver the master file still gets its calendar checks).

    Examples
    --------
    >>> from quantlib.standardize import CanonicalBatch
    >>> b = CanonicalBatch.empty().replace(prices=pd.DataFrame(
    ...     {"asset_id": ["KR0000000001"], "source": ["ftp-kr"]}))
    >>> _bar_markets(b).to_dict()
    {'KR0000000001': 'KR'}
    """
    am = _asset_market(batch)
    p = batch.prices
    if p.empty:
        return am
    first = p.drop_duplicates("asset_id").dropna(subset=["asset_id"])
    first = first.loc[am.index.get_indexer(first["asset_id"]) < 0]
    if first.empty:
        return am
    src = checks.lookup(first["source"], pd.Series(_source_markets(), dtype=object))
    extra = pd.Series(src, index=first["asset_id"].to_numpy(), dtype=object).dropna()
    return pd.concat([am.astype(object), extra])


def _row_markets(name: str, frame: pd.DataFrame, asset_market: pd.Series,
                 source_market: dict[str, str]) -> pd.Series:
    if name == "fx":
        return pd.Series("FX", index=frame.index, dtype="str")
    if name == "assets":
        m = frame["market"].to_numpy(dtype=object)
    else:
        m = checks.lookup(frame["asset_id"], asset_market)
    out = np.asarray(m, dtype=object)
    gap = pd.isna(out)
    if gap.any():
        out[gap] = checks.lookup(frame["source"][gap], pd.Series(source_market, dtype=object))
        out[pd.isna(out)] = "?"
    return pd.Series(out, index=frame.index, dtype="str")


def _source_markets() -> dict[str, str]:
    from quantlib.sources import SOURCES

    return {name: s.market for name, s in SOURCES.items()}


class _KnownAssets:
    """The asset ids valid in a batch: the batch's own assets, then the stored ones.

    ``stored`` is used as given when it is a set (a refresh builds it once and hands the
    same set to every market), so validating a batch never copies the stored universe.

    Examples
    --------
    >>> k = _KnownAssets(["A"], frozenset({"B"}))
    >>> "A" in k, "B" in k, "C" in k, bool(_KnownAssets([], ()))
    (True, True, False, False)
    """

    def __init__(self, batch: Iterable[str], stored: Iterable[str] | None = None) -> None:
        self.batch = frozenset(batch)
        self.stored = stored if isinstance(stored, set | frozenset) \
            else frozenset(stored or ())

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self.batch or asset_id in self.stored

    def __bool__(self) -> bool:
        return bool(self.batch) or bool(self.stored)


def _collect_issues(batch: CanonicalBatch, known: _KnownAssets, max_jump: float,
                    previous: pd.DataFrame | None = None,
                    stored_actions: pd.DataFrame | None = None,
                    last_bars: pd.Series | None = None,
                    stored_assets: pd.DataFrame | None = None) -> pd.DataFrame:
    parts = [pd.DataFrame({c: [] for c in ISSUE_COLUMNS})]
    for name, frame in batch.frames().items():
        parts += [schema_issues(name, frame), checks.duplicate_issues(name, frame)]
        if name in ("symbols", "corporate_actions", "statements") and known:
            parts.append(checks.unknown_asset_issues(name, frame, known))
    p = batch.prices
    if len(p):
        parts += [checks.ohlc_issues(p), checks.non_session_issues(p, _bar_markets(batch))]
        if known:
            parts.append(checks.unknown_asset_issues("prices", p, known))
        so_far = pd.concat(parts, ignore_index=True)
        bad_idx = set(so_far.loc[(so_far["frame"] == "prices")
                                 & (so_far["severity"] != "info"), "idx"])
        rest = p.loc[~p.index.isin(bad_idx)]
        ca = batch.corporate_actions
        if stored_actions is not None and len(stored_actions):
            ca = pd.concat([stored_actions.loc[:, ["asset_id", "ex_date"]],
                            ca.loc[:, ["asset_id", "ex_date"]]], ignore_index=True)
        parts += [checks.jump_issues(rest, ca, max_jump, previous),
                  checks.missing_session_issues(p, _listings(batch.assets, stored_assets),
                                                last_bars)]  # good or bad
    return pd.concat(parts, ignore_index=True)


def _quarantine(batch: CanonicalBatch, issues: pd.DataFrame, asset_market: pd.Series,
                source_market: dict[str, str]) -> pd.DataFrame:
    rows = []
    for name, frame in batch.frames().items():
        sub = issues[(issues["frame"] == name) & issues["idx"].notna()]
        if sub.empty:
            continue
        idx = sub["idx"].astype("int64").to_numpy()
        f = frame.loc[idx]
        markets = _row_markets(name, f, asset_market, source_market)
        rows.append(pd.DataFrame({
            "source": f["source"].to_numpy(), "file": f["file"].to_numpy(),
            "row": f["row"].to_numpy(), "market": markets.to_numpy(),
            "asset_id": f["asset_id"].to_numpy() if "asset_id" in f else "",
            "field": sub["field"].to_numpy(), "value": sub["value"].to_numpy(),
            "check": sub["check"].to_numpy(), "reason": sub["reason"].to_numpy(),
            "frame": name, "severity": sub["severity"].to_numpy()}))
    loose = issues[issues["idx"].isna()]
    if len(loose):
        rows.append(pd.DataFrame({
            "source": loose["source"], "file": loose["file"], "row": loose["row"],
            "market": loose["market"], "asset_id": loose["asset_id"],
            "field": loose["field"], "value": loose["value"], "check": loose["check"],
            "reason": loose["reason"], "frame": loose["frame"],
            "severity": loose["severity"]}))
    if not rows:
        return _empty_quarantine()
    out = pd.concat(rows, ignore_index=True)
    out["row"] = out["row"].astype("Int64")
    _vendor_text(out, batch.unparsed)
    for c in QUARANTINE_COLUMNS:
        if c != "row":
            out[c] = out[c].astype("str")
    return out.loc[:, QUARANTINE_COLUMNS]


def _vendor_text(q: pd.DataFrame, unparsed: pd.DataFrame) -> None:
    """Show the vendor's own text for values that did not parse (instead of ``nan``)."""
    if unparsed.empty or q.empty:
        return
    key = ["frame", "source", "file", "row", "field"]
    text = unparsed.drop_duplicates(key).set_index(key)["text"]
    hit = (q["check"] == "missing_or_garbage").to_numpy()
    idx = pd.MultiIndex.from_frame(q.loc[hit, key].astype({"row": "int64"}))
    found = text.reindex(idx).to_numpy(dtype=object)
    has = ~pd.isna(found)
    rows = np.flatnonzero(hit)[has]
    q.loc[q.index[rows], "value"] = found[has]
    q.loc[q.index[rows], "reason"] = "value is not a number/date (garbage in the vendor file)"


def _empty_quarantine() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series([], dtype="str") for c in QUARANTINE_COLUMNS})
    out["row"] = out["row"].astype("Int64")
    return out


def _listings(delivered: pd.DataFrame, stored: pd.DataFrame | None) -> pd.DataFrame:
    """Listing facts (``asset_id, market, listed, delisted``): the delivered ones, then
    the stored ones of the other assets."""
    cols = ["asset_id", "market", "listed", "delisted"]
    if stored is None or stored.empty:
        return delivered
    return pd.concat([delivered.loc[:, cols], stored.loc[:, cols]], ignore_index=True)


def validate(batch: CanonicalBatch, *, max_bad_row_fraction: float | None = None,
             config: Config | None = None, known_assets: Iterable[str] | None = None,
             deliveries: Iterable[Delivery] | None = None,
             previous: pd.DataFrame | None = None,
             stored_actions: pd.DataFrame | None = None,
             last_bars: pd.Series | None = None,
             stored_assets: pd.DataFrame | None = None) -> ValidationOutcome:
    """Check a canonical batch; split it into clean rows and a quarantine.

    Parameters
    ----------
    batch : CanonicalBatch
        Output of :func:`quantlib.standardize.standardize`.
    max_bad_row_fraction : float, optional
        Per-market limit on bad rows / rows in (default: config
        ``validation.max_bad_row_fraction``).
    config : Config, optional
        Platform config (``validation.max_unexplained_jump`` etc.).
    known_assets : iterable of str, optional
        Asset ids already in the store (valid in addition to the batch's assets); a
        ``set``/``frozenset`` is used as is (build it once for many batches).
    deliveries : iterable of Delivery, optional
        The batch's deliveries, to reconcile row counts with the manifest.
    previous : DataFrame, optional
        Continuity for an incremental batch: ``asset_id, date, close`` of each asset's
        last stored bar before its first bar in the batch (the jump check's previous
        close).
    stored_actions : DataFrame, optional
        Corporate actions already stored (``asset_id, ex_date``): they explain jumps too.
    last_bars : Series, optional
        Continuity for an incremental batch: the date of each asset's last stored bar
        (index ``asset_id``); only sessions after it can be missing.
    stored_assets : DataFrame, optional
        Stored listing facts (``asset_id, market, listed, delisted``) of assets the
        batch does not deliver (an incremental batch without the master file): the
        missing-session check uses them.

    Raises
    ------
    BatchRejectedError
        Some market's bad-row fraction is over the limit; the error names the first
        bad rows (source, file, row, field), the count and the limit, and carries the
        outcome as ``err.outcome`` (so a report can still be written).
    """
    from quantlib.validate.report import build_report, summarize

    cfg = config if config is not None else load_config()
    limit = (cfg["validation"]["max_bad_row_fraction"] if max_bad_row_fraction is None
             else max_bad_row_fraction)
    max_jump = float(cfg["validation"]["max_unexplained_jump"])
    batch = batch.replace(**{k: v.reset_index(drop=True) for k, v in batch.frames().items()})
    asset_market = _asset_market(batch)
    known = _KnownAssets(asset_market.index, known_assets)
    source_market = _source_markets()
    issues = _collect_issues(batch, known, max_jump, previous, stored_actions, last_bars,
                             stored_assets)
    quarantine = _quarantine(batch, issues, asset_market, source_market)
    clean, kept = {}, {}
    for name, frame in batch.frames().items():
        drop = issues.loc[(issues["frame"] == name) & issues["idx"].notna()
                          & (issues["severity"] != "info"), "idx"].astype("int64")
        keep = np.ones(len(frame), dtype=bool)
        keep[drop.to_numpy()] = False
        kept[name] = np.flatnonzero(keep)
        clean[name] = frame.drop(index=drop.unique()).reset_index(drop=True)
    outcome = ValidationOutcome(clean=CanonicalBatch(**clean), quarantine=quarantine,
                                kept=kept)
    outcome.report = build_report(batch, outcome, limit, asset_market, source_market,
                                  list(deliveries) if deliveries is not None else None)
    outcome.summary = summarize(outcome)
    if outcome.rejected:
        raise _rejection(outcome, limit)
    return outcome


def _rejection(outcome: ValidationOutcome, limit: float) -> BatchRejectedError:
    r = outcome.report
    worst = r["rejected_markets"][0]
    stats = r["markets"][worst]
    q = outcome.quarantine
    bad = q[(q["severity"] == "bad") & (q["market"] == worst)].head(3)
    first = bad.iloc[0] if len(bad) else None
    listing = "; ".join(f"{b.source}:{b.file} row {b.row} field {b.field} ({b.check})"
                        for b in bad.itertuples())
    return BatchRejectedError(
        f"bad rows of market {worst} must be at most {limit:.2%} of its rows", outcome=outcome,
        found=(f"{stats['bad_rows']} bad of {stats['rows_in']} rows "
               f"({stats['bad_fraction']:.2%} > {limit:.2%}); first: {listing}"),
        fix=("fix or re-deliver the named files, or raise the limit if the data are "
             "acceptable (--max-bad-fraction of `quantlib data refresh|ingest`, "
             "max_bad_row_fraction=, or config validation.max_bad_row_fraction); "
             "nothing was published; see the quarantine table"),
        market=worst,
        source=None if first is None else first["source"],
        file=None if first is None else first["file"],
        row=None if first is None else first["row"],
        field=None if first is None else first["field"])
