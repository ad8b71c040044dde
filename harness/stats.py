"""Numbers for reports: one percentile definition, and a process tree's memory sampled over time."""

from __future__ import annotations

import statistics
import threading
import time

import psutil


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0–100), linearly interpolated between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> dict:
    """Median and range: what a noisy shared machine allows to report."""
    if not values:
        return {}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def span(stats: dict) -> str:
    """A summary as "median (min–max)"."""
    return f"{stats['median']:.2f} ({stats['min']:.2f}–{stats['max']:.2f})"


def tree_rss_mb(pid: int) -> dict[int, float]:
    """RSS in MB of ``pid`` and each of its descendants."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    sizes = {}
    for process in processes:
        try:
            sizes[process.pid] = process.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            pass
    return sizes


class RssSampler:
    """Samples ``tree_rss_mb(pid)`` every ``interval`` seconds in a thread: (seconds, total MB, per pid)."""

    def __init__(self, pid: int, interval: float = 1.0):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        sizes = tree_rss_mb(self.pid)
        self.samples.append((time.monotonic() - self._started, sum(sizes.values()), sizes))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    @property
    def peak_mb(self) -> float:
        return max((total for _, total, _ in self.samples), default=0.0)
