"""The four modules under a real `hub serving start`, over HTTP, in PaddleOCR's wire format."""

import base64
import json
import os
import subprocess

import numpy as np
import pytest
import requests

from conftest import BIN, ROOT, b64, covers, normalized, rect
from harness.servers import free_port, wait_for_http


def post(url, module, body, **kwargs):
    response = requests.post(f"{url}/predict/{module}", json=body, timeout=120, **kwargs)
    return response.json()


def test_ocr_system_over_http(hub_server, pages):
    names = list(pages)
    answer = post(hub_server, "ocr_system", {"images": [b64(pages[n].image) for n in names]})
    assert answer["status"] == "000" and answer["msg"] == ""
    assert len(answer["results"]) == len(names)
    for name, lines in zip(names, answer["results"]):
        sample = pages[name]
        expected = [normalized(t) for t in sample.texts]
        if name.endswith("_180"):
            expected.reverse()
        assert [normalized(line["text"]) for line in lines] == expected, name
        for line, ink in zip(lines, sorted(sample.boxes, key=lambda b: b[1])):
            assert set(line) == {"text", "confidence", "text_region"}
            assert isinstance(line["confidence"], float) and 0.5 <= line["confidence"] <= 1
            assert np.asarray(line["text_region"]).shape == (4, 2)
            assert all(isinstance(v, int) for point in line["text_region"] for v in point)
            assert covers(rect(line["text_region"]), ink), (name, line)


def test_ocr_det_over_http(hub_server, pages):
    sample = pages["chinese"]
    answer = post(hub_server, "ocr_det", {"images": [b64(sample.image, ".jpg")]})
    assert answer["status"] == "000"
    (regions,) = answer["results"]
    assert [set(r) for r in regions] == [{"text_region"}] * len(sample.texts)
    for region, ink in zip(regions, sample.boxes):
        assert covers(rect(region["text_region"]), ink)


def test_ocr_rec_and_cls_answer_one_list_in_input_order(hub_server, lines):
    upright = [line.image for line in lines]
    flipped = [np.ascontiguousarray(image[::-1, ::-1]) for image in upright]
    rec = post(hub_server, "ocr_rec", {"images": [b64(i) for i in upright]})
    assert rec["status"] == "000" and len(rec["results"]) == 1
    assert [normalized(r["text"]) for r in rec["results"][0]] == [normalized(l.texts[0]) for l in lines]
    assert all(set(r) == {"text", "confidence"} and r["confidence"] > 0.9 for r in rec["results"][0])
    cls = post(hub_server, "ocr_cls", {"images": [b64(i) for i in upright + flipped]})
    assert cls["status"] == "000"
    assert [r["angle"] for r in cls["results"][0]] == ["0"] * len(lines) + ["180"] * len(lines)
    assert all(set(r) == {"angle", "confidence"} for r in cls["results"][0])


def test_extra_keys_such_as_paths_are_ignored(hub_server, lines):
    answer = post(hub_server, "ocr_rec", {"images": [b64(lines[0].image)], "paths": ["/etc/passwd"]})
    assert answer["status"] == "000"
    assert normalized(answer["results"][0][0]["text"]) == normalized(lines[0].texts[0])


@pytest.mark.parametrize(
    "module, body, message",
    [
        ("ocr_system", {"images": ["not base64!"]}, "image 0: invalid base64"),
        ("ocr_system", {"images": [base64.b64encode(b"plain text").decode()]}, "image 0: not a decodable image"),
        ("ocr_det", {"images": []}, "'images' is empty"),
        ("ocr_rec", {"images": "abc"}, "'images' must be a list of base64 strings"),
        ("ocr_cls", {}, "missing 'images'"),
        ("ocr_nothing", {"images": []}, "Module ocr_nothing is not available"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(hub_server, lines, module, body, message):
    answer = post(hub_server, module, body)
    assert answer["status"] != "000"
    assert message in answer["msg"]
    good = post(hub_server, "ocr_rec", {"images": [b64(lines[1].image)]})
    assert good["status"] == "000"
    assert normalized(good["results"][0][0]["text"]) == normalized(lines[1].texts[0])


def test_a_bad_image_among_good_ones_fails_the_request_with_its_index(hub_server, lines):
    images = [b64(lines[0].image), b64(lines[1].image), "%%%"]
    answer = post(hub_server, "ocr_system", {"images": images})
    assert answer["status"] != "000" and answer["msg"] == "image 2: invalid base64"


def test_missing_model_folder_stops_start_up_with_one_line(hub_home, tmp_path):
    env = {**os.environ, "HUB_HOME": str(hub_home), "OCR_DET_MODEL_DIR": str(tmp_path / "no_det")}
    result = subprocess.run(
        [BIN / "hub", "serving", "start", "-m", "ocr_det", "-p", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ocr_det: model file ")
    assert str(tmp_path / "no_det" / "inference.pdmodel") in last and "fetch_models.py" in last
    assert "Traceback" not in result.stderr


def test_config_json_init_args_reach_the_module(hub_home, tmp_path, pages):
    """`hub serving start -c config.json`: the module's own file, with init_args changed."""
    config = json.loads((ROOT / "modules" / "ocr_system" / "config.json").read_text())
    port = free_port()
    config["port"] = port
    config["modules_info"]["ocr_system"]["init_args"]["drop_score"] = 0.99  # drops the one line read at 0.965
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    process = subprocess.Popen(
        [BIN / "hub", "serving", "start", "-c", path],
        env={**env, "HUB_HOME": str(hub_home)},
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", process)
        answer = post(f"http://127.0.0.1:{port}", "ocr_system", {"images": [b64(pages["mixed"].image)]})
        assert answer["status"] == "000"
        scores = [line["confidence"] for line in answer["results"][0]]
        assert scores and all(score >= 0.99 for score in scores)
        assert len(scores) == len(pages["mixed"].texts) - 1  # the default drop_score keeps all four
    finally:
        process.terminate()
        process.wait(timeout=30)
