"""The results service as the only writer: publish with a hub token, id checks, token cache.

Uses the session's real dev hub (tests/serving/conftest.py): ann and bob are researchers
(``custom:results:publish``), mo a manager, eve has no role.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from quantlib.errors import StoreError
from quantlib.results.remote import publish_via_service
from quantlib.testing.demo import demo_result

pytestmark = pytest.mark.hub


def api(hub) -> str:
    return hub.service_url("results-api") + "api/v1"


def stored_meta(store: str, rid: str) -> dict:
    with open(f"{store}/objects/{rid}/meta.json") as fh:
        return json.load(fh)


@pytest.mark.parametrize(("result_id", "why"), [
    ("a" * 5000, "5,000 characters"), ("a" * 65, "one past the limit"),
    ("abc.def", "a dot"), ("%2e%2e%2fetc", "an encoded ../"), ("a b", "a space"),
])
def test_bad_ids_answer_422_before_the_store(hub, tokens, result_id, why):
    for suffix in ("", "/metrics", "/returns"):
        r = requests.get(f"{api(hub)}/results/{result_id}{suffix}", timeout=30,
                         headers={"Authorization": f"token {tokens['ann']}"})
        assert r.status_code in (404, 422), (why, suffix, r.status_code, r.text[:200])
        assert r.status_code != 500 and "Traceback" not in r.text
    r = requests.get(f"{api(hub)}/results/{result_id}", timeout=30,
                     headers={"Authorization": f"token {tokens['ann']}"})
    assert r.status_code == 422 or (why == "an encoded ../" and r.status_code == 404)


def test_publish_records_the_token_user_not_a_claimed_author(hub, tokens, results_store):
    store, _ids = results_store
    res = demo_result(seed=31, years=1, strategy="forged_author", author="bob")
    res.info["author"] = "bob"  # the saved meta.json claims bob
    rid = publish_via_service(res, hub.service_url("results-api"), tokens["ann"],
                              title="Ann's, claiming bob", tags=["isolation"],
                              allow_synthetic=True)
    meta = stored_meta(store, rid)
    assert meta["author"] == "ann" and meta["published"] is True
    assert meta["title"] == "[synthetic] Ann's, claiming bob"  # demo results are synthetic
    listed = requests.get(f"{api(hub)}/results", params={"author": "ann"}, timeout=30,
                          headers={"Authorization": f"token {tokens['mo']}"}).json()
    assert rid in {m["result_id"] for m in listed}


@pytest.mark.parametrize("who", ["mo", "eve"])
def test_publish_refused_without_the_publish_scope(hub, tokens, results_store, who):
    store, _ids = results_store
    res = demo_result(seed=41, years=1, strategy=f"by_{who}")
    with pytest.raises(StoreError, match="HTTP 403") as err:
        publish_via_service(res, hub.service_url("results-api"), tokens[who], title="nope",
                            allow_synthetic=True)
    assert ("custom:results:publish" in str(err.value)
            or "access:services!service=results-api" in str(err.value))
    with pytest.raises(FileNotFoundError):
        stored_meta(store, res.result_id)


def test_publish_refuses_files_whose_id_is_not_their_content(hub, tokens):
    res = demo_result(seed=51, years=1, strategy="tampered")
    import base64

    from quantlib.results.layout import result_files

    files = result_files(res)
    meta = json.loads(files["meta.json"])
    meta["result_id"] = "0123456789abcdef"  # would overwrite another result's folder
    files["meta.json"] = json.dumps(meta).encode()
    body = {"title": "t", "files": {k: base64.b64encode(v).decode() for k, v in files.items()}}
    r = requests.post(f"{api(hub)}/results", json=body, timeout=60,
                      headers={"Authorization": f"token {tokens['ann']}"})
    assert r.status_code == 422 and res.result_id in r.json()["detail"]
    body["files"]["../../escape"] = body["files"].pop("weights.parquet")
    r = requests.post(f"{api(hub)}/results", json=body, timeout=60,
                      headers={"Authorization": f"token {tokens['ann']}"})
    assert r.status_code == 422 and "meta.json" in r.json()["detail"]


def test_a_revoked_token_stops_working_within_the_cache_window(hub):
    hub.api("POST", "users/bob")
    made = hub.api("POST", "users/bob/tokens", json={"note": "to revoke", "expires_in": 600})
    assert made.status_code == 201, made.text
    auth = {"Authorization": f"token {made.json()['token']}"}
    assert requests.get(f"{api(hub)}/whoami", headers=auth, timeout=30).status_code == 200
    deleted = hub.api("DELETE", f"users/bob/tokens/{made.json()['id']}")
    assert deleted.status_code == 204
    revoked_at = time.monotonic()
    while requests.get(f"{api(hub)}/whoami", headers=auth, timeout=30).status_code == 200:
        assert time.monotonic() - revoked_at < 5.0 + 3.0, "revoked token still accepted"
        time.sleep(0.25)
    assert requests.get(f"{api(hub)}/whoami", headers=auth, timeout=30).status_code == 401
