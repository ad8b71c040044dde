"""Direction classification: is each line upright (0) or upside down (180)? Lines the model is sure of
(score over ``cls_thresh``) are turned upright, as paddleocr's ``TextClassifier`` does."""

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
