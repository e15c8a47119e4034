"""``to_float``: the clean-column fast path (one cast) gives what the regex path gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from quantlib.standardize.common import _NUMBER, to_float

AWKWARD = ["+5", "1.", ".5", "-0", "00012", "1e5", "1E+05", "+.5e-3", " 1 ", "\t1", "1\n",
           "1e400", "1e-400", "1_0", "0x10", "1,5", "1 000", "١٢", "１２", "1e", "--1",
           "1\u00a0", "\u00a01", "\v1", "NaN", "nan", "inf", "-Infinity", "", "  ", "n/a"]


def by_regex(texts: list[str | None], decimal: str = ".") -> np.ndarray:
    """The regex path alone: text that is not a plain number becomes NaN."""
    arr = pa.array(texts, pa.string())
    if decimal != ".":
        arr = pc.replace_substring(pc.replace_substring(arr, ".", ""), decimal, ".")
    clean = pc.if_else(pc.match_substring_regex(arr, _NUMBER), pc.utf8_trim_whitespace(arr),
                       pa.scalar(None, pa.string()))
    return pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False)


@pytest.mark.parametrize("text", AWKWARD)
def test_one_value_columns_match_the_regex_path(text):
    for col in ([text], [text, "12.5"], ["3", text, None]):
        got = to_float(pd.Series(col, dtype="str")).to_numpy()
        want = by_regex(col)
        np.testing.assert_array_equal(got, want, err_msg=repr(col))
        assert (np.signbit(got) == np.signbit(want)).all()


def test_clean_and_dirty_columns_match_the_regex_path_with_decimal_comma():
    rng = np.random.default_rng(11)
    values = np.round(rng.lognormal(3, 2, 5000), 3)
    clean = [f"{v:,.3f}".replace(",", " ").replace(".", ",").replace(" ", ".")
             for v in values]
    got = to_float(pd.Series(clean, dtype="str"), decimal=",").to_numpy()
    np.testing.assert_array_equal(got, values)
    dirty = list(clean)
    dirty[::97] = ["x"] * len(dirty[::97])
    np.testing.assert_array_equal(to_float(pd.Series(dirty, dtype="str"), decimal=",")
                                  .to_numpy(), by_regex(dirty, decimal=","))
    assert np.isnan(to_float(pd.Series(dirty, dtype="str"), decimal=",").to_numpy()).sum() \
        == len(dirty[::97])
