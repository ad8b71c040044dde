"""How many inference workers, with how many threads and how much memory each: the server's layout.

``default_layout`` resolves ``OCR_WORKERS=0`` and ``OCR_SOLO_WORKER=auto`` from the cores the server
may use and its engine, then ``fit_memory`` fits the layout to the memory it may use by the README's
bound (``memory_bound_mb``). The launcher calls it once at start-up; ``build_app`` again for callers
that build the app themselves (resolving twice gives the same layout).
"""

from __future__ import annotations

import dataclasses
import logging

from ocrhub.config import OcrConfig, ServerConfig, usable_cores, usable_memory_mb

log = logging.getLogger("ocrhub.layout")

FRONT_MB, REQUEST_MB = 100, 512  # the front without bodies; what one request can add to a worker before its check
# The least memory limit a worker is given: a warm worker runs at 1.1-1.3 GB on Paddle Inference and at
# 0.4-0.6 GB on OpenVINO's runtime (BENCHMARKS.md); with a lower limit it is replaced after most requests.
MIN_WORKER_MB = {"paddle": 1536, "openvino": 768}


def min_worker_mb(config: OcrConfig) -> int:
    return MIN_WORKER_MB["openvino" if config.on_openvino else "paddle"]


def default_layout(server: ServerConfig, config: OcrConfig) -> ServerConfig:
    """Workers when ``OCR_WORKERS`` is 0 and the solo worker when ``OCR_SOLO_WORKER`` is auto, as
    measured on 2 cores (BENCHMARKS.md): one worker per core (threads: cores / workers, see
    ``launcher.prepare_environment``), which serves many clients fastest; and with OpenVINO, one
    more worker with every core, which serves a request alone on the server fastest (OpenVINO gains
    1.8× from a second thread, oneDNN less than it loses by sharing cores). On the GPU, one worker.
    Then the layout is fitted to the memory the server may use (``fit_memory``)."""
    cores = usable_cores()
    workers = server.workers or (1 if config.use_gpu else cores)
    solo = server.solo_worker
    if solo == "auto":
        fits = not server.workers and config.on_openvino and cores > 1
        solo = "true" if fits else "false"
    layout = dataclasses.replace(server, workers=workers, solo_worker=solo)
    auto_workers, auto_solo = not server.workers, server.solo_worker == "auto"
    return fit_memory(layout, usable_memory_mb(), min_worker_mb(config), may_drop_workers=auto_workers, may_drop_solo=auto_solo)


def fit_memory(server: ServerConfig, memory_mb: int, min_mb: int, *, may_drop_workers: bool, may_drop_solo: bool) -> ServerConfig:
    """The layout within ``memory_mb`` (a container's memory limit, else the machine's memory) by the
    README's bound (``memory_bound_mb``). Where the launcher chose the layout, it drops the solo
    worker, then shared workers, until each worker can have ``min_mb`` (``min_worker_mb``, or its lower limit);
    then it lowers ``worker_max_memory_mb`` to each worker's share, but not below that (if even that
    does not fit, ``warn_if_memory_short`` says so). With 4 GiB on 2 cores: one worker × 2 threads."""
    if not server.worker_max_memory_mb:  # 0: workers are never replaced, there is no bound to fit
        return server
    available = memory_mb - memory_bound_mb(server, workers=0)

    def share(workers: int, solo: bool) -> int:
        return available // (workers + solo) - REQUEST_MB

    need = min(server.worker_max_memory_mb, min_mb)
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
    bound, memory = memory_bound_mb(server), usable_memory_mb()
    if server.worker_max_memory_mb and bound > memory:
        log.warning(
            "%d worker(s) of OCR_WORKER_MAX_MEMORY_MB=%d may take %d MB, more than the %d MB this server may use: "
            "the kernel may kill workers under load; set fewer OCR_WORKERS or give it more memory",
            server.workers + server.solo,
            server.worker_max_memory_mb,
            bound,
            memory,
        )
