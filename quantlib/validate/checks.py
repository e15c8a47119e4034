"""Domain checks over canonical frames, each returning issues (see ``ISSUE_COLUMNS``).

An issue points at a frame row by its index label (``idx``); issues about something
absent (a missing session) carry their own ``asset_id``/``market`` and no ``idx``.
Severities: ``bad`` (row goes to quarantine, counts against the batch threshold),
``duplicate`` (an exact copy of a kept row: dropped, not counted), ``info`` (reported only).
"""

from __future__ import annotations

from collections.abc import Container

import numpy as np
import pandas as pd

from quantlib.calendars import MARKETS, sessions
from quantlib.validate.schemas import ISSUE_COLUMNS

__all__ = ["DUPLICATE_KEYS", "lookup", "member_of", "ohlc_issues", "duplicate_issues",
           "unknown_asset_issues", "non_session_issues", "missing_session_issues",
           "jump_issues", "issues_frame"]

DUPLICATE_KEYS: dict[str, list[str]] = {
    "assets": ["asset_id"],
    "symbols": ["asset_id", "valid_from"],
    "prices": ["asset_id", "date"],
    "corporate_actions": ["asset_id", "ex_date", "kind"],
    "fx": ["date", "currency"],
    "statements": ["asset_id", "field", "period_end", "known_at"],
}
_PROV = ["source", "file", "row"]


def issues_frame(frame: str, idx, field: str, value, check: str, reason,  # type: ignore[no-untyped-def]
                 severity: str = "bad", **extra) -> pd.DataFrame:
    """Build an issues frame (scalars broadcast over ``idx``; sequences taken in order)."""
    idx = np.asarray(idx)
    if isinstance(value, pd.Series | pd.Index):
        value = value.to_numpy()
    if isinstance(reason, pd.Series | pd.Index):
        reason = reason.to_numpy()
    out = pd.DataFrame({"frame": frame, "idx": idx, "field": field,
                        "value": pd.Series(np.asarray(value, dtype=object)).astype(str)
                        if np.ndim(value) else str(value),
                        "check": check, "reason": reason, "severity": severity},
                       index=range(len(idx)))
    for k, v in extra.items():
        out[k] = v
    return out


def _none() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in ISSUE_COLUMNS})


def ohlc_issues(prices: pd.DataFrame) -> pd.DataFrame:
    """``high >= max(open, close)`` and ``low <= min(open, close)``.

    Rows with a missing or non-positive price are left to the schema checks.

    Examples
    --------
    >>> p = pd.DataFrame({"open": [10.0, 10.0], "high": [11.0, 9.5], "low": [9.0, 9.0],
    ...                   "close": [10.5, 10.0]})
    >>> ohlc_issues(p)[["idx", "field", "check"]].values.tolist()
    [[1, 'high', 'high_below_open_close']]
    """
    ok = (prices[["open", "high", "low", "close"]] > 0).all(axis=1).to_numpy()
    top = prices[["open", "close"]].max(axis=1)
    bottom = prices[["open", "close"]].min(axis=1)
    hi = prices.index[ok & (prices["high"] < top).to_numpy()]
    lo = prices.index[ok & (prices["low"] > bottom).to_numpy()]
    parts = [issues_frame("prices", hi, "high", prices.loc[hi, "high"], "high_below_open_close",
                          "high must be >= max(open, close)"),
             issues_frame("prices", lo, "low", prices.loc[lo, "low"], "low_above_open_close",
                          "low must be <= min(open, close)")]
    return pd.concat(parts, ignore_index=True)


def duplicate_issues(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sharing a key: exact copies keep the first (others ``duplicate``);
    conflicting rows are all ``bad``.

    Examples
    --------
    >>> f = pd.DataFrame({"date": ["d1", "d1", "d2", "d2"], "currency": "EUR",
    ...                   "rate": [1.0, 1.0, 2.0, 3.0], "source": "s", "file": "f",
    ...                   "row": [1, 2, 3, 4]})
    >>> duplicate_issues("fx", f)[["idx", "check", "severity"]].values.tolist()
    [[1, 'duplicate', 'duplicate'], [2, 'conflicting_duplicate', 'bad'], [3, 'conflicting_duplicate', 'bad']]
    """
    key = DUPLICATE_KEYS[name]
    dup = frame.duplicated(key, keep=False).to_numpy()
    if not dup.any():
        return _none()
    sub = frame.loc[dup]
    content = [c for c in frame.columns if c not in _PROV]
    n_versions = sub.groupby(key, dropna=False)[content].transform(
        lambda s: s.astype(str).nunique(dropna=False)).max(axis=1)
    conflict = sub.loc[(n_versions > 1).to_numpy()]
    exact = sub.loc[(n_versions <= 1).to_numpy()]
    first = exact.groupby(key, dropna=False)[_PROV].transform("first")
    extra = exact.loc[exact.duplicated(key, keep="first").to_numpy()]
    first = first.loc[extra.index]
    keys = _key_text(extra, key)
    parts = [
        issues_frame(name, extra.index, "/".join(key), keys, "duplicate",
                     "exact duplicate of " + first["file"].astype(str) + " row "
                     + first["row"].astype(str) + " (kept that one)", "duplicate"),
        issues_frame(name, conflict.index, "/".join(key),
                     _key_text(conflict, key), "conflicting_duplicate",
                     "rows share this key but differ: all quarantined"),
    ]
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values("idx", ignore_index=True)


def _key_text(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    if frame.empty:
        return np.array([], dtype=object)
    text = frame[key[0]].astype(str)
    for col in key[1:]:
        text = text + "/" + frame[col].astype(str)
    return text.to_numpy(dtype=object)


def member_of(values: pd.Series, known: Container[str]) -> np.ndarray:
    """Whether each value is in ``known`` (missing values: False), asking ``known`` once
    per distinct value: the cost follows ``values``, not ``known``.

    pandas 3's ``Series.isin`` on a string column walks every member of the set it is
    given in Python (one pyarrow scalar each) on every call, ~0.5 s for 14,000 ids
    whatever the length of the column, holding the GIL.

    Examples
    --------
    >>> member_of(pd.Series(["A", "X", "A", None], dtype="str"), frozenset({"A"})).tolist()
    [True, False, True, False]
    """
    codes, uniq = pd.factorize(values)        # a missing value has code -1
    hit = np.fromiter((u in known for u in np.asarray(uniq, dtype=object)), dtype=bool,
                      count=len(uniq))
    return np.append(hit, False)[codes]       # -1 picks the appended False


def unknown_asset_issues(name: str, frame: pd.DataFrame, known: Container[str]
                         ) -> pd.DataFrame:
    """Rows whose asset_id is not a known asset (assets of the batch or the store).

    ``known`` only answers ``in`` (e.g. a set of the stored ids built once per refresh),
    once per distinct id of ``frame`` (:func:`member_of`).

    Examples
    --------
    >>> f = pd.DataFrame({"asset_id": ["A", "X", "A", None, "X"]})
    >>> unknown_asset_issues("prices", f, {"A"})[["idx", "value"]].values.tolist()
    [[1, 'X'], [4, 'X']]
    """
    ids = frame["asset_id"]
    bad = frame.index[~member_of(ids, known) & ids.notna().to_numpy()]
    return issues_frame(name, bad, "asset_id", frame.loc[bad, "asset_id"], "unknown_asset",
                        "asset_id is not in the asset master (assets frame or store)")


def lookup(keys: pd.Series, table: pd.Series) -> np.ndarray:
    """``table[key]`` for each key (missing -> None), via one hash join (no per-row map).

    Examples
    --------
    >>> lookup(pd.Series(["a", "x", "a"]), pd.Series({"a": "KR"})).tolist()
    ['KR', None, 'KR']
    """
    table = table[~table.index.duplicated()]
    codes, uniq = pd.factorize(keys, use_na_sentinel=False)  # a few distinct keys
    pos = table.index.get_indexer(np.asarray(uniq, dtype=object))
    vals = np.full(len(uniq) + 1, None, dtype=object)
    vals[:-1][pos >= 0] = table.to_numpy(dtype=object)[pos[pos >= 0]]
    return vals[np.where(codes >= 0, codes, len(uniq))]


def non_session_issues(prices: pd.DataFrame, asset_market: pd.Series) -> pd.DataFrame:
    """Bars dated on a day that is not a session of the asset's exchange."""
    market = lookup(prices["asset_id"], asset_market)
    has_date = prices["date"].notna().to_numpy()
    parts = [_none()]
    for code in sorted({m for m in set(market) if m is not None} & set(MARKETS)):
        rows = prices.loc[(market == code) & has_date]
        if rows.empty:
            continue
        s = sessions(code, rows["date"].min(), rows["date"].max())
        bad = rows.index[~rows["date"].isin(s).to_numpy()]
        parts.append(issues_frame("prices", bad, "date", rows.loc[bad, "date"].dt.date,
                                  "non_session", f"date is not a {MARKETS[code].mic} session"))
    return pd.concat(parts, ignore_index=True)


def missing_session_issues(prices: pd.DataFrame, assets: pd.DataFrame,
                           last_bars: pd.Series | None = None) -> pd.DataFrame:
    """Sessions without a bar while the asset was listed, within the batch's date range.

    Reported (``info``), nothing is removed. ``assets`` needs ``asset_id, market, listed,
    delisted``. Counts are compared for all assets at once; the sessions missing for the
    assets that lack bars are found in one pass over (asset, session) keys, in asset
    then date order, each row naming the asset's first delivering source.

    ``last_bars`` (an incremental batch: ``asset_id`` -> date of the asset's last stored
    bar) limits each asset to the sessions after that bar, and to its bars after it: the
    store holds the sessions before (or they were reported when delivered), so a
    look-back window the vendor does not re-deliver is not missing.

    Examples
    --------
    >>> a = pd.DataFrame({"asset_id": ["A", "B"], "market": "KR",
    ...                   "listed": pd.to_datetime(["2024-03-04", "2024-03-05"]),
    ...                   "delisted": pd.NaT})
    >>> p = pd.DataFrame({"asset_id": ["A", "A", "B"], "source": "ftp-kr",
    ...                   "date": pd.to_datetime(["2024-03-04", "2024-03-07", "2024-03-07"])})
    >>> missing_session_issues(p, a)[["asset_id", "value", "severity"]].values.tolist()
    [['A', '2024-03-05', 'info'], ['A', '2024-03-06', 'info'], ['B', '2024-03-05', 'info'], ['B', '2024-03-06', 'info']]
    >>> stored = pd.Series(pd.to_datetime(["2024-03-06", "2024-03-05"]), index=["A", "B"])
    >>> missing_session_issues(p, a, stored)[["asset_id", "value"]].values.tolist()
    [['B', '2024-03-06']]
    """
    if prices.empty or assets.empty:
        return _none()
    meta = assets.drop_duplicates("asset_id").set_index("asset_id")
    market = lookup(prices["asset_id"], meta["market"])
    has_date = prices["date"].notna().to_numpy()
    parts = [_none()]
    for code in sorted({m for m in set(market) if m is not None} & set(MARKETS)):
        px = prices.loc[(market == code) & has_date, ["asset_id", "date", "source"]]
        sv = sessions(code, px["date"].min(), px["date"].max()).to_numpy()
        px = px[np.isin(px["date"].to_numpy(), sv)].drop_duplicates(["asset_id", "date"])
        if last_bars is not None:
            px = px[_after(px, last_bars)]
        have = px.groupby("asset_id", sort=True).size()
        ids = have.index
        listed = meta.loc[ids, "listed"].to_numpy(dtype="datetime64[ns]")
        delisted = meta.loc[ids, "delisted"].to_numpy(dtype="datetime64[ns]")
        lo = np.where(np.isnat(listed), 0, np.searchsorted(sv, listed))
        if last_bars is not None:
            seen = last_bars.reindex(ids).to_numpy(dtype="datetime64[ns]")
            lo = np.maximum(lo, np.where(np.isnat(seen), 0,
                                         np.searchsorted(sv, seen, side="right")))
        hi = np.where(np.isnat(delisted), len(sv), np.searchsorted(sv, delisted, side="right"))
        short = np.flatnonzero(have.to_numpy() < np.maximum(hi - lo, 0))
        if len(short):
            parts.append(_missing_sessions(px, ids[short], lo[short], hi[short], sv, code))
    return pd.concat(parts, ignore_index=True)


def _after(px: pd.DataFrame, last_bars: pd.Series) -> np.ndarray:
    """Which bars of ``px`` are dated after their asset's ``last_bars`` date (or the
    asset has none)."""
    codes, uniq = pd.factorize(px["asset_id"])
    seen = np.append(last_bars.reindex(uniq).to_numpy(dtype="datetime64[ns]"),
                     np.datetime64("NaT", "ns"))[codes]
    return np.isnat(seen) | (px["date"].to_numpy(dtype="datetime64[ns]") > seen)


def _missing_sessions(px: pd.DataFrame, ids: pd.Index, lo: np.ndarray, hi: np.ndarray,
                      sv: np.ndarray, code: str) -> pd.DataFrame:
    """The ``missing_session`` issues of the assets ``ids`` (sorted), each listed over
    sessions ``sv[lo:hi]``: every (asset, session) of those windows without a bar."""
    n = np.maximum(hi - lo, 0)
    asset = np.repeat(np.arange(len(ids)), n)
    session = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
    codes, uniq = pd.factorize(px["asset_id"])     # the ids hashed once, not per lookup
    k = np.append(ids.get_indexer(np.asarray(uniq, dtype=object)), -1)[codes]
    rows = np.flatnonzero(k >= 0)
    held = k[rows].astype("int64") * len(sv) + np.searchsorted(sv, px["date"].to_numpy()[rows])
    gone = ~np.isin(asset.astype("int64") * len(sv) + session, held)
    asset, session = asset[gone], session[gone]
    mine, first = np.unique(k[rows], return_index=True)   # each asset's first bar
    source = np.full(len(ids), None, dtype=object)
    source[mine] = px["source"].iloc[rows[first]].to_numpy(dtype=object)
    return issues_frame(
        "prices", np.full(len(asset), pd.NA, dtype=object), "date",
        pd.DatetimeIndex(sv[session]).date, "missing_session",
        "no bar on this session while the asset was listed", "info",
        asset_id=pd.Series(ids.to_numpy(dtype=object)[asset], dtype="str"), market=code,
        source=pd.Series(source[asset], dtype="str"), file="", row=pd.NA)


def jump_issues(prices: pd.DataFrame, actions: pd.DataFrame, max_jump: float,
                previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Close-to-close moves above ``max_jump`` with no split/dividend on that date.

    ``previous`` (``asset_id, date, close``: the stored last bar of each asset before
    its first bar in ``prices``) gives the first bars of an incremental batch their
    previous close; those rows are never reported themselves.

    Examples
    --------
    >>> p = pd.DataFrame({"asset_id": "A", "date": pd.to_datetime(["2024-03-04",
    ...     "2024-03-05", "2024-03-06"]), "close": [100.0, 50.0, 200.0]})
    >>> ca = pd.DataFrame({"asset_id": ["A"], "ex_date": pd.to_datetime(["2024-03-05"])})
    >>> jump_issues(p, ca, 0.6)[["idx", "field", "check"]].values.tolist()
    [[2, 'close', 'unexplained_jump']]
    """
    if prices.empty:
        return _none()
    p = prices.loc[prices["close"].notna() & prices["date"].notna(), ["asset_id", "date", "close"]]
    if previous is not None and len(previous):
        ctx = previous.loc[:, ["asset_id", "date", "close"]]
        ctx.index = pd.RangeIndex(-len(ctx), 0)   # labels no batch row has
        p = pd.concat([ctx, p])
    p = p.sort_values(["asset_id", "date"], kind="stable")
    prev = p.groupby("asset_id", sort=False)["close"].shift()
    move = p["close"] / prev - 1
    cand = p.loc[(move.abs() > max_jump).to_numpy() & p.index.isin(prices.index)]
    if cand.empty:
        return _none()
    explained = pd.MultiIndex.from_frame(actions[["asset_id", "ex_date"]]) if len(actions) \
        else pd.MultiIndex.from_arrays([[], []])
    hit = pd.MultiIndex.from_frame(cand[["asset_id", "date"]]).isin(explained)
    bad = cand.loc[~hit]
    return issues_frame("prices", bad.index, "close", bad["close"], "unexplained_jump",
                        [f"close moved {m:+.1%} from the previous bar with no split/dividend "
                         f"that day (limit {max_jump:.0%})" for m in move.loc[bad.index]])
