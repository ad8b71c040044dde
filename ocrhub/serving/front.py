"""The HTTP front: reads whole requests, checks them and queues their work; the routes but ``/ocr``'s
(``ocrhub.serving.ocr``), all declared in ``ocrhub.serving.app``:

- ``POST /predict/<module>``: PaddleHub's protocol and envelope; only ``images`` reaches the module;
- ``GET /health``: 200 once a worker is loaded and alive, 503 before (and if none is);
- ``GET /metrics``: Prometheus; ``GET /``: the upload page; ``GET /openapi.json``: the API description.

A request is read in full here, within ``body_timeout`` and ``max_body_bytes``, and its images are
checked from their headers (``ocrhub.images``) before it waits for a worker, so a slow or broken
client never holds an inference worker and a refused request costs no inference. While its job waits
or runs, a request watches its connection: a client that goes away takes its job off the queue, or has
its worker stop between a document's pages. Every failure is a ``ServiceError`` that carries its
envelope status and HTTP code; one handler answers them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response

from ocrhub import images as image_input
from ocrhub.config import OcrConfig, ServerConfig
from ocrhub.errors import (
    BodyTooLargeError,
    InputError,
    NotJsonError,
    ServiceError,
    SlowClientError,
    UnavailableError,
    UnknownModuleError,
)
from ocrhub.serving import metrics
from ocrhub.serving.http import Connections
from ocrhub.serving.logs import REQUEST_ID
from ocrhub.serving.worker import Job
from ocrhub.serving.workers import WorkerPool

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DRAIN_FACTOR = 4  # a body over the limit is read and dropped up to this many times the limit
log = logging.getLogger("ocrhub.front")


def envelope(results=None, error: ServiceError | None = None, headers: dict | None = None) -> JSONResponse:
    """PaddleHub's answer shape: ``{"status", "msg", "results"}``."""
    if error is None:
        return JSONResponse({"status": "000", "msg": "", "results": results})
    headers = dict(headers or {})
    if error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse({"status": error.status, "msg": str(error), "results": ""}, error.http, headers)


class ByteBudget:
    """Request bodies, and searchable PDFs being sent, that the front holds at once
    (``max_buffered_bytes``): its memory bound."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    @contextlib.contextmanager
    def reserve(self, size: int):
        if self.used + size > self.limit:
            metrics.REJECTED.labels("memory_budget").inc()
            raise UnavailableError(
                f"the server holds {self.used} bytes of requests (OCR_MAX_BUFFERED_BYTES {self.limit}); retry shortly"
            )
        self.used += size
        try:
            yield
        finally:
            self.used -= size

    def hold(self, size: int):
        """Count an answer of ``size`` bytes until the returned function is called, once, after it is
        sent. Never refused: its work is done; requests arriving meanwhile are refused instead."""
        self.used += size
        return functools.partial(self._release, size)

    def _release(self, size: int) -> None:
        self.used -= size


class Front:
    """What the routes share: settings, the worker pool, the connection count, the byte budget."""

    def __init__(self, server: ServerConfig, config: OcrConfig, pool: WorkerPool, connections: Connections):
        self.server, self.config, self.pool, self.connections = server, config, pool, connections
        self.modules = server.module_names
        self.budget = ByteBudget(server.max_buffered_bytes)
        self.limits = image_input.Limits(config.max_images, config.max_image_pixels, config.max_request_pixels)

    def admit(self) -> None:
        """Refuse at once what the server cannot take now, before reading any body."""
        if not self.pool.ready:
            raise UnavailableError(self.pool.load_error or "the OCR models are still loading; retry in a few seconds")
        if self.connections.count > self.server.max_connections:
            metrics.REJECTED.labels("connections").inc()
            raise UnavailableError(
                f"too many open connections ({self.connections.count}, OCR_MAX_CONNECTIONS "
                f"{self.server.max_connections}); retry shortly"
            )
        self.pool.admit()  # the queue's own bound, checked again when the job is queued

    def declared_size(self, request: Request) -> int:
        """What a request's body will take of the byte budget (the limit when it does not say)."""
        declared = int(request.headers.get("content-length") or self.server.max_body_bytes)
        return min(declared, self.server.max_body_bytes)

    async def read_body(self, request: Request) -> bytes:
        """The whole body within ``max_body_bytes`` and ``body_timeout``, or the error that closes it."""
        limit = self.server.max_body_bytes
        declared = int(request.headers.get("content-length") or 0)
        expects_continue = "100-continue" in request.headers.get("expect", "").lower()
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.server.body_timeout or None):
                if declared > limit and expects_continue:  # answered before the client sends the body
                    raise _too_large(limit)
                async for chunk in request.stream():
                    size += len(chunk)
                    if size <= limit:
                        chunks.append(chunk)
                    elif size > DRAIN_FACTOR * limit:  # read and dropped so far, so the client reads our answer
                        break
        except TimeoutError:
            metrics.DROPPED.labels("body").inc()
            raise SlowClientError(
                f"the request body did not arrive within {self.server.body_timeout:g} s (OCR_BODY_TIMEOUT)"
            ) from None
        if size > limit:
            raise _too_large(limit)
        return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(f"request body too large: limit {limit} bytes (OCR_MAX_BODY_BYTES); send fewer or smaller images")


def parse_images(body: bytes, content_type: str, limits: image_input.Limits) -> list:
    """The checked ``images`` of a PaddleHub JSON body; other keys (``paths``...) are never looked at."""
    mimetype = content_type.split(";")[0].strip().lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise NotJsonError('the body must be JSON (Content-Type: application/json): {"images": ["<base64>", ...]}')
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise NotJsonError('the body must be JSON (Content-Type: application/json): {"images": ["<base64>", ...]}') from None
    if not isinstance(data, dict):
        raise InputError(f'the body must be a JSON object {{"images": [...]}}, got {type(data).__name__}')
    return image_input.read_request(data.get("images"), limits)


async def answered(label: str, work) -> Response:
    """Await ``work`` (a route's coroutine), turning errors into envelopes and counting the answer (a
    streamed answer counts itself when it ends)."""
    started = time.monotonic()
    metrics.IN_FLIGHT.inc()
    try:
        answer, status = await work, "000"
    except ServiceError as err:
        answer, status = envelope(error=err, headers=_closing(err)), err.status
    except ClientDisconnect:
        metrics.ABANDONED.labels(label).inc()
        raise
    finally:
        metrics.IN_FLIGHT.dec()
    if not getattr(answer, "counts_itself", False):
        count(label, status, started)
    return answer


def count(label: str, status: str, started: float) -> None:
    metrics.REQUESTS.labels(label, status).inc()
    metrics.LATENCY.labels(label).observe(time.monotonic() - started)


async def predict(request: Request) -> Response:
    front: Front = request.app.state.front
    module = request.path_params["module"]
    return await answered(module if module in front.modules else "unknown", _predict(front, request, module))


async def queued(front: Front, request: Request, label: str, job_of, progress=None):
    """Admit the request, read its body within its bounds and the byte budget, make its job
    (``await job_of(body)``, which checks it) and wait for a worker's reply, passing its progress to
    ``progress``: (job, reply). ``ClientDisconnect`` if the client goes away first."""
    front.admit()
    with front.budget.reserve(front.declared_size(request)):
        body = await front.read_body(request)
        metrics.REQUEST_BYTES.labels(label).inc(len(body))
        job = await job_of(body)
        del body  # only the job's checked contents wait in the queue
        reply = await unless_gone(request, front.pool.run(job, progress))
    if reply.error is not None:
        raise reply.error
    return job, reply


async def unless_gone(request: Request, work):
    """``await work``, or cancel it and raise ``ClientDisconnect`` if the client disconnects first.
    Only once the body has been read: then the server's next message can only be the disconnect."""
    working, gone = asyncio.ensure_future(work), asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({working, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not working.done():
            raise ClientDisconnect()
        return working.result()
    finally:
        working.cancel()
        gone.cancel()


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _predict(front: Front, request: Request, module: str) -> Response:
    if module not in front.modules:
        raise UnknownModuleError(f"Module {module} is not available; serving: {', '.join(front.modules)}")

    async def job_of(body: bytes) -> Job:
        images = await asyncio.to_thread(parse_images, body, request.headers.get("content-type", ""), front.limits)
        return Job(module, images, REQUEST_ID.get())

    job, reply = await queued(front, request, module, job_of)
    metrics.IMAGES.labels(module).inc(len(job.images))
    return envelope(reply.results)


def _closing(error: ServiceError) -> dict:
    """A body we did not read to its end leaves the connection unusable: close it after the answer."""
    return {"Connection": "close"} if isinstance(error, (BodyTooLargeError, SlowClientError)) else {}


async def health(request: Request) -> Response:
    front: Front = request.app.state.front
    pool = front.pool
    ready = pool.ready > 0
    body = {
        "status": "ok" if ready else ("failed" if pool.load_error else "loading"),
        "modules": front.modules,
        "model_set": front.config.model_set,
        "workers": {"ready": pool.ready, "total": len(pool.slots)},
        "queue": pool.waiting,
    }
    if pool.load_error:
        body["error"] = pool.load_error
    return JSONResponse(body, 200 if ready else 503)


async def prometheus(request: Request) -> Response:
    return Response(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html")


async def openapi(request: Request) -> Response:
    return FileResponse(WEB_DIR / "openapi.json", media_type="application/json")


async def http_error(request: Request, err: HTTPException) -> Response:
    """Unknown paths and methods get the envelope too."""
    status = {404: "111", 405: "112"}.get(err.status_code, "101")
    error = ServiceError(f"{err.detail}: {request.method} {request.url.path}")
    error.status, error.http = status, err.status_code
    return envelope(error=error)


async def internal_error(request: Request, err: Exception) -> Response:
    log.exception("unhandled error")
    return envelope(error=ServiceError(f"internal error: {type(err).__name__}"))


async def client_gone(request: Request, err: ClientDisconnect) -> Response:
    return Response(status_code=499)  # nobody reads it; keeps the disconnect out of the error log
