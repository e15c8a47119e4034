"""What an incremental batch needs of a stored panel, read once per market task.

An incremental refresh validates only the delivered rows, but three of its steps need
what the store already holds for the delivered assets (or FX currencies):

- the jump check: each asset's last stored close before its first delivered bar
  (:meth:`StoredTail.previous_closes`);
- the missing-session check: each asset's last stored bar, since only the sessions
  after it can be missing (:meth:`StoredTail.last_bars`);
- dropping re-delivered bars equal to the stored ones (the look-back window):
  the stored cells the batch delivers again (:meth:`StoredTail.unchanged`).

:meth:`StoredTail.open` pins one read-only session of the tip and reads the panel
group's ``date`` and column (``asset``/``currency``) coordinates with zarr directly (no
xarray dataset, no dask graph); the methods then read only the rows and columns the
batch touches: the cells of its ``(asset, date)`` pairs, and ``close`` backwards from
the end in growing windows until each delivered asset has its last bar. So the cost
follows the batch (its assets and dates), not the stored history.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from quantlib.errors import SnapshotNotFoundError
from quantlib.store import CuratedStore
from quantlib.store.panels import NAT_INT, PRICE_VARS, ns_values

__all__ = ["StoredTail", "FX"]

FX = "FX"
_WINDOW = 64          # rows of the presence variable read backwards first (then x4)


class StoredTail:
    """One market's stored panel (or the FX panel), as a batch touches it.

    ``key`` names the batch column matched to the panel's column axis (``asset_id`` or
    ``currency``), ``present`` the variable whose non-NaN cells are the stored bars
    (``close``/``rate``), ``values`` the variables compared by :meth:`unchanged`.

    Examples
    --------
    >>> g = zarr.group(store=zarr.storage.MemoryStore())
    >>> _ = g.create_array("close", data=np.array([[1.0, np.nan], [2.0, np.nan],
    ...                                            [np.nan, 5.0]]))
    >>> tail = StoredTail(g, pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"])
    ...                   .to_numpy(), pd.Index(["A", "B"]))
    >>> batch = pd.DataFrame({"asset_id": ["A", "B"],
    ...                       "date": pd.to_datetime(["2024-01-05", "2024-01-04"])})
    >>> tail.last_bars(batch).astype(str).to_dict()
    {'A': '2024-01-03', 'B': '2024-01-04'}
    >>> tail.previous_closes(batch).astype({"date": str}).values.tolist()
    [['A', '2024-01-03', 2.0]]
    """

    def __init__(self, group: zarr.Group, dates: np.ndarray, columns: pd.Index,
                 fx: bool = False) -> None:
        self.group, self.dates, self.columns = group, dates, columns
        # each column's last present row (-2: not read yet, -1: none) and its value
        self._end_row = np.full(len(columns), -2)
        self._end_val = np.full(len(columns), np.nan)
        self.key = "currency" if fx else "asset_id"
        self.present = "rate" if fx else "close"
        self.values: tuple[str, ...] = ("rate",) if fx else PRICE_VARS

    @classmethod
    def open(cls, store: CuratedStore, market: str) -> StoredTail | None:
        """The stored panel of ``market`` (``"FX"``: the FX panel) at the tip of ``main``;
        ``None`` when the store has no version or no such panel. Reads the two
        coordinates only."""
        try:
            snapshot = store.resolve()
        except SnapshotNotFoundError:
            return None
        root = zarr.open_group(store.repo.readonly_session(snapshot_id=snapshot).store,
                               mode="r")
        path = ("fx",) if market == FX else ("prices", market)
        group: zarr.Group = root
        for name in path:
            if name not in group:
                return None
            group = cast(zarr.Group, group[name])
        dates = cast(zarr.Array, group["date"])
        decoded = xr.coding.times.decode_cf_datetime(
            np.asarray(dates[:]), str(dates.attrs["units"]),
            None if dates.attrs.get("calendar") is None else str(dates.attrs["calendar"]))
        other = cast(zarr.Array, group["currency" if market == FX else "asset"])
        return cls(group, np.asarray(decoded, dtype="datetime64[ns]"),
                   pd.Index(np.asarray(other[:]).astype(str)), fx=market == FX)

    def _array(self, name: str) -> zarr.Array:
        return cast(zarr.Array, self.group[name])

    def _last(self, before: int, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row (-1: none) and value of the last present cell strictly before row
        ``before`` of each column in ``cols``, read backwards in growing windows of the
        columns' span (the cost follows the gap, not the history)."""
        rows = np.full(len(cols), -1)
        vals = np.full(len(cols), np.nan)
        todo = np.ones(len(cols), dtype=bool)
        hi, width = before, _WINDOW
        arr = self._array(self.present)
        while hi > 0 and todo.any():
            lo = max(0, hi - width)
            c0 = int(cols[todo].min())
            block = np.asarray(arr[lo:hi, c0:int(cols[todo].max()) + 1])[:, cols[todo] - c0]
            valid = ~np.isnan(block)
            has = valid.any(axis=0)
            at = np.flatnonzero(todo)[has]
            last = block.shape[0] - 1 - np.argmax(valid[::-1, has], axis=0)
            rows[at], vals[at] = lo + last, block[last, np.flatnonzero(has)]
            todo[at] = False
            hi, width = lo, width * 4
        return rows, vals

    def _first_rows(self, prices: pd.DataFrame) -> tuple[pd.Index, np.ndarray, np.ndarray]:
        """The batch's stored assets, their columns, and the row of their first bar."""
        first = prices.groupby(self.key, sort=True)["date"].min()
        cols = self.columns.get_indexer(first.index.astype(str))
        keep = cols >= 0
        rows = np.searchsorted(self.dates, first.to_numpy(dtype="datetime64[ns]")[keep])
        return first.index[keep].astype(str), cols[keep], rows

    def _ends(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and value of the last present cell of each column (read once per column
        for :meth:`last_bars` and :meth:`previous_closes` together)."""
        new = np.unique(cols[self._end_row[cols] == -2])
        if len(new):
            self._end_row[new], self._end_val[new] = self._last(len(self.dates), new)
        return self._end_row[cols], self._end_val[cols]

    def last_bars(self, prices: pd.DataFrame) -> pd.Series:
        """Date of the last stored bar of each asset of ``prices`` that has one (index
        ``asset_id``)."""
        ids, cols, _ = self._first_rows(prices)
        rows, _ = self._ends(cols)
        has = rows >= 0
        return pd.Series(self.dates[rows[has]], index=pd.Index(ids[has], name=self.key),
                         name="date")

    def previous_closes(self, prices: pd.DataFrame) -> pd.DataFrame:
        """``asset_id, date, close`` of each asset's last stored bar before its first bar
        in ``prices`` (assets without one are left out)."""
        ids, cols, first = self._first_rows(prices)
        rows, vals = self._ends(cols)       # the last bar, when it is before the first
        rows, vals = rows.copy(), vals.copy()
        again = rows >= first               # the batch re-delivers stored bars
        for r in np.unique(first[again]):
            sel = np.flatnonzero(again & (first == r))
            rows[sel], vals[sel] = self._last(int(r), cols[sel])
        has = rows >= 0
        return pd.DataFrame({"asset_id": pd.Series(ids[has], dtype="str"),
                             "date": self.dates[rows[has]], "close": vals[has]})

    def unchanged(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of ``frame`` (bars, or FX rows) the panel holds with the same values
        and ``known_at``: reads only the stored cells of the frame's (key, date) pairs."""
        n = len(self.dates)
        col = self.columns.get_indexer(frame[self.key].astype(str))
        day = ns_values(frame["date"])
        at = np.searchsorted(self.dates, day)
        row = np.minimum(at, max(n - 1, 0))
        hit = np.zeros(len(frame), dtype=bool)
        if n:
            hit = (col >= 0) & (at < n) & (self.dates[row] == day)
        same = hit.copy()
        if not hit.any():
            return same
        rows, r = np.unique(row[hit], return_inverse=True)
        cols, c = np.unique(col[hit], return_inverse=True)

        def cells(var: str) -> np.ndarray:   # only the chunks holding those rows x cols
            return np.asarray(self._array(var).get_orthogonal_selection((rows, cols)))[r, c]

        known = cells("known_at")
        mine = ns_values(frame["known_at"]).view("int64")[hit]
        ok = ~np.isnan(cells(self.present)) & (known == mine) & (known != NAT_INT)
        for var in self.values:
            a, b = frame[var].to_numpy(dtype="float64")[hit], cells(var)
            ok &= (a == b) | (np.isnan(a) & np.isnan(b))
        same[hit] = ok
        return same
