"""Bursts: the queue admits what the workers can clear within OCR_QUEUE_TIMEOUT by the estimate
(``workers.WorkerPool.admit``), not a fixed count. The rule itself, then a burst of 64 on the session
server (the default 2-core layout); 1,000 at once is ``test_front``'s crowd test."""

import asyncio
import time

import httpx
import pytest
from prometheus_client import REGISTRY

from conftest import b64, normalized
from harness.servers import metric
from ocrhub.config import OcrConfig, ServerConfig
from ocrhub.errors import UnavailableError
from ocrhub.serving.worker import DocumentJob, Job
from ocrhub.serving.workers import SEED_SECONDS_PER_IMAGE, JobCosts, WorkerPool, refusal

SERVER = ServerConfig(queue_timeout=30.0, queue_size=256)


def test_a_job_is_admitted_while_the_work_ahead_clears_within_the_queue_timeout():
    assert refusal(0.0, 0, SERVER) is None
    assert refusal(30.0, 255, SERVER) is None
    late = refusal(42.5, 80, SERVER)
    assert isinstance(late, UnavailableError) and late.http == 503 and late.status == "111"
    assert late.retry_after == 13  # when the work ahead should be down to 30 s
    assert str(late) == (
        "all workers are busy: a new request would wait about 42 s behind the 80 waiting (OCR_QUEUE_TIMEOUT 30 s); retry in 13 s"
    )
    assert refusal(500.0, 200, SERVER).retry_after == 30  # by then every job now waiting has run or been refused


def test_the_count_is_only_a_safety_net():
    full = refusal(1.0, 256, SERVER)  # cheap jobs, but 256 already wait
    assert full.retry_after == 1 and "256 requests are waiting (OCR_QUEUE_SIZE 256)" in str(full)
    assert refusal(0.0, 0, ServerConfig(queue_timeout=0)) is None  # nothing ahead: never refused


def test_costs_are_learned_per_image_by_module_and_kind_of_worker():
    costs = JobCosts()
    lines, page, pdf = Job("ocr_rec", ["line"] * 4), Job("ocr_system", ["page"]), DocumentJob(b"%PDF", None)
    assert costs.estimate("shared", lines) == 4 * SEED_SECONDS_PER_IMAGE  # before any measurement
    costs.learn("shared", lines, 0.4)  # 0.1 s a line: a faster job is weighted in by a fifth
    assert costs.estimate("shared", lines) == pytest.approx(4 * 0.42)
    for _ in range(30):
        costs.learn("shared", lines, 0.04)
    line = Job("ocr_rec", ["line"])
    assert costs.estimate("shared", line) == pytest.approx(0.01, abs=1e-3)  # converged on 0.01 s a line
    costs.learn("shared", lines, 0.4)  # a slower one by half: a slowdown shows at once
    assert costs.estimate("shared", line) == pytest.approx(0.055, abs=1e-3)
    assert costs.estimate("shared", page) == SEED_SECONDS_PER_IMAGE  # another module: not measured yet
    assert costs.estimate("solo", lines) == 4 * SEED_SECONDS_PER_IMAGE  # nor on the solo worker
    costs.learn("shared", pdf, 3.5)
    assert costs.estimate("shared", DocumentJob(b"%PDF", None)) == 2.0  # documents: per document
    assert costs.estimate("shared", page) == SEED_SECONDS_PER_IMAGE


def rejected() -> float:
    return REGISTRY.get_sample_value("ocr_rejected_requests_total", {"reason": "queue_full"}) or 0.0


def test_the_pool_admits_by_the_estimated_wait_and_learns_as_it_goes():
    """A pool whose two workers are still loading (none started): jobs wait in its real queue, so its
    admission is seen alone. Seeded, 0.5 s a line, shared by one worker while none is ready: within
    2 s, five wait (0 to 2 s ahead of the last); the sixth is refused. Once three lines took 0.1 s,
    a line is taken to cost 0.3 s and the same five 1.5 s of work: two more fit."""
    server = ServerConfig(workers=2, solo_worker="false", queue_timeout=2.0, queue_size=100)

    async def scenario():
        pool = WorkerPool(server, OcrConfig(), stuck_after=None)
        line = Job("ocr_rec", ["line"])
        waiting = []

        async def fill() -> UnavailableError:
            while True:
                try:
                    pool.admit()
                except UnavailableError as err:
                    return err
                waiting.append(asyncio.create_task(pool.run(line)))
                await asyncio.sleep(0)  # queued

        before = rejected()
        seeded = await fill()
        assert len(waiting) == 5 and seeded.retry_after == 1 and "OCR_QUEUE_TIMEOUT 2 s" in str(seeded)
        for _ in range(3):
            pool.costs.learn("shared", line, 0.1)
        assert pool.costs.estimate("shared", line) == pytest.approx(0.3048)
        await fill()
        assert len(waiting) == 7 and pool.waiting == 7
        assert rejected() == before + 2
        with pytest.raises(UnavailableError):  # the check again as a job is queued
            await pool.run(line)
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        assert not pool.jobs
        await pool.stop(0)

    asyncio.run(scenario())


async def _at_once(url: str, requests: list[tuple[str, dict]]) -> list[tuple[int, dict, float]]:
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(module: str, body: dict):
            started = time.monotonic()
            response = await client.post(f"{url}/predict/{module}", json=body)
            return response.status_code, response.json(), time.monotonic() - started

        return await asyncio.gather(*(one(module, body) for module, body in requests))


def test_a_burst_of_64_is_served_whole_on_the_default_layout(server, lines, pages):
    """64 good requests at once, every fourth a page for ocr_system and the others a line for ocr_rec:
    a few seconds of work for two workers, far inside OCR_QUEUE_TIMEOUT (30 s). The fixed queue of 32
    refused 29 of them."""
    samples = [("ocr_system", pages["english"]) if index % 4 == 0 else ("ocr_rec", line) for index, line in enumerate(lines * 32)]
    before = metric(server.url, "ocr_rejected_requests_total")
    started = time.monotonic()
    answers = asyncio.run(_at_once(server.url, [(module, {"images": [b64(sample.image)]}) for module, sample in samples]))
    print(f"64 at once: answered in {time.monotonic() - started:.1f} s (slowest {max(a[2] for a in answers):.1f} s)")
    assert [(code, body["status"]) for code, body, _ in answers] == [(200, "000")] * 64, [a[1] for a in answers]
    for (_, sample), (_, body, _) in zip(samples, answers):
        assert [normalized(line["text"]) for line in body["results"][0]] == [normalized(text) for text in sample.texts]
    assert metric(server.url, "ocr_rejected_requests_total") == before
