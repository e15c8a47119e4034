"""Small canonical frames for store tests (independent of the sandbox generator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantlib import calendars
from quantlib.markets import DEFAULT_MARKETS, MARKETS

_CCY = {code: m.currency for code, m in MARKETS.items()}
_MIC = {code: m.mic for code, m in MARKETS.items()}


def make_frames(n_assets: int = 4, start: str = "2024-01-02", end: str = "2024-03-29",
                seed: int = 0, markets: tuple[str, ...] = DEFAULT_MARKETS,
                statement_offset_days: int = 0) -> dict[str, pd.DataFrame]:
    """Canonical frames with random but exact values (one bar per session per asset)."""
    rng = np.random.default_rng(seed)
    assets, prices, actions, statements = [], [], [], []
    for m in markets:
        days = calendars.sessions(m, start, end)
        closes = calendars.session_closes(m, days) + pd.Timedelta(minutes=15)
        for i in range(n_assets):
            aid = f"{m}{seed:02d}{i:08d}0"
            assets.append({"asset_id": aid, "market": m, "mic": _MIC[m], "currency": _CCY[m],
                           "sector": ["Tech", "Energy"][i % 2], "name": f"{m} Co {i}",
                           "listed": pd.Timestamp("2010-01-04"),
                           "delisted": pd.NaT if i else pd.Timestamp(end),
                           "known_at": pd.Timestamp("2010-01-01", tz="UTC")})
            # the last asset starts trading later (a missing head in the panel)
            use = slice(5, None) if i == n_assets - 1 else slice(None)
            d, k = days[use], closes[use]
            close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(d))))
            prices.append(pd.DataFrame({
                "asset_id": aid, "date": d, "open": close * 0.99, "high": close * 1.02,
                "low": close * 0.97, "close": close,
                "volume": rng.integers(1000, 9000, len(d)).astype("float64"), "known_at": k}))
            actions.append({"asset_id": aid, "ex_date": d[10], "kind": "dividend",
                            "value": 0.5 + i, "known_at": k[5]})
            if i == 1:
                actions.append({"asset_id": aid, "ex_date": d[20], "kind": "split",
                                "value": 2.0, "known_at": k[8]})
            for field in ("revenue", "net_income"):
                statements.append({"asset_id": aid, "field": field,
                                   "period_end": pd.Timestamp("2023-12-31"),
                                   "value": float(rng.integers(1, 10**6)),
                                   "known_at": pd.Timestamp("2024-02-15 08:00", tz="UTC")
                                   + pd.Timedelta(days=statement_offset_days)})
    fx_days = calendars.global_sessions(list(markets), start, end)
    fx = pd.DataFrame({
        "date": np.repeat(fx_days, 2), "currency": ["EUR", "KRW"] * len(fx_days),
        "rate": np.ravel([[1.1 + 0.001 * j, 0.00075 + 1e-6 * j] for j in range(len(fx_days))]),
        "known_at": np.repeat(fx_days, 2).tz_localize("UTC") + pd.Timedelta(hours=22)})
    sym = pd.DataFrame([{"asset_id": a["asset_id"], "symbol": a["asset_id"][2:8],
                         "valid_from": pd.Timestamp("2010-01-04"), "valid_to": pd.NaT}
                        for a in assets])
    frames = {"assets": pd.DataFrame(assets), "symbols": sym,
              "prices": pd.concat(prices, ignore_index=True),
              "corporate_actions": pd.DataFrame(actions), "fx": fx,
              "statements": pd.DataFrame(statements)}
    for f in frames.values():
        for col in f.columns:
            if f[col].dtype.kind == "M":
                f[col] = f[col].astype("datetime64[ns, UTC]" if getattr(f[col].dtype, "tz", None)
                                       else "datetime64[ns]")
    return frames


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    return make_frames()


@pytest.fixture(name="make_frames")
def _make_frames_fixture():
    """The :func:`make_frames` factory (conftest modules are not importable by name)."""
    return make_frames


@pytest.fixture
def s3_store(moto_endpoint, monkeypatch, request):
    """An empty bucket on the moto server, AWS_* env pointing at it; yields the store URL."""
    import boto3

    for var, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    bucket = "quant-" + request.node.name.lower().replace("_", "-")[:40]
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/data"
