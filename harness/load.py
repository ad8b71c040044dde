"""Concurrent HTTP load: client threads post to ``/predict/<module>``, each answer timed and checked.

    from harness.load import image_body, run_load
    result = run_load(url, "ocr_system", lambda i: image_body(photos[i % len(photos)]),
                      concurrency=4, max_requests=40)       # or seconds=300, or both: first reached
    result.images_per_s, result.latency(95), result.errors_by_kind(), result.texts()

Each client thread has its own ``requests.Session`` (kept-alive connection) and takes the next
request index until ``max_requests`` have been sent or ``seconds`` have passed. An answer is an error
when the HTTP code is not 200, the envelope's status is not "000", or the request raised.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass

import requests

from harness.photos import Photo
from harness.stats import percentile

JSON = {"Content-Type": "application/json"}


@dataclass
class Answer:
    index: int
    started: float  # seconds since the load began
    latency: float
    error: str | None = None  # its kind, e.g. "HTTP 503 status 503: server busy", "ConnectionError"
    texts: list[str] | None = None  # ocr_system: every line's text, images in order


@dataclass
class LoadResult:
    module: str
    concurrency: int
    wall_s: float
    answers: list[Answer]

    @property
    def ok(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.error is None]

    @property
    def images_per_s(self) -> float:
        """Answered requests per second: images per second at one image per request."""
        return len(self.ok) / self.wall_s if self.wall_s else 0.0

    @property
    def latencies(self) -> list[float]:
        return [answer.latency for answer in self.answers]

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies, q)

    def errors_by_kind(self) -> dict[str, int]:
        return dict(Counter(answer.error for answer in self.answers if answer.error).most_common())

    def texts(self) -> dict[int, list[str]]:
        """Request index → its texts, for the answered ocr_system requests."""
        return {answer.index: answer.texts for answer in self.ok if answer.texts is not None}

    def summary(self) -> dict:
        """The numbers a report shows, JSON-able."""
        return {
            "module": self.module,
            "concurrency": self.concurrency,
            "requests": len(self.answers),
            "errors": len(self.answers) - len(self.ok),
            "error_kinds": self.errors_by_kind(),
            "wall_s": self.wall_s,
            "images_per_s": self.images_per_s,
            **{f"p{q}_s": self.latency(q) for q in (50, 95, 99)},
            "max_s": max(self.latencies, default=None),
        }


def image_body(photo: Photo) -> bytes:
    return json.dumps({"images": [photo.b64()]}).encode()


def _error_kind(response: requests.Response) -> tuple[str | None, dict]:
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if response.status_code == 200 and body.get("status") == "000":
        return None, body
    message = str(body.get("msg", "")) or response.text
    return f"HTTP {response.status_code} status {body.get('status')}: {message[:80]}", body


def _texts(body: dict) -> list[str] | None:
    results = body.get("results")
    try:
        return [line["text"] for image in results for line in image]
    except (TypeError, KeyError):  # not ocr_system's shape
        return None


def run_load(
    url: str,
    module: str,
    body,
    *,
    concurrency: int,
    max_requests: int | None = None,
    seconds: float | None = None,
    timeout: float = 300,
    on_answer=None,
) -> LoadResult:
    """Post ``body(index)`` (bytes) for index 0, 1, ... from ``concurrency`` threads until ``max_requests``
    are sent or ``seconds`` have passed; ``on_answer(answer)`` is called as each one arrives."""
    if max_requests is None and seconds is None:
        raise ValueError("give max_requests, seconds or both")
    endpoint = f"{url}/predict/{module}"
    lock, answers, issued = threading.Lock(), [], 0
    started = time.monotonic()
    deadline = started + seconds if seconds is not None else float("inf")

    def next_index() -> int | None:
        nonlocal issued
        with lock:
            if (max_requests is not None and issued >= max_requests) or time.monotonic() >= deadline:
                return None
            issued += 1
            return issued - 1

    def client() -> None:
        with requests.Session() as session:
            while (index := next_index()) is not None:
                answer = _post(session, endpoint, body(index), index, started, timeout)
                with lock:
                    answers.append(answer)
                    if on_answer:
                        on_answer(answer)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(module, concurrency, time.monotonic() - started, sorted(answers, key=lambda a: a.index))


def _post(session: requests.Session, endpoint: str, data: bytes, index: int, started: float, timeout: float) -> Answer:
    begin = time.monotonic()
    try:
        response = session.post(endpoint, data=data, timeout=timeout, headers=JSON)
        error, body = _error_kind(response)
    except requests.RequestException as err:
        error, body = type(err).__name__, {}
    return Answer(index, begin - started, time.monotonic() - begin, error, None if error else _texts(body))
