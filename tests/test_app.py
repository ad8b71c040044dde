"""The production app built and called in-process (no uvicorn, no port): Starlette's test client over
``build_app``, with one real inference worker behind its queue."""

import base64
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


def test_the_byte_budget_is_given_back_after_a_searchable_pdf_is_sent(client, pages):
    """A PDF answer's bytes count against OCR_MAX_BUFFERED_BYTES while it is sent, whole or streamed:
    they must be given back after, or the front would refuse more and more uploads."""
    budget = client.app.state.front.budget
    png = bytes(base64.b64decode(b64(pages["english"].image)))
    for headers in ({"Accept": "application/pdf"}, {"Accept": "application/x-ndjson"}):
        answer = client.post("/ocr?format=pdf", content=png, headers={"Content-Type": "image/png", **headers})
        assert answer.status_code == 200 and (b"%PDF-" in answer.content[:8] or b'"pdf": "JVBERi' in answer.content)
        assert budget.used == 0
