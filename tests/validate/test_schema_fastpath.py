"""The schema fast path (``schemas._clean``) skips pandera only where pandera would find
nothing: for every frame, clean and with one broken cell of each kind, schema_issues()
equals pandera's own answer cell for cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlib.validate import schemas


def _pandera(name, frame, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(schemas, "_clean", lambda name, frame: False)
        return schemas.schema_issues(name, frame)


BROKEN = [
    ("prices", "close", -1.0), ("prices", "close", np.nan), ("prices", "open", 0.0),
    ("prices", "volume", -1.0), ("prices", "volume", np.nan), ("prices", "asset_id", "../x"),
    ("prices", "asset_id", None), ("prices", "date", pd.NaT), ("prices", "known_at", pd.NaT),
    ("assets", "currency", "eur"), ("assets", "currency", "EUR\n"),
    ("assets", "currency", "EURO"), ("assets", "asset_id", "a b"),
    ("assets", "listed", pd.NaT), ("assets", "sector", None), ("assets", "delisted", pd.NaT),
    ("symbols", "symbol", "../x"), ("symbols", "valid_to", pd.NaT),
    ("corporate_actions", "kind", "merger"), ("corporate_actions", "value", 0.0),
    ("fx", "rate", 0.0), ("fx", "currency", "eur"), ("fx", "currency", None),
    ("statements", "field", "ebitda"), ("statements", "value", np.nan),
]


@pytest.mark.parametrize("name", ["assets", "symbols", "prices", "corporate_actions", "fx",
                                  "statements"])
def test_clean_frames_skip_pandera_with_its_answer(truth, name, monkeypatch):
    frame = truth.frames()[name]
    assert len(frame)
    assert schemas._clean(name, frame)
    assert _pandera(name, frame, monkeypatch).empty
    assert schemas.schema_issues(name, frame).empty


@pytest.mark.parametrize(("name", "column", "value"), BROKEN)
def test_one_broken_cell_gives_pandera_issues(truth, name, column, value, monkeypatch):
    frame = truth.frames()[name].copy()
    frame[column] = frame[column].astype(object) if value is None else frame[column]
    frame.loc[1, column] = value
    frame[column] = frame[column].astype(truth.frames()[name][column].dtype)
    want = _pandera(name, frame, monkeypatch)
    got = schemas.schema_issues(name, frame)
    pd.testing.assert_frame_equal(got, want)
    assert schemas._clean(name, frame) is want.empty
