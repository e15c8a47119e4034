"""The results API: published backtest results over HTTP (FastAPI).

Routes (under the service prefix, e.g. ``/services/results-api/`` behind the hub):

===============================================  ============================================
``GET /`` (and ``/docs``)                         API docs rendered here (no CDN); ``/openapi.json``
``GET /token``                                   how to get a hub token, curl/Python examples
``GET /oauth_login``, ``/oauth_callback``        hub login for browsers (a cookie)
``GET /health``                                  liveness, no auth
``GET /api/v1/whoami``                           the caller as the API sees them
``GET /api/v1/results?q=&strategy=&author=&tag=``  results the caller may see, newest first
``GET /api/v1/results/{id}``                     one result's metadata
``GET /api/v1/results/{id}/metrics``             its metrics and each one's ``units``
``GET /api/v1/results/{id}/returns?format=``     daily returns: ``json`` | ``csv`` | ``arrow``
``GET /api/v1/results/{id}/weights?format=``     end-of-day weights, same formats
``GET /api/v1/results/{id}/snapshot``            the data snapshot it used
``POST /api/v1/results``                         publish (:mod:`quantlib.serving.api.publishing`)
===============================================  ============================================

A result id is 1-64 letters, digits, ``-`` or ``_`` (:data:`RESULT_ID_PATTERN`); any other
``{id}`` answers 422 before the store is touched.

Every ``/api`` route needs a JupyterHub token (see :mod:`quantlib.serving.auth.tokens`): in the
``Authorization`` header, or, in a browser, the API's cookie set by the hub login
(:mod:`quantlib.serving.auth.api_oauth`), as on the dashboards. The docs pages send a
browser without that cookie through the hub login.
A result the caller may not see answers 404, like a missing one, so ids of other users'
unpublished work do not leak. Response bodies are cached (:mod:`quantlib.serving.api.cache`)
under keys that carry the store's version token, so a publish is visible at once.
"""


import contextlib
import io
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

# imported with the app (not in a request): the backtest package takes seconds to import
from quantlib.backtest.metrics import metric_units
from quantlib.errors import AccessDeniedError, StoreError
from quantlib.results.view import ResultsView, Viewer
from quantlib.serving.api.cache import ResponseCache, make_cache
from quantlib.serving.api.docs import docs_html, token_html
from quantlib.serving.api.publishing import add_publish_route
from quantlib.serving.auth import api_oauth
from quantlib.serving.auth.tokens import Authenticator, HubTokenAuth, NotAuthenticated

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
    return {**{k: meta.get(k) for k in SUMMARY_FIELDS}, "units": _units(meta)}


def _units(meta: dict[str, Any]) -> dict[str, str]:
    """Unit of each metric (``fraction``, ``ratio``, ``days``, ...; metrics.METRIC_UNITS)."""
    return metric_units(meta.get("metrics") or {})


def _browser_routes(app: FastAPI, identify: Callable[..., Any],
                    login: api_oauth.HubLogin | None) -> None:
    """The docs, the token page and the hub login (browsers; scripts use tokens)."""

    async def who_or_login(request: Request) -> Viewer | Response:
        try:
            return await identify(request.headers.get("authorization"), request)
        except NotAuthenticated:
            if login is None:
                raise
            return RedirectResponse(f"{_base(request)}oauth_login?next={request.url.path}",
                                    status_code=302)
        except AccessDeniedError as exc:
            raise HTTPException(403, str(exc)) from exc

    @app.get("/", include_in_schema=False)
    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Response:
        who = await who_or_login(request)
        if isinstance(who, Response):
            return who
        return HTMLResponse(docs_html(app.openapi(), _base(request), who.name))

    @app.get("/token", include_in_schema=False)
    async def token_page(request: Request) -> Response:
        who = await who_or_login(request)
        if isinstance(who, Response):
            return who
        origin = f"{request.url.scheme}://{request.url.netloc}"
        hub = origin + os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"
        return HTMLResponse(token_html(origin + _base(request), hub, who.name))

    if login is None:
        return

    @app.get("/oauth_login", include_in_schema=False)
    async def oauth_login(next: str | None = None) -> Response:  # noqa: A002
        url, cookie = login.start(next)
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(**cookie)
        return response

    @app.get("/oauth_callback", include_in_schema=False)
    async def oauth_callback(request: Request, code: str, state: str) -> Response:
        done = await login.finish(code, state, request.cookies.get(api_oauth.STATE_COOKIE))
        if done is None:
            raise HTTPException(400, "OAuth state mismatch: open the API page again to log in")
        response = RedirectResponse(done[0], status_code=302)
        response.set_cookie(**done[1])
        response.delete_cookie(api_oauth.STATE_COOKIE, path=login.prefix)
        return response


def _base(request: Request) -> str:
    """The API's public path prefix, ending in ``/`` (the mount's root path)."""
    return (request.scope.get("root_path") or "").rstrip("/") + "/"


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
        Defaults to :func:`quantlib.serving.api.cache.make_cache` (Redis if ``REDIS_URL``).
    prefix : str
        URL prefix the app is mounted under (the hub's ``JUPYTERHUB_SERVICE_PREFIX``).

    Examples
    --------
    >>> import tempfile
    >>> from quantlib.serving.auth.tokens import DevAuth
    >>> app = create_app(ResultsView(tempfile.mkdtemp()), DevAuth())
    >>> sorted({r.path for r in app.routes if "results" in getattr(r, "path", "")})[:2]
    ['/api/v1/results', '/api/v1/results/{result_id}']
    """
    cache = cache or make_cache()
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await cache.close()

    app = FastAPI(title="quantlib results API", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Published backtest results: metadata, metrics, returns, weights.")
    app.state.cache = cache
    app.state.view = view
    login = api_oauth.HubLogin(prefix) if isinstance(auth, HubTokenAuth) else None

    async def identify(authorization: str | None, request: Request) -> Viewer:
        cookie = api_oauth.token_from_cookie(request.cookies.get(api_oauth.TOKEN_COOKIE))
        if not authorization and cookie:
            authorization = f"token {cookie}"
        return await auth.authenticate(authorization)

    async def viewer(request: Request,
                     authorization: Annotated[str | None, Header()] = None) -> Viewer:
        try:
            return await identify(authorization, request)
        except NotAuthenticated as exc:
            raise HTTPException(401, f"{exc}: send 'Authorization: token <jupyterhub token>'",
                                headers={"WWW-Authenticate": "token"}) from exc
        except AccessDeniedError as exc:
            raise HTTPException(403, str(exc)) from exc

    Caller = Annotated[Viewer, Depends(viewer)]
    _browser_routes(app, identify, login)

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
        """Liveness of the API and which response cache it uses (no login)."""
        return {"ok": True, "cache": cache.name}

    @app.get("/api/v1/whoami", tags=["meta"])
    async def whoami(who: Caller) -> dict[str, Any]:
        """The caller as the API sees them: hub user name and groups."""
        return {"name": who.name, "groups": list(who.groups)}

    @app.get("/api/v1/results", tags=["results"])
    async def list_results(who: Caller, q: str | None = None, strategy: str | None = None,
                           author: str | None = None, tag: str | None = None) -> Response:
        """Results the caller may see, newest first; ``q`` searches title, description,
        strategy, author and tags."""
        key = f"list:{who.name}:{q}:{strategy}:{author}:{tag}"
        body = await cached(key, lambda: json.dumps([_summary(m) for m in view.list(
            who, query=q, strategy=strategy, author=author, tag=tag)]).encode())
        return Response(body, media_type=MEDIA_TYPES["json"])

    @app.get("/api/v1/results/{result_id}", tags=["results"])
    async def get_meta(result_id: ResultId, who: Caller) -> dict[str, Any]:
        """One result's stored metadata (``meta.json``) plus each metric's ``units``."""
        meta = await visible_meta(who, result_id)
        return {**meta, "units": _units(meta)}

    @app.get("/api/v1/results/{result_id}/metrics", tags=["results"])
    async def get_metrics(result_id: ResultId, who: Caller) -> dict[str, Any]:
        """One result's stored metrics and their ``units`` (a fraction 0.12 is 12%)."""
        meta = await visible_meta(who, result_id)
        return {"result_id": result_id, "metrics": meta.get("metrics") or {},
                "units": _units(meta)}

    @app.get("/api/v1/results/{result_id}/snapshot", tags=["results"])
    async def get_snapshot(result_id: ResultId, who: Caller) -> dict[str, Any]:
        """The data version (snapshot) and selection the result was computed on."""
        meta = await visible_meta(who, result_id)
        return {"result_id": result_id, "snapshot": meta.get("snapshot"),
                "quantlib_version": meta.get("quantlib_version"),
                "data": meta.get("data") or meta.get("data_snapshot")}

    def frame_route(name: str, loader: Callable[[str], pd.DataFrame]) -> None:
        @app.get(f"/api/v1/results/{{result_id}}/{name}", tags=["results"], name=name,
                 responses={200: {"content": {v: {} for v in MEDIA_TYPES.values()}}})
        async def get_frame(result_id: ResultId, who: Caller,
                            format: Annotated[Fmt, Query()] = "json") -> Response:  # noqa: A002
            """Daily series of one result (returns: net, gross, benchmark, turnover, costs;
            weights: date x asset) as JSON records, CSV or Arrow IPC."""
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
