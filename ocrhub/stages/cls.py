"""Direction classification: is each line upright (0) or upside down (180)? Lines the model is sure of
(score over ``cls_thresh``) are turned upright, as paddleocr's ``TextClassifier`` does; or, with
``cls_mode`` "page", the lines of one image are turned all together or not at all, by their vote.

Why "page": the mobile v2.0 classifier calls some upright lines of clean typeset pages upside down,
some with scores over 0.99, and those lines come out as junk: on rendered PDF pages, per-line turning
cost 4-8 points of character error rate that no threshold wins back without losing upside-down pages
(BENCHMARKS.md, "direction classification"). A page is fed one way round; its lines vote."""

from __future__ import annotations

import cv2
import numpy as np

from ocrhub.config import OcrConfig
from ocrhub.predictor import Predictor
from ocrhub.stages import lines as line_input

LABELS = ("0", "180")


class Classifier:
    def __init__(self, predictor: Predictor, config: OcrConfig):
        self.predictor = predictor
        self.shape = line_input.image_shape(config.cls_image_shape)
        self.batch_size, self.thresh = config.cls_batch_num, config.cls_thresh
        self.by_page = config.cls_mode == "page"

    def __call__(self, lines: list[np.ndarray]) -> tuple[list[np.ndarray], list[tuple[str, float]]]:
        """The lines, upright where the model is sure they were not, and (angle, score) of each."""
        upright, angles = list(lines), [("", 0.0)] * len(lines)
        for batch in line_input.batches(upright, self.batch_size):
            inputs = np.stack([line_input.resize_normalize(upright[i], *self.shape) for i in batch])
            probabilities = self.predictor.run(inputs)[0]
            for index, row in zip(batch, probabilities):
                best = int(row.argmax())
                angles[index] = (LABELS[best], float(row[best]))
                if LABELS[best] == "180" and row[best] > self.thresh:
                    upright[index] = cv2.rotate(upright[index], cv2.ROTATE_180)
        return upright, angles

    def upright(self, lines: list[np.ndarray]) -> list[np.ndarray]:
        """The lines of one image upright: each by its own call, or all by their vote (``cls_mode``)."""
        turned, angles = self(lines)
        if not self.by_page:
            return turned
        return [cv2.rotate(line, cv2.ROTATE_180) for line in lines] if page_upside_down(lines, angles) else list(lines)


def page_upside_down(lines: list[np.ndarray], angles: list[tuple[str, float]]) -> bool:
    """Whether the lines' votes say upside down: each line's probability of 180, weighted by its width
    (a long line is more evidence than a bullet), averaged over the image. Not a count of sure calls:
    at 300 dpi the classifier is sure of only half the lines of an upside-down page."""
    widths = np.array([line.shape[1] for line in lines], np.float64)
    turned = np.array([score if angle == "180" else 1.0 - score for angle, score in angles])
    return bool(len(lines)) and float(widths @ turned) > 0.5 * float(widths.sum())
