"""``ocrhub-serve``: the production server — uvicorn's async front, inference workers behind a queue.

Before anything starts, the launcher checks the configuration and model folders (one clear line and
exit 1 on a problem, instead of workers failing in a loop), points every writable path at
``OCR_DATA_DIR``, and refuses outbound network connections. Shared workers get ``OCR_CPU_THREADS``
threads each (by default cores / workers), the solo worker every core (``default_layout``).

SIGTERM (or SIGINT) stops accepting, lets requests in flight finish for up to ``OCR_GRACEFUL_TIMEOUT``
seconds, then stops the workers and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
from pathlib import Path

import uvicorn

from ocrhub import models
from ocrhub.config import OcrConfig, ServerConfig, load_config, load_server_config, usable_cores, usable_memory_mb
from ocrhub.errors import ConfigError, exit_on_config_error
from ocrhub.serving.front import Front, create_app
from ocrhub.serving.http import Connections, guarded_protocol
from ocrhub.serving.logs import log_config
from ocrhub.serving.offline import refuse_outbound_connections
from ocrhub.serving.workers import WorkerPool
from ocrhub.tasks import TASKS

log = logging.getLogger("ocrhub.launcher")


def check_setup(server: ServerConfig, config: OcrConfig) -> None:
    """Every module known and every model folder present, or a ConfigError naming the fix."""
    for name in server.module_names:
        if name not in TASKS:
            raise ConfigError(f"unknown module {name!r} in OCR_MODULES; choose from {', '.join(TASKS)}")
        for stage in TASKS[name].stages:
            models.check_model_dir(config.model_path(stage), config.model_set)
    if any("rec" in TASKS[name].stages for name in server.module_names):
        models.check_file(config.model_path("dict"), config.model_set)


FRONT_MB, REQUEST_MB = 100, 512  # the front without bodies; what one request can add to a worker before its check
MIN_WORKER_MB = 1536  # a worker runs at 1.1-1.3 GB once warm: with a lower limit it is replaced after most requests


def default_layout(server: ServerConfig, config: OcrConfig) -> ServerConfig:
    """Workers when ``OCR_WORKERS`` is 0 and the solo worker when ``OCR_SOLO_WORKER`` is auto, as
    measured on 2 cores (BENCHMARKS.md): one worker per core (threads: cores / workers, see
    ``prepare_environment``), which serves many clients fastest; and with OpenVINO, one more worker
    with every core, which serves a request alone on the server fastest (OpenVINO gains 1.8× from
    a second thread, oneDNN less than it loses by sharing cores). On the GPU, one worker. Then the
    layout is fitted to the memory the server may use (``fit_memory``)."""
    cores = usable_cores()
    workers = server.workers or (1 if config.use_gpu else cores)
    solo = server.solo_worker
    if solo == "auto":
        fits = not server.workers and not config.use_gpu and config.engine.startswith("openvino") and cores > 1
        solo = "true" if fits else "false"
    layout = dataclasses.replace(server, workers=workers, solo_worker=solo)
    auto_workers, auto_solo = not server.workers, server.solo_worker == "auto"
    return fit_memory(layout, usable_memory_mb(), may_drop_workers=auto_workers, may_drop_solo=auto_solo)


def fit_memory(server: ServerConfig, memory_mb: int, *, may_drop_workers: bool, may_drop_solo: bool) -> ServerConfig:
    """The layout within ``memory_mb`` (a container's memory limit, else the machine's memory) by the
    README's bound (``memory_bound_mb``). Where the launcher chose the layout, it drops the solo
    worker, then shared workers, until each worker can have ``MIN_WORKER_MB`` (or its lower limit);
    then it lowers ``worker_max_memory_mb`` to each worker's share, but not below that (``main`` warns
    if even that does not fit). With a 4 GiB limit on 2 cores that is one worker × 2 threads."""
    if not server.worker_max_memory_mb:  # 0: workers are never replaced, there is no bound to fit
        return server
    available = memory_mb - memory_bound_mb(server, workers=0)

    def share(workers: int, solo: bool) -> int:
        return available // (workers + solo) - REQUEST_MB

    need = min(server.worker_max_memory_mb, MIN_WORKER_MB)
    workers, solo = server.workers, server.solo
    if solo and may_drop_solo and share(workers, True) < need:
        solo = False
    while may_drop_workers and workers > 1 and share(workers, solo) < need:
        workers = max(d for d in range(1, workers) if server.workers % d == 0)  # each worker keeps whole cores
    limit = min(server.worker_max_memory_mb, max(share(workers, solo), need))
    return dataclasses.replace(server, workers=workers, solo_worker=str(solo).lower(), worker_max_memory_mb=limit)


def memory_bound_mb(server: ServerConfig, workers: int | None = None) -> int:
    """The README's bound on the whole server's memory: the front, the bodies it holds (each parsed
    once, so twice), and each of its workers (or of ``workers``) up to its limit plus what one
    request adds before the check."""
    workers = server.workers + server.solo if workers is None else workers
    return FRONT_MB + 2 * server.max_buffered_bytes // 2**20 + workers * (server.worker_max_memory_mb + REQUEST_MB)


def warn_if_memory_short(server: ServerConfig) -> None:
    """Say so when the bound is over the memory the server may use (a layout set by hand, or too little memory)."""
    if server.worker_max_memory_mb and memory_bound_mb(server) > usable_memory_mb():
        log.warning(
            "%d worker(s) of OCR_WORKER_MAX_MEMORY_MB=%d may take %d MB, more than the %d MB this server may use: "
            "the kernel may kill workers under load; set fewer OCR_WORKERS or give it more memory",
            server.workers + server.solo,
            server.worker_max_memory_mb,
            memory_bound_mb(server),
            usable_memory_mb(),
        )


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
