"""Inference workers behind a bounded queue, supervised by the front's event loop.

Each ``Slot`` owns one worker process and pulls the next job from the shared queue only when its
worker is idle, so work goes to whichever worker is free (no accept-time balancing).

The queue is bounded by time, not by a count (``WorkerPool.admit``): a job is refused at once, with
503 + Retry-After, when the work already ahead of it would keep it waiting past ``queue_timeout`` by
the estimate — the seconds the jobs waiting and running still need (``JobCosts``: measured seconds per
image of each module on each kind of worker), divided by the workers that take from its queue. So a
burst of 64 small requests, cleared in a few seconds, is served whole, while 1,000 photos at once are
refused as they arrive instead of after waiting. ``queue_size`` is only a safety net: however cheap
the estimate says the jobs are, no more than that many wait (it bounds what an estimate far below the
truth can let in). The front's byte budget (``max_buffered_bytes``) bounds the bytes they hold. A job
that still waits longer than ``queue_timeout`` (slower than estimated) is answered 503 instead of
being run late.

With a solo worker (``ServerConfig.solo``, on by default with OpenVINO, see ``layout.default_layout``)
a request that arrives while no other is queued or running goes to that worker, which has every
core; any other goes to the shared queue of the workers with a core each. One client is then served
at the speed of all cores and many at the speed of one process per core, the two layouts each fastest
for that load with this engine (BENCHMARKS.md), at the memory of one more worker. The solo worker
never takes from the shared queue: with the shared workers busy, its threads would only slow theirs.

A document job's progress (``worker.Progress``) reaches the ``progress`` callback its request gave
``WorkerPool.run``, in order and before the reply. A request that stops waiting (its client went
away) takes its job off the queue, or has the worker stop it between pages (``Slot.cancel``).

A worker that dies is replaced and counted; the job it held is answered with an error, never lost or
run twice. A worker stuck past its job's time budget is killed and replaced the same way. One
thread per slot waits on the pipe, so the event loop never blocks on a worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import math
import multiprocessing
import os
import time
from multiprocessing.connection import wait

from ocrhub.config import OcrConfig, ServerConfig, usable_cores
from ocrhub.errors import UnavailableError, WorkerDiedError
from ocrhub.serving import metrics, worker
from ocrhub.serving.worker import DocumentJob, Job, LoadFailed, Progress, Ready, Reply

log = logging.getLogger("ocrhub.workers")
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: never fork a running event loop
RESTART_BACKOFF = (1, 2, 5, 10, 30)  # seconds before loading again after a failed load
NOT_DELIVERED = object()  # a job the worker never received, to be run by another
# Seconds an image is taken to cost until its module has been measured on that kind of worker, and
# where its moving average starts: more than a text line (0.01 s on one core), a rendered page
# (0.1-0.3 s) or an average photo (0.36 s, BENCHMARKS.md) takes. Not more, so that a fresh server with
# two shared workers admits 120 requests in 30 s: its first burst of 64 is served whole.
SEED_SECONDS_PER_IMAGE = 0.5
# Weight of the newest measurement in the moving average. A slower job counts more than a faster one:
# a burst slows the workers it is measured on (1,000 pages at once on 2 cores: 0.26 s a page, up to
# 0.66 s with other work on the machine), and a cost too low admits jobs that wait past queue_timeout
# after all, while one too high only refuses a few more that retry shortly.
SLOWER_WEIGHT, FASTER_WEIGHT = 0.5, 0.2


class JobCosts:
    """Seconds a worker needs per image of each module (per document for ``POST /ocr``, whose pages are
    not counted before a worker renders them), a moving average by kind of worker, learned from the jobs
    answered. By module because their costs differ 30-fold (a line for ocr_cls 0.01 s, a page for
    ocr_system 0.3 s on one core): one average over all would refuse a burst of lines after a few pages,
    and let in far too many pages after a run of lines. By kind because the solo worker has every core."""

    def __init__(self):
        self.per_image: dict[tuple[str, str], float] = {}

    def estimate(self, kind: str, job) -> float:
        return self.per_image.get((kind, _cost_key(job)), SEED_SECONDS_PER_IMAGE) * _images(job)

    def learn(self, kind: str, job, seconds: float) -> None:
        """Average in a job's measured ``seconds``, from the seed for the first."""
        key, measured = (kind, _cost_key(job)), seconds / _images(job)
        known = self.per_image.get(key, SEED_SECONDS_PER_IMAGE)
        weight = SLOWER_WEIGHT if measured > known else FASTER_WEIGHT
        self.per_image[key] = known + weight * (measured - known)


def _cost_key(job) -> str:
    return "document" if isinstance(job, DocumentJob) else job.module


def _images(job) -> int:
    return len(getattr(job, "images", ())) or 1


def refusal(wait: float, waiting: int, server: ServerConfig) -> UnavailableError | None:
    """Why a job that would wait ``wait`` seconds behind ``waiting`` others is refused, or None to admit
    it. Retry-After is when the work ahead should be down to ``queue_timeout``, no later than
    ``queue_timeout`` itself: by then every job now waiting has been run or refused."""
    timeout = server.queue_timeout
    if wait > timeout:
        reason = f"a new request would wait about {wait:.0f} s behind the {waiting} waiting (OCR_QUEUE_TIMEOUT {timeout:g} s)"
    elif waiting >= server.queue_size:
        reason = f"{waiting} requests are waiting (OCR_QUEUE_SIZE {server.queue_size})"
    else:
        return None
    retry_after = max(1, min(math.ceil(wait - timeout), math.ceil(timeout)))
    error = UnavailableError(f"all workers are busy: {reason}; retry in {retry_after} s")
    error.retry_after = retry_after
    return error


class _Pending:
    def __init__(self, job: Job, queue: asyncio.Queue, progress=None):
        self.job, self.queue, self.queued_at, self.progress = job, queue, time.monotonic(), progress
        self.started: float | None = None  # when a worker began it
        self.slot: Slot | None = None  # the slot whose worker runs it
        self.future = asyncio.get_running_loop().create_future()

    def tell(self, progress: Progress) -> None:
        """Count a page the worker read, and pass the news on to the request (if it still listens)."""
        if progress.event == "page":
            metrics.PAGES.labels(progress.data["source"]).inc()
        if self.progress is not None and not self.future.done():
            self.progress(progress)

    def left_of(self, cost: float) -> float:
        """Seconds of its estimated ``cost`` still to run: all of it while it waits, the rest once begun."""
        if self.started is None:
            return cost
        return max(0.0, cost - (time.monotonic() - self.started))


class WorkerPool:
    def __init__(self, server: ServerConfig, config: OcrConfig, stuck_after: float | None):
        """``server.workers`` resolved (``layout.default_layout``); ``config`` is what every worker runs."""
        self.server, self.config, self.stuck_after = server, config, stuck_after
        self.modules = server.module_names
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.shared = [Slot(self, index, self.queue) for index in range(server.workers)]
        self.solo = Slot(self, server.workers, asyncio.Queue()) if server.solo else None
        self.slots = self.shared + ([self.solo] if self.solo else [])
        self.jobs: set[_Pending] = set()  # requests queued or running
        self.costs = JobCosts()
        self.load_error = ""
        self.closing = False
        metrics.QUEUE_LENGTH.set_function(lambda: self.waiting)
        metrics.WORKERS_READY.set_function(lambda: self.ready)

    def settings(self, slot: Slot) -> worker.Settings:
        """A worker's settings. The solo worker has every core. When the shared workers × threads are
        exactly the cores this process may use, each keeps to its own: the OpenVINO engine sizes its
        thread pool from the cores a process may use, and two unpinned 1-thread workers on 2 cores
        served 1.86 images/s where pinned ones served 3.69. With more cores visible than used (a
        container under a CPU quota sees the node's), nothing is pinned, so pods on one node do not
        all crowd its first cores."""
        cores = sorted(os.sched_getaffinity(0))
        config, share = self.config, ()
        if slot is self.solo:
            config = dataclasses.replace(config, cpu_threads=usable_cores())
        elif len(self.shared) * config.threads == len(cores):
            share = tuple(cores[slot.index * config.threads : (slot.index + 1) * config.threads])
        server = self.server
        return worker.Settings(config, tuple(self.modules), server.worker_max_memory_mb, server.offline, server.log_format, share)

    @property
    def ready(self) -> int:
        return sum(slot.pid is not None for slot in self.slots)

    @property
    def waiting(self) -> int:
        return self.queue.qsize() + (self.solo.queue.qsize() if self.solo else 0)

    def wait_estimate(self, queue: asyncio.Queue) -> float:
        """Seconds a job put on ``queue`` now would wait: the work left of the jobs ahead of it there, by
        the latest costs (a job queued at the seed's cost is counted at its module's measured one),
        shared by the ready workers that take from it (one while all are being replaced: a worker loads
        in seconds, and ``admit`` is not asked while none is ready)."""
        kind = self._kind_of(queue)
        ahead = sum(pending.left_of(self.costs.estimate(kind, pending.job)) for pending in self.jobs if pending.queue is queue)
        workers = sum(slot.queue is queue and slot.pid is not None for slot in self.slots)
        return ahead / max(1, workers)

    def admit(self) -> None:
        """Refuse at once (503 + Retry-After) a job that would wait past ``queue_timeout`` by the
        estimate, or one more than ``queue_size`` waiting; asked before a request's body is read, so an
        overloaded server spends nothing on it, and again as its job is queued."""
        error = refusal(self.wait_estimate(self._queue_for_next()), self.waiting, self.server)
        if error is not None:
            metrics.REJECTED.labels("queue_full").inc()
            raise error

    def _kind_of(self, queue: asyncio.Queue) -> str:
        return "solo" if self.solo and queue is self.solo.queue else "shared"

    def requeue(self, pending: _Pending) -> None:
        """Put back on the shared queue a job a worker did not run (it died, or is the solo worker)."""
        pending.queue, pending.started = self.queue, None
        self.queue.put_nowait(pending)

    def _queue_for_next(self) -> asyncio.Queue:
        """The solo worker's queue for a request alone on the server, else the shared one; either, when
        the other side has no worker ready (starting or being replaced)."""
        solo = self.solo
        if solo is None or solo.pid is None:
            return self.queue
        alone = not self.jobs
        return solo.queue if alone or not any(slot.pid for slot in self.shared) else self.queue

    def start(self) -> None:
        """The first worker (the solo one, if any) loads alone, the others once it is done: on 2 cores
        three loading at once took 10.6 s before the server could answer, one alone 4.4-4.8 s."""
        slots = ([self.solo] if self.solo else []) + self.shared
        log.info(
            "starting %d shared worker(s)%s; one over %d MB after a request is replaced (OCR_WORKER_MAX_MEMORY_MB, fitted)",
            len(self.shared),
            " and the solo worker" if self.solo else "",
            self.server.worker_max_memory_mb,
        )
        for slot in slots:
            after = None if slot is slots[0] else slots[0]
            slot.task = asyncio.create_task(slot.run(after), name=f"worker-slot-{slot.index}")

    async def run(self, job: Job, progress=None) -> Reply:
        """Queue ``job`` and wait for its reply, passing its ``Progress`` to ``progress``; refused at once
        when the queue is full (``admit``). Cancelled, it leaves the queue or has its worker stop it."""
        self.admit()
        queue = self._queue_for_next()
        pending = _Pending(job, queue, progress)
        queue.put_nowait(pending)
        self.jobs.add(pending)
        try:
            return await pending.future
        finally:
            self.jobs.discard(pending)
            if pending.slot is not None and (pending.future.cancelled() or not pending.future.done()):
                pending.slot.cancel(job)  # running, and its request no longer waits (cancelling us cancelled it)
            pending.future.cancel()  # the client is gone or the answer is in: a slot skips it

    async def stop(self, timeout: float) -> None:
        """Let running jobs finish (up to ``timeout``), then stop every worker."""
        self.closing = True
        await asyncio.gather(*(slot.stop(timeout) for slot in self.slots))


class Slot:
    """One worker process: start it, feed it jobs while it is idle, replace it when it dies."""

    def __init__(self, pool: WorkerPool, index: int, queue: asyncio.Queue):
        self.pool, self.index, self.queue = pool, index, queue
        self.process = self.conn = None
        self.pid: int | None = None  # set while the worker is loaded and alive
        self.task: asyncio.Task | None = None
        self.tried = asyncio.Event()  # its first load is over, loaded or not
        self.thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"worker-{index}")
        self.cancelled = SPAWN.RawValue("q", 0)  # the ticket of a document job its worker should stop

    @property
    def kind(self) -> str:
        return "solo" if self is self.pool.solo else "shared"

    @property
    def name(self) -> str:
        return "solo worker" if self.kind == "solo" else f"worker {self.index}"

    async def run(self, after: Slot | None = None) -> None:
        """Keep a worker running; the first time, once ``after`` has tried to load its own."""
        if after is not None:
            await after.tried.wait()
        failures = 0
        while not self.pool.closing:
            try:
                started = await self._start()
            finally:
                self.tried.set()
            if not started:
                failures += 1
                await asyncio.sleep(RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF)) - 1])
                continue
            failures = 0
            reason = await self._feed()
            self.pid = None
            while self.kind == "solo" and not self.queue.empty():  # to the shared workers meanwhile
                self.pool.requeue(self.queue.get_nowait())
            if not self.pool.closing:
                metrics.WORKER_RESTARTS.labels(reason).inc()
                log.warning("%s %s; starting a new one", self.name, reason)

    async def _start(self) -> bool:
        self.conn, child = SPAWN.Pipe()
        self.process = SPAWN.Process(
            target=worker.main,
            name=f"ocr-worker-{self.index}",
            daemon=True,
            args=(child, self.pool.settings(self), self.cancelled),
        )
        self.process.start()
        child.close()
        message = await self._call(None, timeout=None)
        if isinstance(message, Ready):
            self.pid, self.pool.load_error = message.pid, ""
            log.info("%s ready: pid %d, %s, loaded in %.1f s", self.name, message.pid, message.description, message.seconds)
            return True
        self.pool.load_error = message.message if isinstance(message, LoadFailed) else str(message)
        log.error("%s failed to load: %s", self.name, self.pool.load_error)
        self.process.join()
        return False

    async def _feed(self) -> str:
        """Answer jobs until the worker dies or retires; returns why it stopped."""
        loop = asyncio.get_running_loop()
        exited = loop.create_future()  # the process's sentinel becomes readable when it exits
        loop.add_reader(self.process.sentinel, lambda: exited.done() or exited.set_result(None))
        try:
            while True:
                pending = await self._next(exited)
                if pending is None:
                    return await self._exit_reason()
                pending.started, pending.slot = time.monotonic(), self
                reply = await self._call(pending.job, timeout=self.pool.stuck_after, progress=pending.tell)
                if reply is NOT_DELIVERED:
                    self.pool.requeue(pending)
                    return await self._exit_reason()
                if isinstance(reply, Reply) and reply.error is None:  # a refused or timed-out job says little
                    self.pool.costs.learn(self.kind, pending.job, time.monotonic() - pending.started)
                if not pending.future.done():
                    if isinstance(reply, Reply):
                        pending.future.set_result(reply)
                    else:
                        pending.future.set_exception(reply)
                if isinstance(reply, WorkerDiedError):
                    return "died"
        finally:
            loop.remove_reader(self.process.sentinel)

    async def _exit_reason(self) -> str:
        """Why the idle worker exited: "recycled" when it retired over its memory limit, else "died"."""
        await asyncio.get_running_loop().run_in_executor(self.thread, self.process.join)
        return "recycled" if self.process.exitcode == worker.RETIRED else "died"

    async def _next(self, exited: asyncio.Future) -> _Pending | None:
        """The next job still worth running, or None once the worker has died while idle."""
        queue = self.queue
        while True:
            getting = asyncio.ensure_future(queue.get())
            await asyncio.wait({exited, getting}, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                return None
            pending = getting.result()
            if exited.done() or not self.process.is_alive():
                self.pool.requeue(pending)  # never taken by this dead worker: a shared one will
                return None
            if pending.future.done():  # its client went away while it waited
                continue
            waited = time.monotonic() - pending.queued_at
            metrics.QUEUE_WAIT.observe(waited)
            if waited <= self.pool.server.queue_timeout:
                metrics.JOBS.labels(self.kind).inc()
                return pending
            metrics.REJECTED.labels("queue_timeout").inc()
            pending.future.set_exception(
                UnavailableError(
                    f"waited {waited:.0f} s for a free worker (OCR_QUEUE_TIMEOUT); the server is overloaded, retry later"
                )
            )

    def cancel(self, job) -> None:
        """Have the worker stop ``job`` between pages, if it is a document job it is still running."""
        if isinstance(job, DocumentJob):
            self.cancelled.value = job.ticket

    async def _call(self, job: Job | None, timeout: float | None, progress=None):
        """Send ``job`` (None: only wait for the load message) and wait for the worker's answer, passing
        its ``Progress`` to ``progress`` on the event loop."""
        loop = asyncio.get_running_loop()
        forward = (lambda message: loop.call_soon_threadsafe(progress, message)) if progress else None
        return await loop.run_in_executor(self.thread, self._exchange, job, timeout, forward)

    def _exchange(self, job, timeout, forward=None):
        """In the slot's thread: the worker's reply (its progress passed to ``forward``, within one
        ``timeout`` for the whole job), or why there is none."""
        if job is not None:
            try:
                self.conn.send(job)
                taken = self._receive(timeout=None) == worker.TAKEN
            except (EOFError, OSError):
                taken = False
            if not taken:  # died before it took the job
                self.process.join()
                return NOT_DELIVERED
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while isinstance(message := self._receive(_left(deadline)), Progress):
                if forward:
                    forward(message)
            return message
        except (EOFError, OSError, TimeoutError) as err:
            if isinstance(err, TimeoutError):  # stuck far past the job's time budget
                self.process.kill()
            self.process.join()
            return WorkerDiedError(
                f"the inference worker stopped while answering this request (exit code "
                f"{self.process.exitcode}); it has been replaced: retry the request"
            )

    def _receive(self, timeout: float | None):
        """The worker's next message; EOFError once it has exited, TimeoutError after ``timeout`` s."""
        ready = wait([self.conn, self.process.sentinel], timeout)
        if self.conn in ready:
            return self.conn.recv()
        raise EOFError("worker exited") if ready else TimeoutError()

    async def stop(self, timeout: float) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.process is not None and self.process.is_alive():
            if self.pid is None:  # still loading: it holds no job, and would read the stop only once loaded
                self.process.kill()
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    pass
            await asyncio.get_running_loop().run_in_executor(None, self.process.join, timeout)
            if self.process.is_alive():
                self.process.kill()
        self.thread.shutdown(wait=False, cancel_futures=True)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
