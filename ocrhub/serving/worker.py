"""An inference worker process: loads the stages of the served tasks, then answers jobs one at a time.

The front starts it (``multiprocessing`` spawn: a fresh interpreter, nothing of the front's event loop)
with one end of a pipe and takes it a job whenever it is idle. Heavy imports happen inside ``main``,
so the front, which imports this module to name ``main``, never loads the engine.

Once ready, a worker on OpenVINO that has been idle for half a second runs its stages once on their
largest usual inputs (``pipeline.settle_steps``), a step at a time between jobs: it is ready within
a second of starting, and later requests reuse the memory those inputs grew.

A document job (``POST /ocr``) sends its news as it goes, before its reply: ``Progress`` "start" with
the number of pages, then each "page" as soon as it is read. Between pages the worker looks at the
ticket the front cancels (a shared integer, ``Slot.cancel``): once it is the job's own, because its
client went away, the worker stops reading and answers ``AbandonedError``.

After answering a job that left it larger, the worker hands freed heap back to the system
(``malloc_trim``) and, past ``worker_max_memory_mb``, retires: it exits with status ``RETIRED`` and
the front starts another. Memory returns to its steady level after a burst of large images.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import logging.config
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ocrhub.config import OcrConfig
from ocrhub.errors import AbandonedError, ServiceError
from ocrhub.serving.logs import REQUEST_ID, log_config

log = logging.getLogger("ocrhub.worker")
TAKEN = "taken"
RETIRED = 75  # exit status of a worker over its memory limit after a job (EX_TEMPFAIL): replace, not an error
SETTLE_AFTER_IDLE_S = 0.5  # idle this long, a worker settles its stages (pipeline.settle_steps): not before
# the request a client sends as soon as /health says ready, nor between the requests of a busy client


@dataclass(frozen=True)
class Job:
    """Images for ``POST /predict/<module>``."""

    module: str  # a name of ocrhub.tasks.TASKS
    images: list = field(default_factory=list)  # ocrhub.images.EncodedImage, checked in the front
    request_id: str = "-"


_tickets = itertools.count(1)


@dataclass(frozen=True)
class DocumentJob:
    """A PDF or image file for ``POST /ocr``, read by ``ocr_system``."""

    data: bytes
    options: object  # ocrhub.documents.Options
    request_id: str = "-"
    searchable: bool = False  # also write the searchable PDF (ocrhub.textlayer) as the reply's results
    ticket: int = field(default_factory=lambda: next(_tickets))  # names the job to cancel (Slot.cancel)

    module = "ocr_system"


@dataclass(frozen=True)
class Progress:
    """A document job's news before its reply: "start" ``{"pages": n}``, then each "page" as read."""

    event: str
    data: dict


@dataclass(frozen=True)
class Reply:
    results: object = None
    error: ServiceError | None = None


@dataclass(frozen=True)
class Ready:
    pid: int
    seconds: float
    description: str  # engine, models, threads: for the one start-up line the front logs


@dataclass(frozen=True)
class LoadFailed:
    message: str


@dataclass(frozen=True)
class Settings:
    config: OcrConfig  # the front's, as it resolved it at start-up: every worker runs the same
    modules: tuple[str, ...]
    max_memory_mb: int
    offline: bool
    log_format: str
    cpus: tuple[int, ...] = ()  # the cores this worker keeps to (empty: any)


def main(conn, settings: Settings, cancelled) -> None:
    """``cancelled``: a shared integer (``multiprocessing.RawValue``), the ticket of a job to stop."""
    # Ctrl+C reaches the whole process group: the front decides when a worker stops (after its job).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings.cpus:  # before the engine starts its threads, which size their pool from this set
        os.sched_setaffinity(0, settings.cpus)
    _quiet_libraries()
    logging.config.dictConfig(log_config(settings.log_format))
    if settings.offline:
        from ocrhub.serving.offline import refuse_outbound_connections

        refuse_outbound_connections()
    started = time.monotonic()
    try:
        services, settle = _load(settings.config, settings.modules)
    except BaseException as err:  # SystemExit carries the one-line configuration message
        conn.send(LoadFailed(str(err) or type(err).__name__))
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # paddle's import installs glog's, which aborts noisily
    conn.send(Ready(os.getpid(), time.monotonic() - started, _describe(settings.config)))
    _serve(conn, services, settings.max_memory_mb, settle, cancelled)


def _quiet_libraries() -> None:
    """Paddle (the onednn, plain and GPU engines) warns at import that ccache is missing, a tool for
    compiling custom C++ operators that a service never does; that one warning is silenced where it is
    raised, any other still shows."""
    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning, module="paddle")


def _describe(config: OcrConfig) -> str:
    models = ", ".join(Path(config.model_path(stage)).name for stage in ("det", "cls", "rec"))
    return f"engine {config.engine}, {config.threads} thread(s), models {config.model_set} ({models})"


def _load(config: OcrConfig, modules: tuple[str, ...]) -> tuple[dict, list]:
    """The services of ``modules``, and the steps to settle their stages while idle (``pipeline.settle_steps``)."""
    from ocrhub import pipeline
    from ocrhub.errors import exit_on_config_error
    from ocrhub.service import OcrService
    from ocrhub.tasks import TASKS

    with exit_on_config_error("worker"):
        services = {name: OcrService(name, config) for name in modules}
    return services, [step for name in modules for step in pipeline.settle_steps(config, TASKS[name].stages)]


def _serve(conn, services: dict, max_memory_mb: int, settle: list, cancelled) -> None:
    memory = _Memory(max_memory_mb)
    while True:
        if settle and not conn.poll(SETTLE_AFTER_IDLE_S):  # one step at a time: a job waits for one at most
            try:
                settle.pop(0)()
            except Exception:  # only an optimisation: the worker serves on as it is
                log.exception("settling a stage failed")
            continue
        try:
            job = conn.recv()
        except EOFError:  # the front is gone
            return
        if job is None:
            return
        conn.send(TAKEN)  # from here on, the job is this worker's: if it dies, the job failed
        REQUEST_ID.set(job.request_id)
        conn.send(_answer(services, job, conn, cancelled))
        if memory.over_limit_after_job():
            sys.exit(RETIRED)  # a job sent meanwhile is never taken: the front gives it to another worker


def _answer(services: dict, job: Job | DocumentJob, conn, cancelled) -> Reply:
    try:
        service = services[job.module]
        if isinstance(job, DocumentJob):
            return Reply(_read_document(service, job, conn, cancelled))
        return Reply(service.run(job.images))
    except ServiceError as err:
        return Reply(error=err)
    except Exception as err:
        log.exception("%s failed", job.module)
        return Reply(error=ServiceError(f"internal error in {job.module}: {type(err).__name__}: {err}"))


def _read_document(service, job: DocumentJob, conn, cancelled) -> bytes | None:
    """Read the job's document, sending its progress; the searchable PDF if the job asks for one."""
    with contextlib.ExitStack() as stack:
        if job.searchable:
            from ocrhub import textlayer  # pikepdf: only in a worker, once a document asks for a PDF

            rewrite = stack.enter_context(textlayer.Rewrite(job.data))  # refused before any page is read
        pages = service.read_document(job.data, job.options)
        stack.callback(pages.close)
        read = []
        conn.send(Progress("start", {"pages": pages.count}))
        while cancelled.value != job.ticket:
            page = next(pages, None)
            if page is None:
                return rewrite.searchable(read) if job.searchable else None
            conn.send(Progress("page", page))
            read.append(page)
        raise AbandonedError(f"stopped after {len(read)} of {pages.count} pages: the client went away")


class _Memory:
    """The worker's memory after each job (after the reply, so no client waits for this).

    glibc keeps freed heap for reuse, so a decoded 40 MP photo would stay in RSS: the heap is handed
    back (``malloc_trim``) when RSS has grown by ``TRIM_AFTER_GROWTH_MB`` since the last time. Not after
    every job: trimming costs 3 ms and the next job faults the pages in again, 3-5 % of the time of a
    photo on 2 cores."""

    TRIM_AFTER_GROWTH_MB = 64

    def __init__(self, max_memory_mb: int):
        self.max_memory_mb = max_memory_mb
        self.trimmed_at = _rss_mb()

    def over_limit_after_job(self) -> bool:
        rss = _rss_mb()
        if rss > self.trimmed_at + self.TRIM_AFTER_GROWTH_MB or (self.max_memory_mb and rss > self.max_memory_mb):
            _malloc_trim()
            rss = self.trimmed_at = _rss_mb()
        return bool(self.max_memory_mb) and rss > self.max_memory_mb


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20
