"""The engines of ocrhub.predictor and the traits of Paddle's OpenVINO engine, on real models."""

import dataclasses
import os
import threading

import numpy as np
import pytest

from conftest import normalized
from ocrhub import pipeline, predictor
from ocrhub.config import ENGINES, load_config
from ocrhub.errors import ConfigError, EngineError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def engine_config(data_dir, engine: str, **values):
    return load_config({"engine": engine, "data_dir": str(data_dir), "cpu_threads": 1, **values}, environ={})


def read(system, pages) -> dict:
    return {name: [normalized(text) for _, text, _ in system(sample.image)] for name, sample in pages.items()}


def test_engine_is_a_setting():
    assert load_config({}, environ={"OCR_ENGINE": "openvino-bf16"}).engine == "openvino-bf16"
    with pytest.raises(ConfigError, match="engine must be one of openvino, openvino-bf16, onednn, plain"):
        load_config({"engine": "tensorrt"}, environ={})
    old_switch = load_config({"engine": "onednn", "enable_mkldnn": False}, environ={})
    assert pipeline.engine(old_switch) == "plain"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_cpu_engine_sets_threads(config, data_dir, engine):
    made = predictor.create(config.model_path("cls"), "cls", engine=engine, threads=1, cache_dir=data_dir)
    assert made.config.cpu_math_library_num_threads() == 1
    assert made.config.openvino_engine_enabled() == engine.startswith("openvino")
    assert made.config.mkldnn_enabled() == (engine == "onednn")


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
        detector = pipeline.Detector(pipeline.build(engine_config(data, "openvino"), "det"))
        assert detector(pages["english"].image)
    finally:
        os.chdir(before)
    assert list(cwd.iterdir()) == []
    assert list((data / "openvino-cache" / "fp32").glob("*.blob"))


def test_predictors_of_one_model_do_not_share_state(data_dir, pages):
    """Two detectors of one model in two threads at once, and one detector shared by two threads
    (its lock serializes them), find what each finds alone."""
    config = engine_config(data_dir, "openvino")
    first, second = (pipeline.Detector(pipeline.build(config, "det")) for _ in range(2))
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


def test_a_failed_inference_raises_instead_of_returning_stale_outputs(config, data_dir):
    """OpenVINO rejects these inputs, logs why and keeps the previous outputs: they must not pass."""
    det, rec = (
        predictor.create(config.model_path(stage), stage, engine="openvino", threads=1, cache_dir=data_dir).paddle_predictor
        for stage in ("det", "rec")
    )
    cases = [
        (det, "det", (1, 3, 64, 64), (1, 3, 48, 48)),  # detection needs multiples of 32
        (rec, "rec", (2, 3, 48, 320), (1, 3, 48, 4)),  # too narrow for the recognizer's pooling
    ]
    for paddle_predictor, stage, good, bad in cases:
        checked = predictor.Predictor(paddle_predictor, stage)
        checked.copy_from_cpu(np.zeros(good, np.float32))
        checked.run()
        checked.copy_from_cpu(np.zeros(bad, np.float32))
        with pytest.raises(EngineError, match=f"the {stage} model returned an output of shape"):
            checked.run()


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
