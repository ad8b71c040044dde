"""The production app built and called in-process (no uvicorn, no port): Starlette's test client over
``build_app``, with one real inference worker behind its queue."""

import time

import pytest
from starlette.testclient import TestClient

from conftest import b64, normalized
from ocrhub.config import load_config, load_server_config
from ocrhub.serving.http import Connections
from ocrhub.serving.launcher import build_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    environ = {"OCR_WORKERS": "1", "OCR_DATA_DIR": str(tmp_path_factory.mktemp("app")), "OCR_CPU_THREADS": "1"}
    app = build_app(load_server_config(environ), load_config(environ=environ), Connections())
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, client.get("/health").json()
            time.sleep(0.2)
        yield client


def test_routes_answer_in_process(client, lines):
    answer = client.post("/predict/ocr_rec", json={"images": [b64(lines[0].image)]}).json()
    assert answer["status"] == "000" and normalized(answer["results"][0][0]["text"]) == normalized(lines[0].texts[0])
    assert client.post("/predict/ocr_rec", content=b"x").json()["status"] == "112"
    missing = client.post("/predict/ocr_nothing", json={"images": []})
    assert missing.status_code == 404 and missing.json()["status"] == "111"
    assert client.get("/openapi.json").json()["paths"]["/ocr"]
    assert "ocr_requests_total" in client.get("/metrics").text
