"""The OCR stages: paddleocr 2.10's own pre/post-processing around our Paddle Inference predictors.

``TextDetector``, ``TextClassifier`` and ``TextRecognizer`` from paddleocr's ``tools/infer`` bring the
DB post-process, direction post-process and CTC decoding; each runs on a predictor from
``ocrhub.predictor`` on the configured engine (``engine``: OpenVINO by default, oneDNN, plain Paddle,
or the GPU); the detector's input is normalized by table (``TableNormalize``), to the same floats.
``System`` chains them exactly as paddleocr's ``TextSystem`` does (sort boxes, crop, classify,
recognize, drop low scores), so on oneDNN results are the same as paddleocr's pipeline with the same
parameters.

Stages are built once per process and shared by every module that asks for the same config
(``ocr_system`` and ``ocr_det`` use one detector). A predictor is not thread-safe, so each stage
serializes its calls with a lock.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import threading
from pathlib import Path

import cv2
import numpy as np
from paddleocr.paddleocr import predict_system as ppocr  # paddleocr's tools/infer/predict_system

from ocrhub import models, predictor
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


FACTORIES = {
    "det": ppocr.predict_det.TextDetector,
    "cls": ppocr.predict_cls.TextClassifier,
    "rec": ppocr.predict_rec.TextRecognizer,
}


def engine(config: OcrConfig) -> str:
    """``enable_mkldnn=false`` keeps its old meaning for the Paddle engine: no MKLDNN."""
    return "plain" if config.engine == "onednn" and not config.enable_mkldnn else config.engine


def create_predictor(config: OcrConfig, stage: str) -> predictor.Predictor:
    return predictor.create(
        config.model_path(stage),
        stage,
        engine=engine(config),
        threads=config.threads,
        cache_dir=Path(config.data_dir) / "openvino-cache",
        use_gpu=config.use_gpu,
        gpu_mem=config.gpu_mem,
        gpu_id=config.gpu_id,
    )


def build(config: OcrConfig, stage: str):
    """A new paddleocr stage (``det``, ``cls``, ``rec``) on our predictor. paddleocr's constructor
    always creates a predictor of its own (about 0.2 s): a CPU one, which ours replaces."""
    _check_models(config, stage)
    try:
        paddle_stage = FACTORIES[stage](paddleocr_args(dataclasses.replace(config, use_gpu=False, enable_mkldnn=False)))
        paddle_stage.predictor = paddle_stage.input_tensor = create_predictor(config, stage)
        paddle_stage.output_tensors = paddle_stage.predictor.output_tensors
        if stage == "det":
            paddle_stage.preprocess_op = [TableNormalize.over(op) for op in paddle_stage.preprocess_op]
        return paddle_stage
    except Exception as err:  # Paddle's own message for an unreadable model is a page long
        raise ConfigError(
            f"cannot load the {stage} model in {config.model_path(stage)}: "
            f"{str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}; "
            f"re-fetch it with: " + models.FETCH_HINT.format(set=config.model_set)
        ) from None


class TableNormalize:
    """paddleocr's ``NormalizeImage`` on an 8-bit BGR page, as tables: its own float32 arithmetic done
    once for each of the 256 values of each channel, then looked up (``cv2.LUT``) into a channels-first
    buffer, so that the ``ToCHWImage`` after it finds contiguous planes. The same floats, bit for bit
    (tested), 8 ms less per photo on the way to the predictor. Anything else goes to paddleocr's."""

    def __init__(self, normalize):
        self._normalize = normalize
        values = np.repeat(np.arange(256, dtype=np.uint8).reshape(1, 256, 1), 3, axis=2)
        table = normalize({"image": values})["image"].astype(np.float32)
        self._tables = [np.ascontiguousarray(table[0, :, channel]) for channel in range(3)]

    @classmethod
    def over(cls, op):
        """``op`` itself unless it is a channels-last ``NormalizeImage`` (the detector's). By name: paddleocr
        imports its operators twice, as ``paddleocr.ppocr...`` and as ``ppocr...``, two distinct classes."""
        return cls(op) if type(op).__name__ == "NormalizeImage" and op.mean.shape == (1, 1, 3) else op

    def __call__(self, data: dict) -> dict:
        image = data["image"]
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            return self._normalize(data)
        planes = np.empty((3, *image.shape[:2]), np.float32)
        for channel, plane in enumerate(cv2.split(image)):
            cv2.LUT(plane, self._tables[channel], dst=planes[channel])
        data["image"] = planes.transpose(1, 2, 0)  # channels-last, as NormalizeImage's output
        return data


class Stage:
    """One paddleocr predictor behind a lock."""

    def __init__(self, paddle_stage):
        self._predictor = paddle_stage
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


@functools.cache
def detector(config: OcrConfig) -> Detector:
    return Detector(build(config, "det"))


@functools.cache
def classifier(config: OcrConfig) -> Classifier:
    return Classifier(build(config, "cls"))


@functools.cache
def recognizer(config: OcrConfig) -> Recognizer:
    return Recognizer(build(config, "rec"))


def system(config: OcrConfig) -> System:
    cls = classifier(config) if config.use_angle_cls else None
    return System(detector(config), cls, recognizer(config), config.drop_score)


WIDE_LINE = 5  # recognizer warm-up: a full batch of lines 5× its input width (1600 px, 33× their height)


def warm_up(config: OcrConfig, stages: tuple[str, ...]) -> None:
    """Run each stage a task uses (``ocrhub.tasks``) once, so the first request does not pay for initialisation.

    Each stage runs on its largest usual input: a page of ``det_limit_side_len`` squared, a full
    batch of very wide lines. A Paddle predictor keeps the memory of every input larger than all
    before it (the recognizer takes about 140 MB more for each wider batch, without giving back the
    old), while a smaller input reuses what is there. Largest first, the memory stops growing after
    start-up: on the sample photos a process holds half the memory and each image takes about 15 %
    less time, for about a second more at start-up (BENCHMARKS.md). Results do not change.

    OpenVINO compiles each input shape the first time it sees it (``ocrhub.predictor``): this compiles
    the largest usual ones. 0.7 s at start-up
    (1.1 s to build the stages), and the first photo takes 0.2 s instead of 0.3 s."""
    for stage in stages:
        if stage != "cls" or stages == ("cls",) or config.use_angle_cls:
            _warm_up_stage(config, stage)


def _sample(height: int, width: int) -> np.ndarray:
    """White with a dark bar; only the size matters."""
    image = np.full((height, width, 3), 255, np.uint8)
    image[height // 3 : 2 * height // 3 + 1, 8:-8] = 0
    return image


@functools.cache
def _warm_up_stage(config: OcrConfig, stage: str) -> None:
    """Once per stage and process, however many modules share the stage."""
    if stage == "det":
        side = int(config.det_limit_side_len)  # the largest size detection resizes a page to
        detector(config)(_sample(side, side))
    elif stage == "cls":
        _, height, width = (int(value) for value in config.cls_image_shape.split(","))
        classifier(config)([_sample(height, width)] * max(1, config.cls_batch_num))
    else:
        _, height, width = (int(value) for value in config.rec_image_shape.split(","))
        recognizer(config)([_sample(height, WIDE_LINE * width)] * max(1, config.rec_batch_num))
