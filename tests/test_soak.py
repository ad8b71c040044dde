"""A 30-second soak of the production server (the session ``server``) with scripts/soak.py's functions:
4 clients post rendered pages to /predict/ocr_system, each request an image of a size no other has;
no request may fail, no worker may be replaced, and the server tree's RSS is sampled throughout
(the long runs, with real photos, are in BENCHMARKS.md)."""

import pytest
import soak  # scripts/ is on pytest's pythonpath

from harness import photos
from harness.load import image_body


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:9000",
        "http://example.com",
        "http://0.0.0.0:9000",
        "http://127.0.0.1.example.com:80",
        "ftp://127.0.0.1/",
    ],
)
def test_the_soak_refuses_anything_but_loopback(url):
    with pytest.raises(ValueError):
        soak.check_loopback(url)
    for url in ("http://127.0.0.1:9001/", "http://localhost:9001", "http://[::1]:9001"):
        assert soak.check_loopback(url) == url.rstrip("/")


def test_soak_30_seconds(server, font):
    variants = photos.DistinctSizes(photos.rendered_pages(font), 1000)
    assert len({variants.size(i) for i in range(len(variants))}) == len(variants)
    workers = server.workers()
    assert soak.worker_pids(server.process.pid) == workers
    result = soak.run_soak(
        server.url,
        lambda i: image_body(variants[i]),
        clients=4,
        seconds=30,
        max_requests=len(variants),
        pid=server.process.pid,
        sample_every=3,
    )
    print("\n" + soak.format_report(result))
    assert result["errors"] == 0, result["error_kinds"]
    assert result["requests"] > 0 and result["images_per_s"] > 0
    assert 0 < result["p50_s"] <= result["p95_s"] <= result["p99_s"] <= result["max_s"]
    assert result["workers_before"] == result["workers_after"] == server.workers() == workers
    samples = result["rss_samples"]
    assert len(samples) >= 8, samples
    assert all(s["total_mb"] > 0 and set(workers) <= set(s["per_pid_mb"]) for s in samples)
    assert result["rss"]["warmup_t"] >= 0.2 * 30 * 0.9
    assert "RSS growth after warm-up" in soak.format_report(result)
