"""``POST /ocr``: a PDF or an image file in (multipart field ``file``, or the body); its pages out, whole
or streamed page by page.

The answer's format (``?format=``, else the ``Accept`` header):

- ``json`` (default): the envelope, its ``results`` the pages (``ocrhub.documents``);
- ``text`` (``Accept: text/plain``): each page's lines, pages separated by a form feed;
- ``hocr``: hOCR 1.2 XHTML (``ocrhub.hocr``);
- ``pdf`` (``Accept: application/pdf``): the uploaded PDF, or a one-page PDF of an uploaded image, with
  an invisible text layer on each page read by OCR (``ocrhub.textlayer``). Pages with a text layer of
  their own, and pages ``pages=`` did not select, are left as they were; ``ocr=always`` is refused,
  as it would lay a second text layer over a page's own.

``Accept: application/x-ndjson`` streams instead, one JSON object per line: ``{"event": "start",
"pages": n}``, then ``{"event": "page", ...}`` (a page of the json answer) as soon as each is read, then
``{"event": "end", "status": "000", "msg": "", "pages": n, "seconds": s}``, which also carries the
answer of a ``format`` other than json (``text``, ``hocr``, or ``pdf`` in base64). A failure after the
stream began ends it with ``{"event": "error", "status", "msg"}``; one found before (a bad document or
option, a limit, a PDF that cannot be rewritten) is the usual envelope and HTTP status. A client that
goes away stops the work between pages (``front.queued``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from ocrhub import documents, hocr
from ocrhub import images as image_input
from ocrhub.errors import InputError, ServiceError, UnknownModuleError
from ocrhub.serving import metrics
from ocrhub.serving.front import Front, answered, count, envelope, queued
from ocrhub.serving.logs import REQUEST_ID
from ocrhub.serving.worker import DocumentJob, Progress, Reply

FORMATS = ("json", "text", "hocr", "pdf")
NDJSON = "application/x-ndjson"
UPLOAD_USAGE = (
    "send one file as multipart/form-data in the field 'file' (curl -F file=@scan.pdf), or as the "
    "body with Content-Type application/pdf or image/..."
)


async def ocr(request: Request) -> Response:
    return await answered("ocr", _ocr(request.app.state.front, request))


async def _ocr(front: Front, request: Request) -> Response:
    asked = DocumentRequest(front, request)
    if NDJSON in request.headers.get("accept", "").lower():
        return await _streamed(asked)
    _, reply = await queued(front, request, "ocr", asked.job, progress=asked.record)
    return asked.answer(reply)


def answer_format(request: Request) -> str:
    """``?format=`` (one of ``FORMATS``); without it pdf or text where the ``Accept`` header asks for
    that rather than JSON, else json."""
    chosen = request.query_params.get("format", "").lower()
    if chosen:
        if chosen not in FORMATS:
            raise InputError(f"format must be one of {', '.join(FORMATS)}, got {chosen!r}")
        return chosen
    accept = request.headers.get("accept", "").lower()
    if "json" in accept:
        return "json"
    return "pdf" if "application/pdf" in accept else "text" if "text/plain" in accept else "json"


class DocumentRequest:
    """One ``POST /ocr``: its options, checked before the upload is read, and the pages its worker sends."""

    def __init__(self, front: Front, request: Request):
        if "ocr_system" not in front.modules:
            raise UnknownModuleError("POST /ocr needs the ocr_system module, which this server does not serve (OCR_MODULES)")
        self.front, self.request = front, request
        self.options = documents.Options.from_query(request.query_params)  # a bad option costs no upload
        self.format = answer_format(request)
        if self.format == "pdf" and self.options.ocr == "always":
            raise InputError(
                "format=pdf leaves a page's own text layer as it is: ocr=always would lay a second over it; use ocr=auto"
            )
        self.pages: list[documents.Page] = []
        self.started = time.monotonic()
        self.release = lambda: None  # of the byte budget's hold on the searchable PDF being sent

    async def job(self, body: bytes) -> DocumentJob:
        data = await uploaded_file(self.request, body)
        if documents.sniff(data) == "image":  # refused from its header, before it waits for a worker
            image_input.read_file(data, 0, self.front.config.max_image_pixels)
        return DocumentJob(data, self.options, REQUEST_ID.get(), searchable=self.format == "pdf")

    def record(self, progress: Progress) -> dict:
        """Keep a page the worker sent; the event as the stream sends it."""
        if progress.event == "page":
            self.pages.append(progress.data)
        return {"event": progress.event, **progress.data}

    def answer(self, reply: Reply) -> Response:
        metrics.DOCUMENTS.labels(self.format, "whole").inc()
        if self.format == "text":
            return PlainTextResponse(documents.as_text(self.pages))
        if self.format == "hocr":
            return Response(hocr.as_hocr(self.pages), media_type="text/html; charset=utf-8")
        if self.format == "pdf":
            self.release = self.front.budget.hold(len(reply.results))
            return Response(
                reply.results,
                media_type="application/pdf",
                headers={"Content-Disposition": "inline; filename=ocr.pdf"},
                background=BackgroundTask(self.release),
            )
        return envelope(self.pages)

    def end(self, reply: Reply) -> dict:
        """The stream's last object: the summary, with the answer of a format other than json."""
        metrics.DOCUMENTS.labels(self.format, "stream").inc()
        seconds = round(time.monotonic() - self.started, 3)
        end = {"event": "end", "status": "000", "msg": "", "pages": len(self.pages), "seconds": seconds}
        if self.format == "text":
            end["text"] = documents.as_text(self.pages)
        elif self.format == "hocr":
            end["hocr"] = hocr.as_hocr(self.pages)
        elif self.format == "pdf":
            self.release = self.front.budget.hold(len(reply.results) * 4 // 3)  # as base64
            end["pdf"] = base64.b64encode(reply.results).decode("ascii")
        return end


async def _streamed(asked: DocumentRequest) -> Response:
    """The stream, once the worker has sent its first news; the envelope of an error before that."""
    events: asyncio.Queue[Progress] = asyncio.Queue()
    work = asyncio.ensure_future(queued(asked.front, asked.request, "ocr", asked.job, progress=events.put_nowait))
    try:
        first = await _next(events, work)
    except BaseException:
        work.cancel()
        raise
    if first is None:  # the work ended without news: its error is the answer
        work.result()
    # X-Accel-Buffering: nginx (deploy/nginx.conf) passes each line on as it comes instead of buffering them
    return Stream(_ndjson(asked, first, events, work), media_type=NDJSON, headers={"X-Accel-Buffering": "no"})


class Stream(StreamingResponse):
    """An answer whose status is known only at its end: it counts itself (``front.count``). Starlette
    stops iterating when the client goes away; closing the iterator then runs its ``finally`` at once."""

    counts_itself = True

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


async def _ndjson(asked: DocumentRequest, first: Progress, events: asyncio.Queue, work: asyncio.Future):
    status = "000"
    metrics.IN_FLIGHT.inc()
    try:
        message: Progress | None = first
        while message is not None:
            yield _line(asked.record(message))
            message = await _next(events, work)
        try:
            _, reply = work.result()
            yield _line(asked.end(reply))
        except Exception as err:  # noqa: BLE001 - whatever ended the work ends the stream with its reason
            error = err if isinstance(err, ServiceError) else ServiceError(f"internal error: {type(err).__name__}")
            status = error.status
            yield _line({"event": "error", "status": error.status, "msg": str(error)})
    finally:
        asked.release()
        metrics.IN_FLIGHT.dec()
        if work.done():
            count("ocr", status, asked.started)
        else:  # the client went away mid-stream: the worker stops between pages
            work.cancel()
            metrics.ABANDONED.labels("ocr").inc()


async def _next(events: asyncio.Queue, work: asyncio.Future) -> Progress | None:
    """The worker's next news, or None once the work is done and all its news taken (progress comes
    before the reply: ``workers.Slot._call``)."""
    if events.empty() and not work.done():
        getting = asyncio.ensure_future(events.get())
        await asyncio.wait({getting, work}, return_when=asyncio.FIRST_COMPLETED)
        if getting.done():
            return getting.result()
        getting.cancel()
    return None if events.empty() else events.get_nowait()


def _line(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode() + b"\n"


async def uploaded_file(request: Request, body: bytes) -> bytes:
    """The document of a ``POST /ocr``: the multipart field ``file``, or the body itself."""
    mimetype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mimetype == "multipart/form-data":
        data = await _multipart_file(request, body)
    elif mimetype in ("application/pdf", "application/octet-stream") or mimetype.startswith("image/"):
        data = body
    else:
        raise InputError(f"{UPLOAD_USAGE}; got Content-Type {mimetype or 'none'!r}")
    if not data:
        raise InputError(f"the file is empty: {UPLOAD_USAGE}")
    return data


async def _multipart_file(request: Request, body: bytes) -> bytes:
    async def replay():  # the body was already read, within its limits: parse it from memory
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=20)
    except HTTPException as err:
        raise InputError(f"unreadable multipart upload: {err.detail}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        fields = ", ".join(sorted(form.keys())) or "none"
        raise InputError(f"no file in the multipart field 'file' (fields sent: {fields}); {UPLOAD_USAGE}")
    return await upload.read()
