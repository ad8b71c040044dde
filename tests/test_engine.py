"""The engines of ocrhub.predictor (OpenVINO's runtime, Paddle Inference) and their traits, on real models."""

import dataclasses
import os
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from conftest import normalized
from ocrhub import pipeline, predictor
from ocrhub.config import ENGINES, load_config
from ocrhub.errors import ConfigError, EngineError
from ocrhub.stages.det import Detector, DetSettings


def engine_config(data_dir, engine: str, **values):
    return load_config({"engine": engine, "data_dir": str(data_dir), "cpu_threads": 1, **values}, environ={})


def read(system, pages) -> dict:
    return {name: [normalized(text) for _, text, _ in system(sample.image)] for name, sample in pages.items()}


def test_engine_is_a_setting():
    assert load_config({}, environ={"OCR_ENGINE": "openvino-bf16"}).engine == "openvino-bf16"
    with pytest.raises(ConfigError, match="engine must be one of openvino, openvino-bf16, onednn, plain"):
        load_config({"engine": "tensorrt"}, environ={})
    old_switch = load_config({"engine": "onednn", "enable_mkldnn": False}, environ={})
    assert old_switch.cpu_engine == "plain"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_cpu_engine_sets_threads_and_precision(config, data_dir, engine):
    made = predictor.create(config.model_path("cls") / "inference.pdmodel", "cls", engine=engine, threads=1, cache_dir=data_dir)
    if engine.startswith("openvino"):
        compiled = made.runner.compiled
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == predictor.OPENVINO_PRECISIONS[engine]
        assert compiled.get_property("NUM_STREAMS") == 1
    else:
        assert made.runner.config.cpu_math_library_num_threads() == 1
        assert made.runner.config.mkldnn_enabled() == (engine == "onednn")


def test_openvino_engines_import_no_paddle(config, data_dir, lines):
    """In a fresh interpreter: build the three stages on OpenVINO's runtime, read a line, list what got imported."""
    code = (
        "import sys, cv2; from ocrhub import pipeline; from ocrhub.config import load_config; "
        f"config = load_config({{'data_dir': {str(data_dir)!r}, 'cpu_threads': 1}}, environ={{}}); "
        "system = pipeline.system(config); "
        f"print(system.recognizer([cv2.imread({str(data_dir / 'line.png')!r})])[0][0]); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'paddle', 'paddleocr', 'paddlehub', 'shapely'}))"
    )
    cv2.imwrite(str(data_dir / "line.png"), lines[0].image)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True).stdout.splitlines()
    assert normalized(out[0]) == normalized(lines[0].texts[0])
    assert out[1] == "[]"


def test_bf16_without_its_instructions_is_warned_of_once(monkeypatch, caplog):
    assert predictor.native_bf16({"fpu", "avx2", "fma"}) is False
    assert predictor.native_bf16({"avx512f", "avx512_bf16"}) is predictor.native_bf16({"amx_bf16", "amx_tile"}) is True
    assert predictor.native_bf16(None) is None

    monkeypatch.setattr(predictor, "cpu_flags", lambda: {"avx2"})
    predictor._warn_if_no_native_bf16.cache_clear()
    predictor._warn_if_no_native_bf16()
    predictor._warn_if_no_native_bf16()
    predictor._warn_if_no_native_bf16.cache_clear()
    assert [record.getMessage()[:60] for record in caplog.records] == [
        "OCR_ENGINE=openvino-bf16 on a CPU without bfloat16 instructi"
    ]


def test_openvino_reads_every_line_as_onednn(data_dir, pages):
    """fp32 OpenVINO (the default) keeps every text exactly; bf16 may move a space on these pages."""

    def texts(engine):
        return {
            name: [text for _, text, _ in pipeline.system(engine_config(data_dir, engine))(sample.image)]
            for name, sample in pages.items()
        }

    onednn = texts("onednn")
    assert texts("openvino") == onednn
    assert read(pipeline.system(engine_config(data_dir, "openvino-bf16")), pages) == {
        name: [normalized(text) for text in lines] for name, lines in onednn.items()
    }


def test_openvino_writes_only_under_data_dir(tmp_path, pages):
    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        assert pipeline.detector(engine_config(data, "openvino"))(pages["english"].image)
    finally:
        os.chdir(before)
    assert list(cwd.iterdir()) == []
    assert list((data / "openvino-cache" / "fp32").glob("*.blob"))


def test_predictors_of_one_model_do_not_share_state(data_dir, pages):
    """Two detectors of one model in two threads at once, and one detector shared by two threads
    (its predictor's lock serializes them), find what each finds alone."""
    config = engine_config(data_dir, "openvino")
    first, second = (Detector(pipeline.create_predictor(config, "det"), DetSettings.of(config)) for _ in range(2))
    images = [sample.image for sample in pages.values()] * 3
    expected = [[box.tolist() for box in first(image)] for image in images]
    for pair in ((first, second), (first, first)):
        found = [[], []]

        def detect(detector, out):
            out.extend([box.tolist() for box in detector(image)] for image in images)

        threads = [threading.Thread(target=detect, args=(detector, out)) for detector, out in zip(pair, found)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert found == [expected, expected]


def test_a_failed_inference_raises_an_engine_error(config, data_dir):
    """An input OpenVINO cannot take is an EngineError naming the stage and shape (Paddle's engines may
    instead log and keep the previous outputs: ``check_outputs`` catches those, test_output_check)."""
    program = config.model_path("rec") / "inference.pdmodel"
    rec = predictor.create(program, "rec", engine="openvino", threads=1, cache_dir=data_dir)
    rec.run(np.zeros((2, 3, 48, 320), np.float32))
    with pytest.raises(EngineError, match="the rec model"):
        rec.run(np.zeros((1, 3, 48, 4), np.float32))  # too narrow for the recognizer's pooling


def test_output_check():
    predictor.check_outputs("det", (1, 3, 64, 96), [np.zeros((1, 1, 64, 96))])
    predictor.check_outputs("rec", (2, 3, 48, 320), [np.zeros((2, 40, 6625))])
    for stage, shape, output in [
        ("det", (1, 3, 64, 96), (1, 1, 64, 64)),
        ("rec", (1, 3, 48, 320), (2, 40, 6625)),
        ("cls", (6, 3, 48, 192), ()),
    ]:
        with pytest.raises(EngineError):
            predictor.check_outputs(stage, shape, [np.zeros(output)])


def test_warm_up_on_openvino(data_dir, lines):
    config = dataclasses.replace(engine_config(data_dir, "openvino"), rec_batch_num=2)
    pipeline.warm_up(config, ("det", "cls", "rec"))
    texts = pipeline.recognizer(config)([line.image for line in lines])
    assert [normalized(text) for text, _ in texts] == [normalized(line.texts[0]) for line in lines]


def test_settling_grows_openvino_to_its_largest_inputs_and_changes_no_text(data_dir, pages):
    """A server's worker runs these while idle (ocrhub.serving.worker); Paddle's warm-up did it already."""
    config = engine_config(data_dir, "openvino", det_limit_side_len=736)
    system = pipeline.system(config)
    before = read(system, pages)
    steps = pipeline.settle_steps(config, ("det", "cls", "rec"))
    assert len(steps) == 3 and pipeline.settle_steps(engine_config(data_dir, "onednn"), ("det", "cls", "rec")) == []
    for step in steps:
        step()
    assert read(system, pages) == before
