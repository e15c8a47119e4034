"""Identifiers for the sandbox universe: ISINs with valid check digits, tickers, names.

Each market's style (ticker digits or letters, ISIN template, name words) is its
``sandbox`` entry in ``quantlib/markets.yaml``.

Everything here takes a :class:`numpy.random.Generator` so the universe stays seeded.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from quantlib.errors import QuantlibError
from quantlib.markets import MARKETS

__all__ = ["isin_check_digit", "is_valid_isin", "make_isins", "make_tickers", "make_names",
           "SECTORS"]

SECTORS = (
    "Energy", "Materials", "Industrials", "Consumer Discretionary", "Consumer Staples",
    "Health Care", "Financials", "Information Technology", "Communication Services",
    "Utilities", "Real Estate",
)

_ALNUM = string.digits + string.ascii_uppercase


def _luhn_digits(digits: str) -> int:
    total = 0
    for pos, ch in enumerate(reversed(digits)):
        d = int(ch)
        if pos % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def isin_check_digit(body: str) -> str:
    """Check digit of an 11-character ISIN body (country code + NSIN).

    Letters become two digits (A=10 ... Z=35), then the Luhn algorithm runs on the
    digit string.

    Examples
    --------
    >>> isin_check_digit("US037833100")  # Apple
    '5'
    >>> isin_check_digit("KR700593000")  # Samsung Electronics
    '3'
    """
    if len(body) != 11 or not body.isalnum():
        raise QuantlibError("an ISIN body must be 11 letters or digits", found=repr(body),
                            fix="pass the ISIN without its check digit", field="isin")
    digits = "".join(str(_ALNUM.index(ch)) for ch in body.upper())
    return str(_luhn_digits(digits))


def is_valid_isin(isin: str) -> bool:
    """Whether ``isin`` has 12 characters and a correct check digit.

    Examples
    --------
    >>> is_valid_isin("DE0007164600"), is_valid_isin("DE0007164601")
    (True, False)
    """
    return len(isin) == 12 and isin[:11].isalnum() and isin_check_digit(isin[:11]) == isin[11]


def _cusip_check(body: str) -> str:
    total = 0
    for pos, ch in enumerate(body):
        v = _ALNUM.index(ch)
        if pos % 2 == 1:
            v *= 2
        total += v // 10 + v % 10
    return str((10 - total % 10) % 10)


def _unique(draw, n: int, rng: np.random.Generator, taken: set[str] | None = None) -> list[str]:
    taken = set() if taken is None else taken
    out: list[str] = []
    for _ in range(100):
        for cand in draw(rng, 2 * (n - len(out)) + 8):
            if cand not in taken:
                taken.add(cand)
                out.append(cand)
                if len(out) == n:
                    return out
    raise QuantlibError("could not draw enough unique identifiers", found=f"{len(out)} of {n}",
                        fix="ask for fewer assets per market")


def _digit_tickers(rng: np.random.Generator, k: int, low: int, high: int, scale: int,
                   width: int) -> list[str]:
    return [f"{v * scale:0{width}d}" for v in rng.integers(low, high, k)]


def _letters(rng: np.random.Generator, k: int, lo: int, hi: int) -> list[str]:
    lens = rng.integers(lo, hi + 1, k)
    chars = rng.integers(0, 26, (k, hi))
    return ["".join(string.ascii_uppercase[c] for c in row[:n]) for row, n in zip(chars, lens,
                                                                                strict=True)]


def _spec(market: str, key: str) -> Any:
    return MARKETS[market].sandbox[key]


def make_tickers(market: str, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` unique tickers in the market's style (registry ``sandbox.tickers``).

    ``digits`` draws integers in ``[low, high)`` times ``scale``, zero-padded to
    ``width`` (KR: 6 digits; JP: 4 digits); ``letters`` draws 1-4 (US) or 3-4 (EU) letters.

    Examples
    --------
    >>> t = make_tickers("KR", 3, np.random.default_rng(0))
    >>> len(set(t)), all(len(x) == 6 and x.isdigit() for x in t)
    (3, True)
    >>> all(len(x) == 4 and x.isdigit() for x in make_tickers("JP", 3, np.random.default_rng(0)))
    True
    """
    spec = _spec(market, "tickers")
    if "digits" in spec:
        d = spec["digits"]
        return _unique(lambda r, k: _digit_tickers(r, k, d["low"], d["high"], d["scale"],
                                                   d["width"]), n, rng)
    lo, hi = spec["letters"]["min_length"], spec["letters"]["max_length"]
    return _unique(lambda r, k: _letters(r, k, lo, hi), n, rng)


def _nsins(spec: dict[str, Any], n: int, rng: np.random.Generator) -> list[str]:
    """National ids drawn from an alphabet (digits or alphanumerics), plus a check digit."""
    size, length = spec["alphabet"], spec["length"]
    codes = _unique(lambda r, k: ["".join(_ALNUM[c] for c in row)
                                  for row in r.integers(0, size, (k, length))], n, rng)
    body = [c + spec.get("suffix", "") for c in codes]
    if spec.get("check") == "cusip":
        body = [b + _cusip_check(b) for b in body]
    return body


def make_isins(market: str, tickers: list[str], rng: np.random.Generator) -> list[str]:
    """ISINs for a market from its template: ``KR7{ticker}00``, ``US{nsin}`` (a CUSIP),
    ``DE000{nsin}`` (a WKN), ``JP3{ticker}0000``; the check digit is appended.

    Examples
    --------
    >>> isins = make_isins("US", ["AAA", "BBB"], np.random.default_rng(1))
    >>> [is_valid_isin(i) and i.startswith("US") for i in isins]
    [True, True]
    >>> make_isins("JP", ["7203"], np.random.default_rng(1))
    ['JP3720300007']
    """
    spec = _spec(market, "isin")
    nsins = _nsins(spec["nsin"], len(tickers), rng) if "nsin" in spec else [""] * len(tickers)
    bodies = [spec["template"].format(ticker=t, nsin=s) for t, s in zip(tickers, nsins,
                                                                        strict=True)]
    return [b + isin_check_digit(b) for b in bodies]


def make_names(market: str, sectors: list[str], rng: np.random.Generator) -> list[str]:
    """Company names in the market's language (registry ``sandbox.names``) matching each
    sector; no commas or semicolons.

    Examples
    --------
    >>> make_names("US", ["Energy"], np.random.default_rng(0))[0].endswith("Energy Corp")
    True
    >>> make_names("JP", ["Financials"], np.random.default_rng(0))[0].endswith("銀行")
    True
    """
    spec = _spec(market, "names")
    words, count = spec["words"], spec["count"]
    out: list[str] = []
    seen: set[str] = set()
    for k, sector in enumerate(sectors):
        picks = rng.integers(0, len(words), count) if count > 1 else [rng.integers(0, len(words))]
        name = spec["template"].format(words="".join(words[i] for i in picks),
                                       suffix=spec["suffixes"][sector])
        if name in seen:
            name = spec["duplicate"].format(name=name, k=k)
        seen.add(name)
        out.append(name)
    return out
