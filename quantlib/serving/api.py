"""The results API: published backtest results over HTTP (FastAPI).

Routes (under the service prefix, e.g. ``/services/results-api/`` behind the hub):

===============================================  ============================================
``GET /``                                        OpenAPI docs (Swagger UI); ``/openapi.json``
``GET /health``                                  liveness, no auth
``GET /api/v1/whoami``                           the caller as the API sees them
``GET /api/v1/results?q=&strategy=&author=&tag=``  results the caller may see, newest first
``GET /api/v1/results/{id}``                     one result's metadata
``GET /api/v1/results/{id}/metrics``             its metrics
``GET /api/v1/results/{id}/returns?format=``     daily returns: ``json`` | ``csv`` | ``arrow``
``GET /api/v1/results/{id}/weights?format=``     end-of-day weights, same formats
``GET /api/v1/results/{id}/snapshot``            the data snapshot it used
``POST /api/v1/results``                         publish (:mod:`quantlib.serving.publishing`)
===============================================  ============================================

A result id is 1-64 letters, digits, ``-`` or ``_`` (:data:`RESULT_ID_PATTERN`); any other
``{id}`` answers 422 before the store is touched.

Every ``/api`` route needs a JupyterHub token (see :mod:`quantlib.serving.auth`).
A result the caller may not see answers 404, like a missing one, so ids of other users'
unpublished work do not leak. Response bodies are cached (:mod:`quantlib.serving.cache`)
under keys that carry the store's version token, so a publish is visible at once.
"""


import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from quantlib.errors import AccessDeniedError, StoreError
from quantlib.serving.auth import Authenticator, NotAuthenticated
from quantlib.serving.cache import ResponseCache, make_cache
from quantlib.serving.publishing import add_publish_route
from quantlib.serving.store import ResultsView, Viewer

__all__ = ["create_app", "frame_bytes", "MEDIA_TYPES", "RESULT_ID_PATTERN"]

log = logging.getLogger(__name__)

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
}

Fmt = Literal["json", "csv", "arrow"]

#: What a result id may look like (content ids are 16 hex digits); checked before storage.
RESULT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ResultId = Annotated[str, Path(pattern=RESULT_ID_PATTERN, max_length=64,
                               description="a result id (16 hex digits for stored results)")]

SUMMARY_FIELDS = ("result_id", "title", "author", "created_at", "strategy", "params",
                  "snapshot", "metrics", "published", "tags", "description")


def frame_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """Serialize a date-indexed frame as JSON records, CSV or Arrow IPC (stream).

    Examples
    --------
    >>> f = pd.DataFrame({"net": [0.01]}, index=pd.DatetimeIndex(["2024-01-02"], name="date"))
    >>> frame_bytes(f, "json")
    b'[{"date":"2024-01-02","net":0.01}]'
    >>> frame_bytes(f, "csv").decode().splitlines()
    ['date,net', '2024-01-02,0.01']
    """
    out = frame.reset_index()
    out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
    out.columns = [str(c) for c in out.columns]
    if fmt == "json":
        return out.to_json(orient="records", double_precision=15).encode()
    if fmt == "csv":
        return out.to_csv(index=False, float_format="%.12g").encode()
    import pyarrow as pa

    table = pa.Table.from_pandas(out, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta.get(k) for k in SUMMARY_FIELDS}


def create_app(view: ResultsView, auth: Authenticator, *, cache: ResponseCache | None = None,
               prefix: str = "/") -> FastAPI:
    """Build the results API application.

    Parameters
    ----------
    view : ResultsView
        The results store to serve.
    auth : HubTokenAuth or DevAuth
        How callers are identified.
    cache : ResponseCache, optional
        Defaults to :func:`quantlib.serving.cache.make_cache` (Redis if ``REDIS_URL``).
    prefix : str
        URL prefix the app is mounted under (the hub's ``JUPYTERHUB_SERVICE_PREFIX``).

    Examples
    --------
    >>> import tempfile
    >>> from quantlib.serving.auth import DevAuth
    >>> app = create_app(ResultsView(tempfile.mkdtemp()), DevAuth())
    >>> sorted({r.path for r in app.routes if "results" in getattr(r, "path", "")})[:2]
    ['/api/v1/results', '/api/v1/results/{result_id}']
    """
    cache = cache or make_cache()
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await cache.close()

    app = FastAPI(title="quantlib results API", docs_url="/", redoc_url=None, lifespan=lifespan,
                  description="Published backtest results: metadata, metrics, returns, weights.")
    app.state.cache = cache
    app.state.view = view

    async def viewer(authorization: Annotated[str | None, Header()] = None) -> Viewer:
        try:
            return await auth.authenticate(authorization)
        except NotAuthenticated as exc:
            raise HTTPException(401, f"{exc}: send 'Authorization: token <jupyterhub token>'",
                                headers={"WWW-Authenticate": "token"}) from exc
        except AccessDeniedError as exc:
            raise HTTPException(403, str(exc)) from exc

    Caller = Annotated[Viewer, Depends(viewer)]

    async def cached(key: str, produce: Callable[[], bytes]) -> bytes:
        full = f"{key}@{view.version()}"
        hit = await cache.get(full)
        if hit is not None:
            return hit
        body = await run_in_threadpool(produce)
        await cache.set(full, body)
        return body

    async def visible_meta(who: Viewer, result_id: str) -> dict[str, Any]:
        def produce() -> bytes:
            try:
                return json.dumps(view.meta(result_id)).encode()
            except StoreError:
                return b"null"
        body = await cached(f"meta:{result_id}", produce)
        meta = json.loads(body)
        if meta is None or not (meta.get("published") or meta.get("author") == who.name):
            raise HTTPException(404, f"no result {result_id!r} visible to {who.name}")
        return meta

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, Any]:
        return {"ok": True, "cache": cache.name}

    @app.get("/api/v1/whoami", tags=["meta"])
    async def whoami(who: Caller) -> dict[str, Any]:
        return {"name": who.name, "groups": list(who.groups)}

    @app.get("/api/v1/results", tags=["results"])
    async def list_results(who: Caller, q: str | None = None, strategy: str | None = None,
                           author: str | None = None, tag: str | None = None) -> Response:
        key = f"list:{who.name}:{q}:{strategy}:{author}:{tag}"
        body = await cached(key, lambda: json.dumps([_summary(m) for m in view.list(
            who, query=q, strategy=strategy, author=author, tag=tag)]).encode())
        return Response(body, media_type=MEDIA_TYPES["json"])

    @app.get("/api/v1/results/{result_id}", tags=["results"])
    async def get_meta(result_id: ResultId, who: Caller) -> dict[str, Any]:
        return await visible_meta(who, result_id)

    @app.get("/api/v1/results/{result_id}/metrics", tags=["results"])
    async def get_metrics(result_id: ResultId, who: Caller) -> dict[str, Any]:
        meta = await visible_meta(who, result_id)
        return {"result_id": result_id, "metrics": meta.get("metrics") or {}}

    @app.get("/api/v1/results/{result_id}/snapshot", tags=["results"])
    async def get_snapshot(result_id: ResultId, who: Caller) -> dict[str, Any]:
        meta = await visible_meta(who, result_id)
        return {"result_id": result_id, "snapshot": meta.get("snapshot"),
                "quantlib_version": meta.get("quantlib_version"),
                "data": meta.get("data") or meta.get("data_snapshot")}

    def frame_route(name: str, loader: Callable[[str], pd.DataFrame]) -> None:
        @app.get(f"/api/v1/results/{{result_id}}/{name}", tags=["results"], name=name,
                 responses={200: {"content": {v: {} for v in MEDIA_TYPES.values()}}})
        async def get_frame(result_id: ResultId, who: Caller,
                            format: Annotated[Fmt, Query()] = "json") -> Response:  # noqa: A002
            await visible_meta(who, result_id)
            body = await cached(f"{name}:{result_id}:{format}",
                                lambda: frame_bytes(loader(result_id), format))
            headers = {}
            if format != "json":
                ext = "csv" if format == "csv" else "arrow"
                headers["Content-Disposition"] = f'attachment; filename="{result_id}-{name}.{ext}"'
            return Response(body, media_type=MEDIA_TYPES[format], headers=headers)

    frame_route("returns", view.returns)
    frame_route("weights", view.weights)
    add_publish_route(app, view, Depends(viewer))

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> Response:
        return Response(json.dumps({"detail": str(exc)}), status_code=500,
                        media_type=MEDIA_TYPES["json"])

    prefix = "/" + prefix.strip("/")
    if prefix == "/":
        return app
    outer = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    outer.mount(prefix, app)
    outer.state.inner = app
    return outer
