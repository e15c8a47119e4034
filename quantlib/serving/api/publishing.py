"""Publishing through the results service: the only writer of the shared results store.

``POST /api/v1/results`` takes a saved result's files (base64 in a JSON body) and the
publication fields, checks the caller's hub token holds ``custom:results:publish``,
re-reads the files as a :class:`~quantlib.backtest.result.Result` (their ``meta.json`` must
carry the id their content hashes to), and publishes it with
:func:`quantlib.results.publish` under the **token's** user name: no field of the request
can choose the author. On a local store it then gives the result the published modes
(:func:`quantlib.platform.accounts.share_result_dir`).

The client side is :func:`quantlib.results.remote.publish_via_service`, which
``quantlib.publish`` calls in a notebook run by the hub (``QUANTLIB_RESULTS_API`` set).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from quantlib.errors import StoreError
from quantlib.results.layout import INDEX_PATH, RESULT_FILES, object_path, result_from_files
from quantlib.results.view import ResultsView, Viewer

__all__ = ["PublishRequest", "add_publish_route", "PUBLISH_SCOPE", "RESULT_FILES",
           "MAX_PUBLISH_BYTES"]

PUBLISH_SCOPE = "custom:results:publish"
MAX_PUBLISH_BYTES = int(os.environ.get("QUANTLIB_MAX_PUBLISH_BYTES", str(512 * 2**20)))


class PublishRequest(BaseModel):
    """The body of ``POST /api/v1/results`` (no author: the hub token names it)."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    allowed_params: dict[str, Any] | None = None
    replace: bool = False
    allow_synthetic: bool = False
    files: dict[str, str] = Field(description="file name -> base64 bytes, from Result.save")


def _load(files: dict[str, str]) -> Any:
    unknown = sorted(set(files) - set(RESULT_FILES))
    if unknown or "meta.json" not in files:
        raise HTTPException(422, f"files must be {list(RESULT_FILES)} with meta.json; "
                                 f"found {sorted(files)}")
    try:
        raw = {name: base64.b64decode(data, validate=True) for name, data in files.items()}
        result = result_from_files(raw, "POST /api/v1/results")
    except (binascii.Error, ValueError, KeyError, StoreError, OSError) as exc:
        raise HTTPException(422, f"files must be a result saved by Result.save: {exc}") from exc
    if json.loads(raw["meta.json"]).get("result_id") != result.result_id:
        raise HTTPException(422, "meta.json's result_id must be the id of its content "
                                 f"({result.result_id}); save the result again")
    return result


def _secure_local(view: ResultsView, result_id: str) -> None:
    if view.location.protocol != "file":
        return
    from quantlib.platform.accounts import share_index, share_result_dir

    share_result_dir(Path(object_path(view.root, result_id)), published=True)
    share_index(Path(view.root) / INDEX_PATH)


def add_publish_route(app: FastAPI, view: ResultsView, caller: Any) -> None:
    """Register ``POST /api/v1/results`` on ``app``; ``caller`` is the auth dependency."""

    @app.post("/api/v1/results", tags=["results"], status_code=201)
    async def publish_result(body: PublishRequest, request: Request,
                             who: Viewer = caller) -> dict[str, Any]:
        if not request.headers.get("authorization"):  # not on a browser cookie alone
            raise HTTPException(403, "publishing needs the hub token in the Authorization "
                                     "header (quantlib.publish sends it)")
        if PUBLISH_SCOPE not in who.scopes:
            raise HTTPException(403, f"publishing needs the {PUBLISH_SCOPE} scope; "
                                     f"{who.name} lacks it (ask an admin)")
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_PUBLISH_BYTES:
            raise HTTPException(413, f"a published result must be at most "
                                     f"{MAX_PUBLISH_BYTES} bytes; found {size}")
        result = await run_in_threadpool(_load, body.files)

        def write() -> str:
            from quantlib.results import publish

            rid = publish(result, body.title, body.description, list(body.tags),
                          author=who.name, allowed_params=body.allowed_params, url=view.url,
                          replace=body.replace, allow_synthetic=body.allow_synthetic)
            _secure_local(view, rid)
            return rid

        try:
            rid = await run_in_threadpool(write)
        except StoreError as exc:  # e.g. would replace a different result, synthetic data
            raise HTTPException(409, str(exc)) from exc
        return {"result_id": rid, "author": who.name, "published": True}
