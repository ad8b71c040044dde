"""The production server (ocrhub-serve) over HTTP: health, metrics, limits, faults, lifecycle."""

import base64
import concurrent.futures
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
from PIL import Image

from conftest import b64, normalized
from harness.servers import BIN, Server, metric
from ocrhub.config import usable_cores


def post(url, module, **kwargs):
    return requests.post(f"{url}/predict/{module}", timeout=120, **kwargs)


def test_health_is_503_while_loading_then_200(server):
    assert 503 in server.health_codes and server.health_codes[-1] == 200
    body = requests.get(server.url + "/health", timeout=10).json()
    assert body["status"] == "ok" and body["model_set"] == "mobile" and body["workers"] == {"ready": 3, "total": 3}
    assert body["modules"] == ["ocr_system", "ocr_det", "ocr_cls", "ocr_rec"]
    loaded = re.findall(r"(solo worker|worker \d) ready: pid \d+, engine openvino, (\d+) thread", server.log())
    # the solo worker (every core) loads first, alone, then the shared ones
    assert loaded[0] == ("solo worker", str(usable_cores())) and sorted(loaded[1:3]) == [("worker 0", "1"), ("worker 1", "1")]


def test_ocr_and_metrics_move(server, pages):
    before = metric(server.url, 'ocr_requests_total{module="ocr_system",status="000"}')
    images_before = metric(server.url, 'ocr_images_total{module="ocr_system"}')
    sample = pages["chinese"]
    answer = post(server.url, "ocr_system", json={"images": [b64(sample.image)] * 2}).json()
    assert answer["status"] == "000"
    assert [normalized(l["text"]) for l in answer["results"][0]] == [normalized(t) for t in sample.texts]
    assert metric(server.url, 'ocr_requests_total{module="ocr_system",status="000"}') == before + 1
    assert metric(server.url, 'ocr_images_total{module="ocr_system"}') == images_before + 2
    assert metric(server.url, 'ocr_request_duration_seconds_count{module="ocr_system"}') >= 1
    assert metric(server.url, 'ocr_request_bytes_total{module="ocr_system"}') > 0
    assert "ocr_in_flight_requests" in requests.get(server.url + "/metrics").text


def png(width, height, mode="1") -> str:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, "PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    "kwargs, http, status, message",
    [
        (
            {"data": b"x" * (5 * 1024 * 1024), "headers": {"Content-Type": "application/json"}},
            413,
            "101",
            "request body too large: limit 4194304 bytes",
        ),
        ({"json": {"images": [png(4, 4)] * 9}}, 400, "101", "too many images: 9 (limit 8 per request, OCR_MAX_IMAGES)"),
        ({"json": {"images": [png(4, 4), png(10000, 10000)]}}, 400, "101", "image 1: image too large: 10000×10000"),
        (
            {"json": {"images": [png(4000, 4000)] * 2}},
            400,
            "101",
            "too many pixels in one request: 32000000 in 2 images (limit 30000000, OCR_MAX_REQUEST_PIXELS)",
        ),
        ({"json": {"images": ["data:image/png;base64," + png(4, 4), "%%"]}}, 400, "101", "image 1: invalid base64"),
        (
            {"json": {"images": [base64.b64encode(b"GIF89a nonsense").decode()]}},
            400,
            "101",
            "image 0: not a decodable image",
        ),
        ({"json": {"images": []}}, 400, "101", "'images' is empty"),
        ({"json": {"images": {"0": "abc"}}}, 400, "101", "'images' must be a list of base64 strings, got dict"),
        ({"json": {"image": ["abc"]}}, 400, "101", "missing 'images'"),
        ({"json": ["abc"]}, 400, "101", "the body must be a JSON object"),
        ({"data": b"images=abc"}, 400, "112", "the body must be JSON"),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "112", "the body must be JSON"),
    ],
)
def test_limits_and_bad_input(server, lines, kwargs, http, status, message):
    response = post(server.url, "ocr_system", **kwargs)
    assert response.status_code == http
    answer = response.json()
    assert answer["status"] == status and message in answer["msg"], answer
    good = post(server.url, "ocr_rec", json={"images": [b64(lines[0].image)]}).json()
    assert good["status"] == "000" and normalized(good["results"][0][0]["text"]) == normalized(lines[0].texts[0])


def test_an_extreme_line_is_refused_before_it_costs_gigabytes(server):
    started = time.monotonic()
    response = post(server.url, "ocr_rec", json={"images": [png(4, 4, "RGB"), png(3000, 1, "RGB")]})
    assert response.status_code == 400 and time.monotonic() - started < 10
    assert response.json()["msg"].startswith("image 1: not a text line: 3000×1 is wider than 100× its height")


def test_odd_requests_get_the_envelope(server):
    deep = post(server.url, "ocr_system", data=b"[" * 5000 + b"]" * 5000, headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and deep.json()["status"] == "112"
    chunked = post(
        server.url,
        "ocr_system",
        data=iter([b'{"images": ["' + b"A" * 1024 * 1024] * 5 + [b'"]}']),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413 and "request body too large" in chunked.json()["msg"]
    gradio = requests.get(server.url + "/gradio/ocr_system", timeout=10)
    assert gradio.status_code == 404 and gradio.json()["status"] == "111"
    assert requests.get(server.url + "/metrics").headers["Content-Type"].count("charset") == 1


def test_unknown_module_and_paths_key(server, lines, tmp_path):
    response = post(server.url, "ocr_nothing", json={"images": [b64(lines[0].image)]})
    assert response.status_code == 404 and response.json()["status"] == "111"
    secret = tmp_path / "secret.png"
    Image.new("RGB", (64, 64)).save(secret)
    answer = post(server.url, "ocr_rec", json={"images": [b64(lines[0].image)], "paths": [str(secret)]}).json()
    assert answer["status"] == "000" and len(answer["results"][0]) == 1  # the file was not read


def test_transparent_grayscale_and_16_bit_images_are_read(server, lines):
    line = Image.fromarray(lines[0].image[:, :, ::-1])
    rgba = line.convert("RGBA")
    rgba.putalpha(Image.eval(line.convert("L"), lambda v: 255 - v))  # text opaque, paper transparent
    variants = [rgba, line.convert("L"), line.convert("L").point(lambda v: v * 257, "I"), line.convert("P")]
    encoded = []
    for image in variants:
        buffer = io.BytesIO()
        (image.convert("I;16") if image.mode == "I" else image).save(buffer, "PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    answer = post(server.url, "ocr_rec", json={"images": encoded}).json()
    assert answer["status"] == "000"
    assert [normalized(r["text"]) for r in answer["results"][0]] == [normalized(lines[0].texts[0])] * 4


def test_workers_on_openvino_load_no_paddle(server, lines):
    """The default engine runs on OpenVINO's own runtime: no worker maps Paddle's library (which paddle,
    paddleocr and paddlehub all load when imported), every worker maps OpenVINO's."""
    assert post(server.url, "ocr_rec", json={"images": [b64(lines[0].image)]}).json()["status"] == "000"
    maps = {pid: open(f"/proc/{pid}/maps").read() for pid in server.workers()}
    assert len(maps) == 3
    for pid, mapped in maps.items():
        assert "libpaddle" not in mapped and "libopenvino.so" in mapped, pid


def test_a_killed_worker_is_replaced(server, lines):
    before = server.workers()
    restarts = metric(server.url, 'ocr_worker_restarts_total{reason="died"}')
    os.kill(before[0], signal.SIGKILL)
    for _ in range(3):  # answered by the other worker meanwhile
        assert post(server.url, "ocr_rec", json={"images": [b64(lines[1].image)]}).json()["status"] == "000"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (len(server.workers()) < 3 or before[0] in server.workers()):
        time.sleep(0.2)
    assert len(server.workers()) == 3 and before[0] not in server.workers()
    assert metric(server.url, 'ocr_worker_restarts_total{reason="died"}') == restarts + 1
    while requests.get(server.url + "/health", timeout=10).json()["workers"]["ready"] < 3:
        time.sleep(0.2)
    answer = post(server.url, "ocr_system", json={"images": [b64(lines[1].image)]}).json()
    assert answer["status"] == "000"


def test_a_request_alone_gets_the_solo_worker_and_concurrent_ones_the_shared_workers(server, pages):
    def jobs() -> tuple[float, float]:
        return tuple(metric(server.url, f'ocr_worker_jobs_total{{worker="{kind}"}}') for kind in ("solo", "shared"))

    page = pages["english"]
    body = {"images": [b64(page.image)]}
    solo, shared = jobs()
    for _ in range(3):  # one after another: each alone on the server
        answer = post(server.url, "ocr_system", json=body).json()
        assert [normalized(line["text"]) for line in answer["results"][0]] == [normalized(t) for t in page.texts]
    assert jobs() == (solo + 3, shared)
    with concurrent.futures.ThreadPoolExecutor(4) as clients:
        answers = list(clients.map(lambda _: post(server.url, "ocr_system", json=body).json(), range(8)))
    assert all(answer["results"] == answers[0]["results"] for answer in answers)
    solo_after, shared_after = jobs()
    assert solo_after + shared_after == solo + shared + 11 and shared_after >= shared + 4


def test_sigterm_finishes_in_flight_requests(tmp_path, pages):
    server = Server.production(tmp_path, OCR_WORKERS="1")
    images = [b64(page.image) for page in pages.values()] * 2
    answers = []
    request = threading.Thread(target=lambda: answers.append(post(server.url, "ocr_system", json={"images": images}).json()))
    request.start()
    time.sleep(0.5)  # the request is being worked on
    server.process.send_signal(signal.SIGTERM)
    request.join(timeout=90)
    assert server.process.wait(timeout=60) == -signal.SIGTERM  # uvicorn ends by re-raising the signal
    assert answers and answers[0]["status"] == "000" and len(answers[0]["results"]) == len(images)
    assert "refused" not in server.log()  # and no outbound connection was even attempted


def test_sigterm_does_not_wait_for_a_worker_still_loading(tmp_path):
    """A worker still loading holds no request: stopping kills it instead of waiting for its load
    (Docker's stop sends SIGKILL 10 s after SIGTERM). The second worker starts loading once the first
    is ready, which is when the server answers."""
    server = Server.production(tmp_path, every_worker=False, OCR_WORKERS="2", OCR_CPU_THREADS="1", OCR_SOLO_WORKER="false")
    load_seconds = float(re.search(r"worker 0 ready: .* loaded in ([\d.]+) s", server.log()).group(1))
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == -signal.SIGTERM
    assert time.monotonic() - started < load_seconds / 2
    assert "worker 1 ready" not in server.log()


def test_time_budget(tmp_path, pages):
    server = Server.production(tmp_path, OCR_WORKERS="1", OCR_REQUEST_TIMEOUT="0.3")
    try:
        response = post(server.url, "ocr_system", json={"images": [b64(p.image) for p in pages.values()] * 2})
        assert response.status_code == 504
        assert "exceeded its time budget of 0.3 s after" in response.json()["msg"]
    finally:
        server.stop()


def test_a_missing_model_stops_the_launcher_with_one_line(tmp_path):
    env = {**os.environ, "OCR_DATA_DIR": str(tmp_path), "OCR_REC_MODEL_DIR": str(tmp_path / "no_rec")}
    result = subprocess.run([BIN / "ocrhub-serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"ocrhub-serve: model file {tmp_path / 'no_rec' / 'inference.pdmodel'} or {tmp_path / 'no_rec' / 'inference.xml'} "
        "is missing or empty; fetch it with: "
        "python scripts/fetch_models.py --set mobile  (or ./start.sh, which runs it)"
    )


def test_outbound_connections_are_refused():
    code = (
        "from ocrhub.serving.offline import refuse_outbound_connections as r; r()\n"
        "import socket\n"
        "for target in [('192.0.2.1', 80), ('paddlepaddle.org.cn', 443)]:\n"
        "    try:\n"
        "        socket.create_connection(target, timeout=2); print('connected')\n"
        "    except PermissionError as err: print(err)\n"
        "server = socket.create_server(('127.0.0.1', 0)); socket.create_connection(server.getsockname()).close()\n"
        "print('loopback ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout.splitlines() == [
        "ocrhub is offline (OCR_OFFLINE): refused a connection to ('192.0.2.1', 80)",
        "ocrhub is offline (OCR_OFFLINE): refused to resolve paddlepaddle.org.cn",
        "loopback ok",
    ], result.stderr


def test_a_worker_over_its_memory_limit_answers_then_is_replaced(tmp_path, lines):
    """The memory bound of the OpenVINO engine, whose kernels grow with every new input size: a worker
    whose RSS is over OCR_WORKER_MAX_MEMORY_MB after a request answers it, exits and is replaced."""
    with Server.production(tmp_path, OCR_WORKERS="1", OCR_WORKER_MAX_MEMORY_MB="150") as server:  # a warm worker: 0.2 GB
        first = server.workers()
        answer = post(server.url, "ocr_rec", json={"images": [b64(lines[0].image)]}).json()
        assert answer["status"] == "000" and normalized(answer["results"][0][0]["text"]) == normalized(lines[0].texts[0])
        deadline = time.monotonic() + 120
        while metric(server.url, 'ocr_worker_restarts_total{reason="recycled"}') < 1 or not _ready(server):
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.2)
        assert server.workers() != first
        assert post(server.url, "ocr_rec", json={"images": [b64(lines[0].image)]}).json()["status"] == "000"


def _ready(server) -> bool:
    return requests.get(server.url + "/health", timeout=10).json()["workers"]["ready"] == 1


def test_the_v5_mobile_set_is_served_and_named(tmp_path, lines):
    """OCR_MODEL_SET=v5-mobile: PP-OCRv5 on OpenVINO (its converted IR), named by /health and the worker's start line."""
    server = Server.production(tmp_path, OCR_WORKERS="1", OCR_SOLO_WORKER="false", OCR_MODEL_SET="v5-mobile")
    try:
        assert requests.get(f"{server.url}/health", timeout=10).json()["model_set"] == "v5-mobile"
        body = post(server.url, "ocr_system", json={"images": [b64(sample.image) for sample in lines]}).json()
        assert [[line["text"] for line in result] for result in body["results"]] == [sample.texts for sample in lines]
        started = re.search(r"worker 0 ready: pid \d+, engine (\S+), \d thread\(s\), models (.*), loaded", server.log())
        folders = "PP-OCRv5_mobile_det, ch_ppocr_mobile_v2.0_cls_infer, PP-OCRv5_mobile_rec"
        assert started.groups() == ("openvino", f"v5-mobile ({folders})")
    finally:
        server.stop()
