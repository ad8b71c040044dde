"""A 30-second soak of the production server (the session ``server``) with scripts/soak.py's functions:
4 clients posting rendered pages of widths 320 to 1600 to /predict/ocr_system; no request may fail,
no worker may die, and the server's memory is sampled (the full 5-minute run is in BENCHMARKS.md)."""

import importlib.util
import sys

import pytest

from conftest import ROOT


def _load_soak():
    spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


soak = _load_soak()


@pytest.mark.parametrize("url", ["http://10.0.0.1:9000", "http://example.com", "http://0.0.0.0:9000",
                                 "http://127.0.0.1.example.com:80", "ftp://127.0.0.1/"])
def test_the_soak_refuses_anything_but_loopback(url):
    with pytest.raises(ValueError):
        soak.check_loopback(url)
    for url in ("http://127.0.0.1:9001/", "http://localhost:9001", "http://[::1]:9001"):
        assert soak.check_loopback(url) == url.rstrip("/")


def test_soak_30_seconds(server, font):
    images = soak.render_images(font_path=font)
    assert len({(image.width, image.height) for image in images}) >= 10  # many input shapes for MKLDNN
    pid = server.process.pid
    assert soak.find_server_pid(server.url) == pid
    soak.wait_ready(server.url, pid, timeout=120)
    result = soak.run_soak(server.url, images, concurrency=4, seconds=30, max_requests=5000, pid=pid,
                           sample_every=3)
    print("\n" + soak.format_report(result))
    assert result["errors"] == 0, result["error_kinds"]
    assert result["requests"] > 0 and result["images_per_s"] > 0 and result["requests_per_s"] > 0
    assert 0 < result["latency_s"]["p50"] <= result["latency_s"]["p95"] <= result["latency_s"]["p99"]
    assert result["workers_after"] == result["workers_before"], "a worker died or was replaced during the soak"
    samples = result["rss_samples"]
    assert len(samples) >= 8, samples
    assert all(s["rss_bytes"] > 0 and s["processes"] == 1 + len(result["workers_before"]) for s in samples)
    assert result["rss"]["after_warmup_t"] >= 0.2 * 30 * 0.9
    assert "RSS growth after warm-up" in soak.format_report(result)
