"""The stages on real models and rendered images, and equality with paddleocr's own pipeline."""

import dataclasses

import numpy as np
import pytest
from paddleocr import PaddleOCR

from conftest import covers, normalized
from ocrhub import pipeline


def expected_texts(sample):
    texts = [normalized(t) for t in sample.texts]
    return texts[::-1] if sample.name.endswith("_180") else texts


def test_detector_boxes_cover_the_drawn_lines(config, pages):
    detector = pipeline.detector(config)
    for sample in pages.values():
        boxes = detector(sample.image)
        drawn = sorted(sample.boxes, key=lambda b: b[1])
        assert len(boxes) == len(drawn), sample.name
        for box, line in zip(boxes, drawn):
            found = (*box.min(axis=0), *box.max(axis=0))
            assert covers(found, line), (sample.name, found, line)


def test_system_reads_every_page(config, pages):
    system = pipeline.system(config)
    for sample in pages.values():
        texts = [normalized(text) for _, text, _ in system(sample.image)]
        assert texts == expected_texts(sample), sample.name


def test_recognizer_and_classifier_on_lines(config, lines):
    recognizer, classifier = pipeline.recognizer(config), pipeline.classifier(config)
    upright = [line.image for line in lines]
    flipped = [np.ascontiguousarray(image[::-1, ::-1]) for image in upright]
    assert [normalized(t) for t, _ in recognizer(upright)] == [normalized(line.texts[0]) for line in lines]
    assert [angle for angle, _ in classifier(upright + flipped)[1]] == ["0"] * len(lines) + ["180"] * len(lines)


def test_system_equals_paddleocr_pipeline(config, pages):
    """Our System against paddleocr's public PaddleOCR class with the same models and parameters, on
    the engine paddleocr uses (OpenVINO against oneDNN: tests/test_engine.py)."""
    config = dataclasses.replace(config, engine="onednn")
    reference = PaddleOCR(
        det_model_dir=str(config.model_path("det")),
        rec_model_dir=str(config.model_path("rec")),
        cls_model_dir=str(config.model_path("cls")),
        rec_char_dict_path=str(config.model_path("dict")),
        use_angle_cls=True,
        use_gpu=False,
        enable_mkldnn=config.enable_mkldnn,
        cpu_threads=config.threads,
        det_db_box_thresh=config.det_db_box_thresh,
        det_db_unclip_ratio=config.det_db_unclip_ratio,
        rec_batch_num=config.rec_batch_num,
        drop_score=config.drop_score,
        show_log=False,
    )
    system = pipeline.system(config)
    for sample in pages.values():
        ours = system(sample.image)
        theirs = reference.ocr(sample.image, cls=True)[0] or []
        assert [text for _, text, _ in ours] == [text for _, (text, _) in theirs], sample.name
        for (box, _, score), (their_box, (_, their_score)) in zip(ours, theirs):
            assert np.abs(np.asarray(box) - np.asarray(their_box)).max() <= 2
            assert score == pytest.approx(their_score, abs=1e-3)


def test_table_normalize_gives_paddleocrs_floats_bit_for_bit(config, pages):
    """The detector's input, normalized by table, against paddleocr's NormalizeImage: every float equal."""
    (ours,) = [op for op in pipeline.detector(config)._predictor.preprocess_op if isinstance(op, pipeline.TableNormalize)]
    theirs = ours._normalize
    noise = np.random.default_rng(7).integers(0, 256, (301, 517, 3), dtype=np.uint8)
    for image in [noise, *(sample.image for sample in pages.values())]:
        expected = theirs({"image": image})["image"]
        found = ours({"image": image})["image"]
        assert found.dtype == expected.dtype and found.shape == expected.shape
        assert np.array_equal(found, expected)
    floats = noise.astype(np.float32)  # not an 8-bit page: paddleocr's own operator does it
    assert np.array_equal(ours({"image": floats})["image"], theirs({"image": floats})["image"])
