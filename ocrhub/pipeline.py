"""The OCR stages, built on paddleocr 2.10's own predictors and pre/post-processing.

``TextDetector``, ``TextClassifier`` and ``TextRecognizer`` from paddleocr's ``tools/infer`` each own a
Paddle Inference predictor created from ``inference.pdmodel`` + ``inference.pdiparams`` (MKLDNN with
paddleocr's bounded cache of 10 input shapes, CPU threads, or the GPU when ``use_gpu`` is set) and
the DB post-process, direction post-process and CTC decoding. ``System`` chains them exactly as
paddleocr's ``TextSystem`` does (sort boxes, crop, classify, recognize, drop low scores), so results
are the same as paddleocr's pipeline with the same parameters.

Stages are built once per process and shared by every module that asks for the same config
(``ocr_system`` and ``ocr_det`` use one detector). A predictor is not thread-safe, so each stage
serializes its calls with a lock.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import threading

import numpy as np
from paddleocr.paddleocr import predict_system as ppocr  # paddleocr's tools/infer/predict_system

from ocrhub import models
from ocrhub.config import OcrConfig
from ocrhub.errors import ConfigError


def paddleocr_args(config: OcrConfig):
    """paddleocr's argument namespace: its own defaults, then ours (absolute model paths)."""
    args = ppocr.utility.init_args().parse_args([])
    for key, value in dataclasses.asdict(config).items():
        if hasattr(args, key):
            setattr(args, key, value)
    for stage in ("det", "rec", "cls"):
        setattr(args, f"{stage}_model_dir", str(config.model_path(stage)))
    args.rec_char_dict_path = str(config.model_path("dict"))
    args.cpu_threads = config.threads
    args.show_log = False
    return args


def _check_models(config: OcrConfig, stage: str) -> None:
    models.check_model_dir(config.model_path(stage), config.model_set)
    if stage == "rec":
        models.check_file(config.model_path("dict"), config.model_set)


def _build(factory, config: OcrConfig, stage: str):
    _check_models(config, stage)
    try:
        return factory(paddleocr_args(config))
    except Exception as err:  # Paddle's own message for an unreadable model is a page long
        raise ConfigError(f"cannot load the {stage} model in {config.model_path(stage)}: "
                          f"{str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}; "
                          f"re-fetch it with: " + models.FETCH_HINT.format(set=config.model_set)) from None


class Stage:
    """One paddleocr predictor behind a lock."""

    def __init__(self, predictor):
        self._predictor = predictor
        self._lock = threading.Lock()

    def _run(self, *args):
        with self._lock:
            return self._predictor(*args)


class Detector(Stage):
    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """Text boxes (4×2 float arrays) ordered top-to-bottom, left-to-right."""
        boxes, _ = self._run(image)
        return [] if boxes is None or len(boxes) == 0 else ppocr.sorted_boxes(boxes)


class Classifier(Stage):
    def __call__(self, lines: list[np.ndarray]) -> tuple[list[np.ndarray], list[tuple[str, float]]]:
        """Lines turned upright where the model is sure they are upside down, and (angle, score)."""
        if not lines:
            return [], []
        upright, angles, _ = self._run(list(lines))
        return upright, [(label, float(score)) for label, score in angles]


class Recognizer(Stage):
    def __call__(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        if not lines:
            return []
        results, _ = self._run(list(lines))
        return [(text, float(score)) for text, score in results]


class System:
    """det → crop → cls → rec → drop low scores, as paddleocr's TextSystem."""

    def __init__(self, detector: Detector, classifier: Classifier | None, recognizer: Recognizer, drop_score: float):
        self.detector, self.classifier, self.recognizer = detector, classifier, recognizer
        self.drop_score = drop_score

    def __call__(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        boxes = self.detector(image)
        lines = [ppocr.get_rotate_crop_image(image, copy.deepcopy(box)) for box in boxes]
        if self.classifier is not None:
            lines, _ = self.classifier(lines)
        texts = self.recognizer(lines)
        return [(box, text, score) for box, (text, score) in zip(boxes, texts) if score >= self.drop_score]


@functools.lru_cache(maxsize=None)
def detector(config: OcrConfig) -> Detector:
    return Detector(_build(ppocr.predict_det.TextDetector, config, "det"))


@functools.lru_cache(maxsize=None)
def classifier(config: OcrConfig) -> Classifier:
    return Classifier(_build(ppocr.predict_cls.TextClassifier, config, "cls"))


@functools.lru_cache(maxsize=None)
def recognizer(config: OcrConfig) -> Recognizer:
    return Recognizer(_build(ppocr.predict_rec.TextRecognizer, config, "rec"))


def system(config: OcrConfig) -> System:
    cls = classifier(config) if config.use_angle_cls else None
    return System(detector(config), cls, recognizer(config), config.drop_score)


def warm_up(config: OcrConfig, task: str) -> None:
    """Run each stage a task uses once, so the first request does not pay for initialisation."""
    page = np.full((96, 320, 3), 255, np.uint8)
    page[40:56, 20:300] = 0  # one dark bar: detection finds a line, the line reaches cls and rec
    if task in ("system", "det"):
        detector(config)(page)
    if task == "cls" or (task == "system" and config.use_angle_cls):
        classifier(config)([page[32:64]])
    if task in ("system", "rec"):
        recognizer(config)([page[32:64]])
