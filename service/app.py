"""The FastAPI application factory.

    uvicorn service.app:create_app --factory          # or: reid serve

One `Pipeline` (model, catalogue, index) is built at startup and shared by all requests
through `app.state`. Errors are always JSON `{"detail": "..."}`: library errors map to
4xx by type, request bodies above the upload limit are refused while they stream in, and
an unexpected failure is a logged 500 without a traceback, after which the server goes on.
"""

from __future__ import annotations

import functools
import logging
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reid.budget import PixelBudgetError, PixelPool
from reid.catalog import busy_catalog, is_busy
from reid.errors import (
    BusyError,
    ConflictError,
    ImageError,
    LabelsError,
    ModelError,
    NotFoundError,
    ReidError,
)
from reid.identify import open_pipeline
from reid.settings import Settings
from service import contract, errors
from service.deps import too_large
from service.guard import HostAndOriginGuard
from service.routers import (
    curation,
    docs,
    exports,
    health,
    identify,
    images,
    individuals,
    jobs,
    pages,
    review_pages,
    reviews,
    signin,
)
from service.settings import ServerSettings
from service.web import STATIC_DIR, STATIC_URL

log = logging.getLogger("service")

#: Multipart framing and the small text fields around the file; the file itself is held to
#: REID_MAX_UPLOAD_BYTES exactly when the route reads it.
FORM_OVERHEAD = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body passes the limit: as an HTTPException, FastAPI's
    body parsing lets it through (other errors there become a vague 400)."""


class UploadLimitMiddleware:
    """Refuse request bodies above `max_body` bytes: at once when Content-Length says so,
    otherwise as soon as the streamed (e.g. chunked) body passes the limit. Nothing larger
    than the limit is ever buffered or spooled to disk."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit_error = too_large(self.max_body - FORM_OVERHEAD)
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _error_response(limit_error)(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(limit_error.status_code, limit_error.detail)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # Normally the app's HTTPException handler already answered; this is the fallback.
            if started:
                raise
            await _error_response(exc)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _error_response(exc: HTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _status_for(exc: ReidError) -> int:
    if isinstance(exc, NotFoundError):  # GoneError too: its detail names where the id went
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, ConflictError):
        return status.HTTP_409_CONFLICT
    if isinstance(exc, PixelBudgetError):
        return status.HTTP_413_CONTENT_TOO_LARGE
    if isinstance(exc, BusyError):
        return status.HTTP_503_SERVICE_UNAVAILABLE
    if isinstance(exc, ImageError | LabelsError):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    if isinstance(exc, ModelError):  # the server's model, not the client's input
        return status.HTTP_500_INTERNAL_SERVER_ERROR
    return status.HTTP_400_BAD_REQUEST


async def reid_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReidError)
    code = _status_for(exc)
    if isinstance(exc, BusyError):  # refused rather than swapping: the client should come back
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=code, headers={"Retry-After": str(exc.retry_after_s)})
    if code >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=code)


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if is_busy(exc):  # a lock held too long is not damage
        return await reid_error_handler(request, busy_catalog(request.app.state.settings.data_dir))
    log.error("catalogue database error in %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the catalogue database failed; the operator should run `reid check` "
                                   "(docs/security.md: restoring a backup)"},
                        status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client.
    log.exception("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal error; the server log has the details"},
                        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the pipeline itself is loaded when the server starts (lifespan).

    settings: ServerSettings (`reid serve` passes its own); library Settings get the server's
    part from the environment; None: everything from the environment (uvicorn --factory)."""
    settings = ServerSettings() if settings is None else ServerSettings.serving(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Loading the model (and the first ONNX export) takes seconds: do it off the loop.
        pipeline = await anyio.to_thread.run_sync(
            functools.partial(open_pipeline, settings, strict_calibration=False))
        app.state.pipeline = pipeline
        app.state.model_limiter = anyio.CapacityLimiter(settings.model_concurrency)
        app.state.pixel_pool = PixelPool(settings.max_inflight_pixels)
        if settings.local_matching:
            # Loading every gallery image's keypoints (and training the IVF index of a large
            # gallery: ~50 s at 10,000 images) starts now, not on the first request; requests
            # arriving meanwhile wait for it.
            threading.Thread(target=pipeline.keypoint_index, name="keypoint-index", daemon=True).start()
        log.info("serving model %s on %s (%d individuals, %d images)", pipeline.model_id, settings.data_dir,
                 *pipeline.catalog.counts().values())
        try:
            yield
        finally:
            pipeline.save_index()
            pipeline.flush()  # a keypoint index being written finishes before the process ends

    app = FastAPI(
        title="Leopard re-identification",
        summary="Identify individual leopards from their rosettes; manage the catalogue of known animals.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served from vendored files instead of a CDN: service/routers/docs.py
        redoc_url=None,
    )
    app.state.settings = settings
    # the CSRF token pages carry in laptop mode (nothing checks it there: writes are held to
    # this service's own Origin by the guard); with keys, each browser session has its own
    app.state.local_csrf_token = secrets.token_urlsafe(32)
    app.add_middleware(UploadLimitMiddleware, max_body=settings.max_upload_bytes + FORM_OVERHEAD)
    app.add_middleware(HostAndOriginGuard, allowed_hosts=settings.allowed_hosts)  # added last: runs first
    app.add_exception_handler(ReidError, reid_error_handler)
    app.add_exception_handler(sqlite3.DatabaseError, database_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    errors.install(app)  # one error shape: validation errors and unreadable bodies too
    contract.install(app)  # /openapi.json documents every status, the error shape and auth as enforced
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    #: One router per resource; new resources add their module here.
    for module in (identify, individuals, images, health, pages, signin, docs, exports, reviews, curation,
                   review_pages, jobs):
        app.include_router(module.router)
    return app
