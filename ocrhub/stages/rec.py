"""Text recognition (CTC): a line image in, its text and confidence out.

Lines go in batches of similar width/height ratio (``lines.batches``), each resized to the model's
height and padded to the widest line of its batch (at least ``rec_image_shape``'s width). The model
gives, for each column step, a probability per dictionary character plus "blank"; greedy CTC decoding
takes the likeliest of each step, merges repeats and drops blanks; the confidence is the mean
probability of the characters kept, as paddleocr's ``CTCLabelDecode``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ocrhub.config import OcrConfig
from ocrhub.errors import ConfigError
from ocrhub.predictor import Predictor
from ocrhub.stages import lines as line_input

BLANK = 0  # CTC's "no character here", the model's first output


def dictionary(path: Path, use_space_char: bool) -> list[str]:
    """The model's outputs in order: blank, one character per line of the file, then a space if used."""
    with open(path, "rb") as file:
        characters = [line.decode("utf-8").strip("\n").strip("\r\n") for line in file.readlines()]
    return ["blank", *characters, *([" "] if use_space_char else [])]


class Recognizer:
    def __init__(self, predictor: Predictor, config: OcrConfig):
        self.predictor = predictor
        self.dictionary_path = config.model_path("dict")
        self.characters = dictionary(self.dictionary_path, config.use_space_char)
        self.shape = line_input.image_shape(config.rec_image_shape)
        self.batch_size = config.rec_batch_num

    def __call__(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        results = [("", 0.0)] * len(lines)
        channels, height, width = self.shape
        for batch in line_input.batches(lines, self.batch_size):
            widest = max([width / height, *(line_input.ratio(lines[i]) for i in batch)])
            padded_width = int(height * widest)
            inputs = np.stack([line_input.resize_normalize(lines[i], channels, height, padded_width) for i in batch])
            outputs = self.predictor.run(inputs)[0]
            self.check_classes(outputs.shape[-1])
            for index, steps in zip(batch, outputs):
                results[index] = self.decode(steps)
        return results

    def check_classes(self, classes: int) -> None:
        """A dictionary of another model would decode into wrong characters, or past its end: refused
        (at a worker's warm-up, so at start)."""
        if classes != len(self.characters):
            raise ConfigError(
                f"the rec model scores {classes} classes per step, but its dictionary {self.dictionary_path} "
                f"gives {len(self.characters)} (blank, its lines, and a space with use_space_char): "
                f"they do not belong together (OCR_REC_CHAR_DICT_PATH, OCR_MODEL_SET)"
            )

    def decode(self, steps: np.ndarray) -> tuple[str, float]:
        """Greedy CTC over one line's steps (T × characters)."""
        best, probability = steps.argmax(axis=1), steps.max(axis=1)
        keep = np.ones(len(best), dtype=bool)
        keep[1:] = best[1:] != best[:-1]
        keep &= best != BLANK
        text = "".join(self.characters[index] for index in best[keep])
        return text, float(np.mean(probability[keep])) if keep.any() else 0.0
