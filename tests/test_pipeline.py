"""The stages on real models and rendered images, and equality with paddleocr's own pipeline."""

import dataclasses

import cv2
import numpy as np

from conftest import covers, normalized
from harness import parity
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


def odd_images(pages) -> dict[str, np.ndarray]:
    """Inputs at the edges of the pre-processing: tiny (padded), one pixel high, extreme ratios, noise."""
    rng = np.random.default_rng(11)
    english = pages["english"].image
    return {
        "1x1": np.zeros((1, 1, 3), np.uint8),
        "tiny": english[:20, :30].copy(),
        "strip": cv2.resize(english, (2000, 24)),
        "tower": cv2.resize(english, (40, 1500)),
        "noise": rng.integers(0, 256, (333, 517, 3), dtype=np.uint8),
        "blocks": cv2.resize(rng.integers(0, 2, (12, 16, 3), dtype=np.uint8) * 255, (640, 480), interpolation=cv2.INTER_NEAREST),
    }


def test_system_equals_paddleocr_pipeline(config, pages):
    """Our stages against paddleocr 2.10's TextSystem with the same models and parameters (both on
    Paddle Inference, oneDNN): every line, box (1 px) and score (1e-3), on rendered pages and odd inputs.
    OpenVINO against oneDNN: tests/test_engine.py; on the shared photos: ``python -m harness.parity``."""
    images = {name: sample.image for name, sample in pages.items()} | odd_images(pages)
    lines, found = parity.compare(config, images)
    assert lines >= 12 and found == []


def test_cls_mode_page_turns_an_images_lines_together(config, lines):
    """ "page" (the default): the majority decides for every line of an image; "line": each line alone, as paddleocr."""
    upright = [sample.image for sample in lines]
    upside_down = [cv2.rotate(image, cv2.ROTATE_180) for image in upright]
    by_page, by_line = (pipeline.classifier(dataclasses.replace(config, cls_mode=mode)) for mode in ("page", "line"))
    same = lambda got, want: all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    mostly_up = [*upright, upside_down[0]]  # one line the wrong way round among upright ones: left as it is
    assert same(by_page.upright(mostly_up), mostly_up) and same(by_line.upright(mostly_up), [*upright, upright[0]])
    mostly_down = [*upside_down, upright[0]]  # a page fed upside down: every line turned
    assert same(by_page.upright(mostly_down), [*upright, upside_down[0]])
    assert same(by_line.upright(mostly_down), [*upright, upright[0]])
