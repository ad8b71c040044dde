"""``ocrhub-serve``: the production server — uvicorn's async front, inference workers behind a queue.

Before anything starts, the launcher checks the configuration and model folders (one clear line and
exit 1 on a problem, instead of workers failing in a loop), points every writable path at
``OCR_DATA_DIR``, and refuses outbound network connections. Shared workers get ``OCR_CPU_THREADS``
threads each (by default cores / workers), the solo worker every core (``default_layout``).

SIGTERM (or SIGINT) stops accepting, lets requests in flight finish for up to ``OCR_GRACEFUL_TIMEOUT``
seconds, then stops the workers (one still loading at once) and exits, re-raising the signal as uvicorn
does (status 143 for SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
from pathlib import Path

import uvicorn

from ocrhub import models
from ocrhub.config import OcrConfig, ServerConfig, load_config, load_server_config, usable_cores
from ocrhub.errors import ConfigError, exit_on_config_error
from ocrhub.serving.app import create_app
from ocrhub.serving.front import Front
from ocrhub.serving.http import Connections, guarded_protocol
from ocrhub.serving.layout import default_layout, warn_if_memory_short
from ocrhub.serving.logs import log_config
from ocrhub.serving.offline import refuse_outbound_connections
from ocrhub.serving.workers import WorkerPool
from ocrhub.tasks import TASKS


def check_setup(server: ServerConfig, config: OcrConfig) -> None:
    """Every module known, the engine's library installed and every model folder present, or a
    ConfigError naming the fix."""
    library = "openvino" if config.on_openvino else "paddle"
    if importlib.util.find_spec(library) is None:  # the lean image has no paddle
        raise ConfigError(
            f"OCR_ENGINE={config.engine}{' with OCR_USE_GPU' if config.use_gpu else ''} runs on {library}, "
            f"which is not installed here (the lean image has only the openvino engines: use the full image)"
        )
    for name in server.module_names:
        if name not in TASKS:
            raise ConfigError(f"unknown module {name!r} in OCR_MODULES; choose from {', '.join(TASKS)}")
        for stage in TASKS[name].stages:
            models.check_model_dir(config.model_path(stage), config.model_set, config.runtime)
    if any("rec" in TASKS[name].stages for name in server.module_names):
        models.check_file(config.model_path("dict"), config.model_set)


def prepare_environment(server: ServerConfig, config: OcrConfig) -> None:
    """Writable paths under OCR_DATA_DIR and threads per worker, inherited by every worker."""
    data = Path(config.data_dir)
    for path in (data / "tmp", data / "home"):
        path.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(data / "metrics", ignore_errors=True)  # left by versions that kept per-process files
    os.environ.setdefault("HUB_HOME", str(data / "paddlehub"))  # PaddleHub's logs and config
    os.environ["HOME"] = str(data / "home")  # what libraries keep under ~ (paddle's ~/.cache)
    os.environ["TMPDIR"] = str(data / "tmp")
    cores = usable_cores()
    os.environ.setdefault("OCR_CPU_THREADS", str(max(1, cores // server.workers)))
    if server.workers * int(os.environ["OCR_CPU_THREADS"]) + server.solo * cores > cores:
        # More inference threads than cores: Paddle's OpenMP threads spin 200 ms after each operator by
        # default (Intel OpenMP), taking the cores that other workers need; let idle ones sleep at once.
        os.environ.setdefault("KMP_BLOCKTIME", "0")


def build_app(server: ServerConfig, config: OcrConfig, connections: Connections):
    server = default_layout(server, config)
    stuck_after = config.request_timeout + 60 if config.request_timeout else None
    pool = WorkerPool(server, config, stuck_after)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        pool.start()
        yield
        await pool.stop(server.graceful_timeout)

    return create_app(Front(server, config, pool, connections), lifespan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the OCR modules: async HTTP front, inference workers.")
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "9000")))
    args = parser.parse_args(argv)
    with exit_on_config_error("ocrhub-serve"):
        config = load_config()
        server = default_layout(load_server_config(), config)
        warn_if_memory_short(server)
        prepare_environment(server, config)
        config = load_config()  # again: OCR_CPU_THREADS may have just been set
        check_setup(server, config)
    if server.offline:
        refuse_outbound_connections()
    connections = Connections()
    uvicorn.run(
        build_app(server, config, connections),
        host=args.host,
        port=args.port,
        http=guarded_protocol(server.header_timeout, connections),
        timeout_keep_alive=server.keepalive_timeout,
        timeout_graceful_shutdown=server.graceful_timeout,
        backlog=2048,
        server_header=False,
        proxy_headers=False,
        ws="none",
        lifespan="on",
        log_config=log_config(server.log_format),
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
