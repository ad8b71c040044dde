"""The production app: its routes, declared once here, and the middleware in front of them.

- ``POST /predict/<module>``, ``GET /health``, ``/metrics``, ``/``, ``/openapi.json``: ``front``;
- ``POST /ocr``: a PDF or image file → its pages' lines, as JSON, text, hOCR or a searchable PDF,
  whole or streamed page by page (``ocr``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from ocrhub.config import ServerConfig
from ocrhub.serving import security
from ocrhub.serving.front import (
    WEB_DIR,
    Front,
    client_gone,
    health,
    http_error,
    index,
    internal_error,
    openapi,
    predict,
    prometheus,
)
from ocrhub.serving.ocr import ocr


def middleware(server: ServerConfig) -> list[Middleware]:
    """Outermost first: request IDs and access log, security headers, CORS, then API keys — so a
    refused key still gets an ID, the headers and the CORS answer a browser needs to read it."""
    open_paths = (
        "/health",
        *(("/metrics",) if server.open_metrics else ()),
        *(("/", "/openapi.json") if server.open_page else ()),
    )
    origins = [origin.strip() for origin in server.cors_origins.split(",") if origin.strip()]
    return [
        Middleware(security.RequestContext),
        Middleware(security.SecurityHeaders, page=WEB_DIR / "index.html"),
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        ),
        Middleware(security.ApiKeys, keys=security.KeyStore(server.api_keys, server.api_keys_file), open_paths=open_paths),
    ]


def create_app(front: Front, lifespan=None) -> Starlette:
    routes = [
        Route("/predict/{module}", predict, methods=["POST"]),
        Route("/ocr", ocr, methods=["POST"]),
        Route("/health", health),
        Route("/metrics", prometheus),
        Route("/", index),
        Route("/openapi.json", openapi),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware(front.server),
        exception_handlers={HTTPException: http_error, ClientDisconnect: client_gone, Exception: internal_error},
    )
    app.router.redirect_slashes = False  # "/predict/ocr_det/" is a 404 envelope, not a bodiless 307
    app.state.front = front
    return app
