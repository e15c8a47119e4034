"""Identifiers for the sandbox universe: ISINs with valid check digits, tickers, names.

Everything here takes a :class:`numpy.random.Generator` so the universe stays seeded.
"""

from __future__ import annotations

import string

import numpy as np

from quantlib.errors import QuantlibError

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


def _kr_tickers(rng: np.random.Generator, k: int) -> list[str]:
    return [f"{v * 10:06d}" for v in rng.integers(1, 99_999, k)]


def _letters(rng: np.random.Generator, k: int, lo: int, hi: int) -> list[str]:
    lens = rng.integers(lo, hi + 1, k)
    chars = rng.integers(0, 26, (k, hi))
    return ["".join(string.ascii_uppercase[c] for c in row[:n]) for row, n in zip(chars, lens,
                                                                                strict=True)]


def make_tickers(market: str, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` unique tickers in the market's style (KR: 6 digits; US: 1-4 letters; EU: 3-4).

    Examples
    --------
    >>> t = make_tickers("KR", 3, np.random.default_rng(0))
    >>> len(set(t)), all(len(x) == 6 and x.isdigit() for x in t)
    (3, True)
    """
    if market == "KR":
        return _unique(_kr_tickers, n, rng)
    lo, hi = (1, 4) if market == "US" else (3, 4)
    return _unique(lambda r, k: _letters(r, k, lo, hi), n, rng)


def make_isins(market: str, tickers: list[str], rng: np.random.Generator) -> list[str]:
    """ISINs for a market: ``KR7<ticker>00?``, ``US<CUSIP>?``, ``DE000<WKN>?``.

    Examples
    --------
    >>> isins = make_isins("US", ["AAA", "BBB"], np.random.default_rng(1))
    >>> [is_valid_isin(i) and i.startswith("US") for i in isins]
    [True, True]
    """
    if market == "KR":
        bodies = [f"KR7{t}00" for t in tickers]
    elif market == "US":
        issuers = _unique(lambda r, k: ["".join(_ALNUM[c] for c in row)
                                        for row in r.integers(0, 10, (k, 6))], len(tickers), rng)
        cusips = [f"{iss}10" + _cusip_check(f"{iss}10") for iss in issuers]
        bodies = [f"US{c}" for c in cusips]
    else:
        wkns = _unique(lambda r, k: ["".join(_ALNUM[c] for c in row)
                                     for row in r.integers(0, 36, (k, 6))], len(tickers), rng)
        bodies = [f"DE000{w}" for w in wkns]
    return [b + isin_check_digit(b) for b in bodies]


_KR_SYL = list("한대삼성신우동서남북중앙미래태평양금강백두현진유일화광명영세진흥국제")
_KR_SUFFIX = {
    "Energy": "에너지", "Materials": "화학", "Industrials": "중공업",
    "Consumer Discretionary": "자동차", "Consumer Staples": "식품", "Health Care": "제약",
    "Financials": "금융", "Information Technology": "전자", "Communication Services": "통신",
    "Utilities": "전력", "Real Estate": "리츠",
}
_WORDS = ["Apex", "Summit", "Harbor", "Granite", "Northern", "Pacific", "Atlas", "Beacon",
          "Crescent", "Delta", "Evergreen", "Frontier", "Golden", "Horizon", "Liberty",
          "Meridian", "Pioneer", "Quantum", "Redwood", "Silver", "Titan", "Union", "Vertex"]
_EU_WORDS = ["Rhein", "Alpen", "Nord", "Hansa", "Berg", "Elbe", "Main", "Donau", "Isar",
             "Linden", "Falken", "Stern", "Adler", "Wald", "Brücken", "Tal", "Ostsee"]
_EN_SUFFIX = {
    "Energy": "Energy", "Materials": "Materials", "Industrials": "Industries",
    "Consumer Discretionary": "Motors", "Consumer Staples": "Foods", "Health Care": "Pharma",
    "Financials": "Financial", "Information Technology": "Systems",
    "Communication Services": "Telecom", "Utilities": "Power", "Real Estate": "Properties",
}


def make_names(market: str, sectors: list[str], rng: np.random.Generator) -> list[str]:
    """Company names (Korean for KR) matching each sector; no commas or semicolons.

    Examples
    --------
    >>> make_names("US", ["Energy"], np.random.default_rng(0))[0].endswith("Energy Corp")
    True
    """
    out: list[str] = []
    seen: set[str] = set()
    for k, sector in enumerate(sectors):
        if market == "KR":
            a, b = rng.integers(0, len(_KR_SYL), 2)
            name = f"{_KR_SYL[a]}{_KR_SYL[b]}{_KR_SUFFIX[sector]}"
        elif market == "US":
            name = f"{_WORDS[rng.integers(0, len(_WORDS))]} {_EN_SUFFIX[sector]} Corp"
        else:
            name = f"{_EU_WORDS[rng.integers(0, len(_EU_WORDS))]} {_EN_SUFFIX[sector]} AG"
        if name in seen:
            name = f"{name} {k}" if market != "KR" else f"{name}{k}"
        seen.add(name)
        out.append(name)
    return out
