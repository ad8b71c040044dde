"""Access and operations over a real server with API keys, a CORS allowlist and JSON logs: who may
call what, keys rotated without a restart, refusals that cost no upload, headers, request IDs, logs."""

import json
import socket
import time

import pytest
import requests

from conftest import b64
from harness.servers import Server

FIXED_KEY = "fixed-key-0123456789"
ALLOWED = "http://allowed.example:8000"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    data = tmp_path_factory.mktemp("keyed")
    keys_file = data / "keys.txt"
    keys_file.write_text("# rotated by the operator\nfile-key-one\n")
    with Server.production(
        data,
        OCR_WORKERS="1",
        OCR_API_KEYS=FIXED_KEY,
        OCR_API_KEYS_FILE=str(keys_file),
        OCR_CORS_ORIGINS=ALLOWED,
        OCR_LOG_FORMAT="json",
    ) as server:
        server.keys_file = keys_file
        yield server


def predict(server, key=None, header="Authorization", body=None, **kwargs):
    headers = {} if key is None else {header: f"Bearer {key}" if header == "Authorization" else key}
    return requests.post(server.url + "/predict/ocr_rec", json=body or {"images": []}, headers={**headers, **kwargs}, timeout=60)


def test_without_a_key_only_health_and_the_page_answer(keyed, lines):
    assert requests.get(keyed.url + "/health", timeout=10).status_code == 200
    assert requests.get(keyed.url + "/", timeout=10).status_code == 200
    for response in (
        predict(keyed),
        requests.post(keyed.url + "/ocr", data=b"%PDF-", timeout=10),
        requests.get(keyed.url + "/metrics", timeout=10),
    ):
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
        assert response.json() == {
            "status": "101",
            "results": "",
            "msg": "no API key: send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        }
    wrong = predict(keyed, "not-the-key")
    assert wrong.status_code == 401 and wrong.json()["msg"].startswith("a wrong API key")


def test_a_valid_key_in_either_header(keyed, lines):
    body = {"images": [b64(lines[0].image)]}
    assert predict(keyed, FIXED_KEY, body=body).json()["status"] == "000"
    assert predict(keyed, "file-key-one", header="X-API-Key", body=body).json()["status"] == "000"
    assert requests.get(keyed.url + "/metrics", headers={"X-API-Key": FIXED_KEY}, timeout=10).status_code == 200


def test_keys_rotate_without_a_restart(keyed, lines):
    body = {"images": [b64(lines[0].image)]}
    keyed.keys_file.write_text("file-key-two\n")
    time.sleep(0.05)  # a new modification time
    assert predict(keyed, "file-key-two", body=body).json()["status"] == "000"
    assert predict(keyed, "file-key-one", body=body).status_code == 401
    assert predict(keyed, FIXED_KEY, body=body).json()["status"] == "000"  # the environment's key stays


def test_a_wrong_key_is_refused_before_the_body_is_read(keyed):
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict/ocr_system HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
            b"Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n" + b"[" * 65536
        )
        started, answer = time.monotonic(), b""
        while chunk := sock.recv(65536):  # the server closes after its answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 ") and time.monotonic() - started < 2
    assert b"a wrong API key" in answer


def test_cors_preflight_and_answers_follow_the_allowlist(keyed):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = requests.options(keyed.url + "/predict/ocr_rec", headers={"Origin": ALLOWED, **preflight}, timeout=10)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    refused = requests.options(keyed.url + "/predict/ocr_rec", headers={"Origin": "http://evil.example", **preflight}, timeout=10)
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    answer = predict(keyed, FIXED_KEY, Origin=ALLOWED)
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in predict(keyed, FIXED_KEY, Origin="http://evil.example").headers
    assert predict(keyed, Origin=ALLOWED).headers["access-control-allow-origin"] == ALLOWED  # a 401 a page can read


def test_security_headers_on_the_page_and_the_api(keyed):
    page = requests.get(keyed.url + "/", timeout=10)
    api = predict(keyed, FIXED_KEY)
    for response in (page, api, requests.get(keyed.url + "/health", timeout=10)):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_request_ids_in_answers_and_in_the_log(keyed):
    given = predict(keyed, FIXED_KEY, **{"X-Request-ID": "client-id-42"})
    assert given.headers["x-request-id"] == "client-id-42"
    made = predict(keyed, FIXED_KEY, **{"X-Request-ID": "not a safe id\t" * 20})
    assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"].isalnum()
    time.sleep(0.2)
    records = [json.loads(line) for line in keyed.log().splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "ocrhub.access" and r["request_id"] == "client-id-42"]
    assert len(access) == 1 and '"POST /predict/ocr_rec" 400' in access[0]["message"]
    assert FIXED_KEY not in keyed.log() and "file-key" not in keyed.log()


def test_the_start_up_log_is_short_and_has_no_warnings(keyed):
    log = keyed.log()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(log.splitlines()) == len(records), "every line is a JSON object"
    assert not [r for r in records if r["level"] == "WARNING" or "warn" in r["message"].lower()]
    ready = [r["message"] for r in records if "ready:" in r["message"]]
    assert len(ready) == 1 and "engine " in ready[0] and "thread" in ready[0] and "loaded in" in ready[0]
    assert len([r for r in records if r["logger"] != "ocrhub.access"]) <= 12
