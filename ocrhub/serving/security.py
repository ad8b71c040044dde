"""Who may use the server and what operators see: API keys, security headers, request IDs, access log.

Each is a small ASGI middleware that looks only at a request's head, so it runs before the app reads
any body — a request with a missing or wrong key costs no upload and no work:

- ``RequestContext``: every answer carries ``X-Request-ID`` (the client's, when it sent a sane one,
  else a new one); the access log line and every log record of the request carry it;
- ``ApiKeys``: with keys configured, ``/predict/*``, ``/ocr`` (and ``/metrics`` and the page unless
  opened) need ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; ``/health`` never does.
  Keys are compared in constant time, never logged, and re-read from ``OCR_API_KEYS_FILE`` when that
  file changes, so a key can be rotated without a restart;
- ``SecurityHeaders``: ``nosniff``, no referrer, no framing, and a Content-Security-Policy that the
  page satisfies without any inline-script exception (its one script and style are allowed by hash).

CORS is Starlette's ``CORSMiddleware`` with the ``OCR_CORS_ORIGINS`` allowlist (see ``front``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from pathlib import Path

from ocrhub.errors import ServiceError
from ocrhub.serving.logs import REQUEST_ID

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("ocrhub.access")


class AuthError(ServiceError):
    status, http = "101", 401


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


async def _send_envelope(send, error: ServiceError, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"status": error.status, "msg": str(error), "results": ""}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *headers,
    ]  # the body was not read: the connection cannot go on
    await send({"type": "http.response.start", "status": error.http, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    """Request ID in and out, and one access-log line per request (method, path, status, time; never
    query strings, bodies or headers, so never images or keys)."""

    quiet_paths = ("/health", "/metrics")  # probes every few seconds: logged only when not 200

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        sent = _header(scope, b"x-request-id")
        request_id = sent if _SAFE_ID.match(sent) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        started, status = time.monotonic(), 0

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if status != 200 or scope["path"] not in self.quiet_paths:
                access_log.info(
                    '%s "%s %s" %d %.0fms',
                    scope["client"][0] if scope.get("client") else "-",
                    scope["method"],
                    scope["path"],
                    status,
                    1000 * (time.monotonic() - started),
                )
            REQUEST_ID.reset(token)


class KeyStore:
    """The accepted keys: ``OCR_API_KEYS`` (comma-separated) and ``OCR_API_KEYS_FILE`` (one per line,
    ``#`` comments), the file re-read when it changes."""

    def __init__(self, keys: str, path: str):
        self._fixed = {key.strip() for key in keys.split(",") if key.strip()}
        self._path = Path(path) if path else None
        self._stamp, self._from_file = None, set()
        self._reload()

    @property
    def enabled(self) -> bool:
        return bool(self._fixed) or self._path is not None

    def _reload(self) -> None:
        if self._path is None:
            return
        try:
            stamp = self._path.stat().st_mtime_ns
        except OSError:
            stamp = None  # a missing file (a Secret being replaced) accepts no key from it until it is back
        if stamp != self._stamp:
            text = self._path.read_text() if stamp is not None else ""
            self._from_file = {line.split("#")[0].strip() for line in text.splitlines()} - {""}
            self._stamp = stamp

    def accepts(self, key: str) -> bool:
        self._reload()
        given = key.encode()
        # Compare with every key, in constant time each, so timing says nothing about any of them.
        return bool(key) and sum(hmac.compare_digest(given, known.encode()) for known in self._fixed | self._from_file) > 0


class ApiKeys:
    def __init__(self, app, keys: KeyStore, open_paths: tuple[str, ...]):
        self.app, self.keys, self.open_paths = app, keys, open_paths

    def _needs_key(self, scope) -> bool:
        return self.keys.enabled and scope["method"] != "OPTIONS" and scope["path"] not in self.open_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self._needs_key(scope):
            bearer = _header(scope, b"authorization")
            key = bearer[7:].strip() if bearer[:7].lower() == "bearer " else _header(scope, b"x-api-key").strip()
            if not self.keys.accepts(key):
                what = "a wrong API key" if key else "no API key"
                error = AuthError(f"{what}: send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
                return await _send_envelope(send, error, [(b"www-authenticate", b'Bearer realm="ocrhub"')])
        return await self.app(scope, receive, send)


def page_csp(page: Path) -> str:
    """The CSP the page at / satisfies: its inline script and style allowed by their SHA-256 alone."""
    text = page.read_text() if page.is_file() else ""

    def allowed(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
        digests = (base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() for block in blocks)
        return " ".join(f"'sha256-{digest}'" for digest in digests) or "'none'"

    return (
        f"default-src 'none'; script-src {allowed('script')}; style-src {allowed('style')}; "
        "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


class SecurityHeaders:
    api_csp = "default-src 'none'; frame-ancestors 'none'"

    def __init__(self, app, page: Path):
        self.app = app
        self.page_csp = page_csp(page)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = self.page_csp if scope["path"] == "/" else self.api_csp

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"x-content-type-options", b"nosniff"),
                        (b"referrer-policy", b"no-referrer"),
                        (b"x-frame-options", b"DENY"),
                        (b"content-security-policy", csp.encode()),
                    ],
                }
            await send(message)

        await self.app(scope, receive, send_with_headers)
