"""The results API as a hub-managed service: real JupyterHub tokens, roles, Redis cache."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
import requests

from quantlib.results import publish
from quantlib.testing.demo import demo_result

pytestmark = pytest.mark.hub


def get(url: str, token: str | None = None, scheme: str = "token", **kw) -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=30, **kw)


def api(hub) -> str:
    return hub.service_url("results-api") + "api/v1"


def stored_meta(store: str, rid: str) -> dict:
    with open(f"{store}/objects/{rid}/meta.json") as fh:
        return json.load(fh)


def test_manager_sees_published_only(hub, tokens, results_store):
    store, ids = results_store
    r = get(f"{api(hub)}/results", tokens["mo"])
    assert r.status_code == 200, r.text
    listed = {m["result_id"] for m in r.json()}
    assert set(ids[:4]) <= listed
    assert ids[4] not in listed
    assert all(m["published"] for m in r.json())
    # the unpublished id looks exactly like a missing one
    for rid in (ids[4], "0000000000000000"):
        r = get(f"{api(hub)}/results/{rid}/metrics", tokens["mo"])
        assert r.status_code == 404
        assert "Work in progress" not in r.text


def test_metrics_equal_stored_meta_and_bearer_works(hub, tokens, results_store):
    store, ids = results_store
    r = get(f"{api(hub)}/results/{ids[1]}/metrics", tokens["mo"], scheme="Bearer")
    assert r.status_code == 200
    assert r.json()["metrics"] == stored_meta(store, ids[1])["metrics"]
    meta = get(f"{api(hub)}/results/{ids[1]}", tokens["mo"]).json()
    assert meta["title"] == stored_meta(store, ids[1])["title"]
    snap = get(f"{api(hub)}/results/{ids[1]}/snapshot", tokens["mo"]).json()
    assert snap["snapshot"] == "demo-snapshot"


def test_researcher_sees_own_unpublished_not_others(hub, tokens, results_store):
    _store, ids = results_store
    mine = {m["result_id"] for m in get(f"{api(hub)}/results", tokens["ann"]).json()}
    assert ids[4] in mine
    assert get(f"{api(hub)}/results/{ids[4]}/metrics", tokens["ann"]).status_code == 200
    theirs = {m["result_id"] for m in get(f"{api(hub)}/results", tokens["bob"]).json()}
    assert ids[4] not in theirs
    assert get(f"{api(hub)}/results/{ids[4]}/returns", tokens["bob"]).status_code == 404


def test_rejects_missing_bad_and_unauthorized_tokens(hub, tokens, results_store):
    _store, ids = results_store
    r = get(f"{api(hub)}/results")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "token"
    assert get(f"{api(hub)}/results", "not-a-real-token").status_code == 401
    r = get(f"{api(hub)}/results/{ids[0]}/metrics", tokens["eve"])
    assert r.status_code == 403
    assert "access:services!service=results-api" in r.json()["detail"]
    assert get(f"{api(hub)}/whoami", tokens["mo"]).json() == {"name": "mo", "groups": ["managers"]}


@pytest.mark.parametrize("fmt", ["json", "csv", "arrow"])
def test_returns_and_weights_roundtrip(hub, tokens, results_store, fmt):
    store, ids = results_store
    truth = pd.read_parquet(f"{store}/objects/{ids[0]}/returns.parquet")
    r = get(f"{api(hub)}/results/{ids[0]}/returns", tokens["mo"], params={"format": fmt})
    assert r.status_code == 200
    if fmt == "json":
        got = pd.DataFrame(r.json())
    elif fmt == "csv":
        assert r.headers["content-type"].startswith("text/csv")
        got = pd.read_csv(io.StringIO(r.text))
    else:
        got = pa.ipc.open_stream(r.content).read_all().to_pandas()
    assert len(got) == len(truth)
    assert list(got["date"][:1]) == [truth.index[0].strftime("%Y-%m-%d")]
    np.testing.assert_allclose(got["net"].to_numpy(), truth["net"].to_numpy(), rtol=1e-10)
    w = get(f"{api(hub)}/results/{ids[0]}/weights", tokens["mo"], params={"format": fmt})
    assert w.status_code == 200


def test_responses_cached_in_redis_and_publish_invalidates(hub, tokens, results_store, redis_url):
    store, ids = results_store
    client = redis.Redis.from_url(redis_url)
    before = len(get(f"{api(hub)}/results", tokens["mo"]).json())
    get(f"{api(hub)}/results/{ids[2]}/metrics", tokens["mo"])
    keys = [k.decode() for k in client.keys("quantlib:api:*")]
    assert any(k.startswith(f"quantlib:api:meta:{ids[2]}@") for k in keys)
    assert any(k.startswith("quantlib:api:list:mo:") for k in keys)
    new = demo_result(seed=7, years=1, strategy="fresh_one", params={"lookback": 40, "top_k": 5})
    rid = publish(new, title="Fresh publish", author="bob", url=store,
                  allow_synthetic=True)
    after = get(f"{api(hub)}/results", tokens["mo"]).json()
    assert len(after) == before + 1
    assert after[0]["result_id"] == rid or rid in {m["result_id"] for m in after}


def test_openapi_docs_behind_the_hub_login_schema_public(hub, tokens):
    """docs/security.md: the docs page needs a hub login; the schema (routes only) is public."""
    r = requests.get(hub.service_url("results-api"), timeout=30, allow_redirects=False)
    assert r.status_code == 302 and "oauth_login" in r.headers["Location"]
    page = requests.get(hub.service_url("results-api"), timeout=30,
                        headers={"Authorization": f"token {tokens['mo']}"})
    assert page.status_code == 200 and "/api/v1/results/{result_id}/returns" in page.text
    spec = requests.get(hub.service_url("results-api") + "openapi.json", timeout=30).json()
    assert "/api/v1/results/{result_id}/returns" in spec["paths"]
    assert "/api/v1/results" in spec["paths"] and "post" in spec["paths"]["/api/v1/results"]
