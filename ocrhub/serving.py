"""The production app: PaddleHub's own serving app, hardened, for a WSGI server with many workers.

``create_app`` takes PaddleHub's Flask app (``paddlehub.serving.app_compat.create_app``) and its
module registry, and adds what a network service needs:

- ``POST /predict/<module>`` keeps the protocol and envelope, but only ``images`` reaches the
  module (PaddleHub passes every JSON key on, ``paths`` included), and every error, even a body
  that is not JSON, gets the envelope instead of an HTML page. Envelope statuses stay PaddleHub's
  (``101`` request or prediction error, ``111`` module not available, ``112`` not a JSON POST);
  the HTTP code tells them apart: input 400, unknown module 404, body too large 413, internal 500,
  still loading 503, over the time budget 504;
- ``GET /health``: 200 with the module names and model set once every module has predicted
  (warm-up), 503 before;
- ``GET /metrics``: Prometheus, aggregated over all workers (``prometheus_client`` multiprocess
  mode when ``PROMETHEUS_MULTIPROC_DIR`` is set);
- ``GET /``: the upload page from ``ocrhub/web``; ``GET /openapi.json``: the API's description.

All inference of a worker runs on one dedicated thread that also loads the modules, so Paddle's
per-thread MKLDNN caches exist once, ``/health`` and ``/metrics`` answer while a long request runs,
and health can say 503 while the modules load.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import time
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_from_directory
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ocrhub.config import ServerConfig, load_config
from ocrhub.errors import InputError, TimeBudgetError

MODULES_DIR = Path(__file__).resolve().parent.parent / "modules"
WEB_DIR = Path(__file__).resolve().parent / "web"
log = logging.getLogger("ocrhub.serving")

REQUESTS = Counter("ocr_requests_total", "Requests by module and envelope status", ["module", "status"])
LATENCY = Histogram("ocr_request_duration_seconds", "Time to answer a predict request", ["module"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128))
IMAGES = Counter("ocr_images_total", "Images processed", ["module"])
REQUEST_BYTES = Counter("ocr_request_bytes_total", "Bytes of predict request bodies", ["module"])
IN_FLIGHT = Gauge("ocr_in_flight_requests", "Predict requests being answered", multiprocess_mode="livesum")
WORKER_RESTARTS = Counter("ocr_worker_restarts_total", "Workers that died and were replaced")



def envelope(status: str, msg: str = "", results="", http: int = 400) -> tuple[Response, int]:
    """PaddleHub's answer shape; ``http`` applies to errors only."""
    return jsonify({"status": status, "msg": msg, "results": results}), 200 if status == "000" else http


class Modules:
    """The modules of one worker, loaded and run on its single inference thread."""

    def __init__(self, names: list[str]):
        self.names = names
        self.infos: dict[str, dict] = {}
        self.error = ""
        self.model_set = load_config().model_set
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ocr-inference")
        self.executor.submit(self._load)

    @property
    def ready(self) -> bool:
        return len(self.infos) == len(self.names)

    def _load(self) -> None:
        import paddlehub as hub
        from paddlehub.serving import app_compat

        try:
            for name in self.names:
                module = hub.Module(directory=str(MODULES_DIR / name))  # warms up in __init__
                info = {"init_args": {}, "predict_args": {}, "module": module, "version": str(module.version),
                        "category": "CV", "method_name": module.serving_func_name, "name": name}
                app_compat.config_with_file({name: info})
                self.infos[name] = info
        except BaseException as err:  # SystemExit carries the one-line configuration message
            self.error = str(err) or type(err).__name__
            log.error("loading modules failed: %s", self.error)

    def predict(self, name: str, images, timeout: float):
        serve = self.infos[name]["module"].serving_method
        return self.executor.submit(serve, images=images).result(timeout=timeout)


def _json_body(data: bytes):
    """The parsed JSON of a predict request; None when it is not JSON (or nested too deep to parse)."""
    if not request.is_json:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def create_app(server: ServerConfig | None = None) -> Flask:
    from paddlehub.serving import app_compat

    server = server or ServerConfig()
    app = app_compat.create_app(init_flag=False, configs={})
    app.config["MAX_CONTENT_LENGTH"] = server.max_body_bytes
    modules = Modules(server.module_names)
    request_timeout = load_config().request_timeout or None

    def predict(module_name: str):
        label = module_name if module_name in modules.names else "unknown"
        started = time.monotonic()
        IN_FLIGHT.inc()
        try:
            answer = _predict(module_name)
        finally:
            IN_FLIGHT.dec()
        REQUESTS.labels(label, answer[0].json["status"]).inc()
        LATENCY.labels(label).observe(time.monotonic() - started)
        return answer

    def _predict(module_name: str):
        if module_name not in modules.names:
            return envelope("111", f"Module {module_name} is not available; serving: {', '.join(modules.names)}", http=404)
        if not modules.ready:
            return envelope("111", f"module {module_name} is still loading; retry in a few seconds", http=503)
        if (request.content_length or 0) > server.max_body_bytes:
            return too_large(None)
        # Read the body ourselves, at most one byte past the limit: the only way to see a chunked
        # body (no Content-Length) that is too large, which Flask would silently cut short.
        data = request.environ["wsgi.input"].read(server.max_body_bytes + 1)
        REQUEST_BYTES.labels(module_name).inc(len(data))
        if len(data) > server.max_body_bytes:
            return too_large(None)
        body = _json_body(data)
        if body is None:
            return envelope("112", 'the body must be JSON (Content-Type: application/json): {"images": ["<base64>", ...]}')
        if not isinstance(body, dict):
            return envelope("101", f'the body must be a JSON object {{"images": [...]}}, got {type(body).__name__}')
        images = body.get("images")
        wait = request_timeout + 30 if request_timeout else None
        try:
            results = modules.predict(module_name, images, wait)
        except InputError as err:
            return envelope("101", str(err))
        except (TimeBudgetError, concurrent.futures.TimeoutError) as err:
            return envelope("101", str(err) or f"request exceeded its time budget of {request_timeout:g} s", http=504)
        except Exception as err:
            log.exception("module %s failed", module_name)
            return envelope("101", f"internal error in {module_name}: {type(err).__name__}: {err}", http=500)
        if isinstance(images, list):
            IMAGES.labels(module_name).inc(len(images))
        return envelope("000", "", results)

    app.view_functions["predict_serving_v2"] = predict
    # PaddleHub's /gradio routes would start a Gradio app in a new process: not on this server.
    for endpoint in ("gradio_app", "request_gradio_app"):
        app.view_functions[endpoint] = lambda **_: envelope("111", "no Gradio app on this server", http=404)

    @app.get("/health")
    def health():
        body = {"status": "ok" if modules.ready else ("failed" if modules.error else "loading"),
                "modules": modules.names, "ready": sorted(modules.infos), "model_set": modules.model_set,
                "pid": os.getpid()}
        if modules.error:
            body["error"] = modules.error
        return jsonify(body), 200 if modules.ready else 503

    @app.get("/metrics")
    def metrics():
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            from prometheus_client import REGISTRY as registry
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def index():
        if (WEB_DIR / "index.html").is_file():
            return send_from_directory(WEB_DIR, "index.html")
        return 'ocrhub: POST /predict/&lt;module&gt; {"images": ["&lt;base64&gt;", ...]}'

    app.view_functions["index"] = index

    @app.get("/openapi.json")
    def openapi():
        return send_from_directory(WEB_DIR, "openapi.json")

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_err):
        return envelope("101", f"request body too large: limit {server.max_body_bytes} bytes "
                               f"(OCR_MAX_BODY_BYTES); send fewer or smaller images", http=413)

    @app.errorhandler(HTTPException)
    def http_error(err):
        status = {404: "111", 405: "112"}.get(err.code, "101")
        return envelope(status, f"{err.name}: {err.description}", http=err.code)

    @app.errorhandler(Exception)
    def internal_error(err):
        log.exception("unhandled error")
        return envelope("101", f"internal error: {type(err).__name__}", http=500)

    return app
