"""The OCR pipeline: the stages of ``ocrhub.stages`` on predictors of the configured engine, built
once per process and shared by every task that asks for the same config (``ocr_system`` and
``ocr_det`` use one detector), and ``System``: det → crop → cls → rec → drop low scores, as
paddleocr's ``TextSystem``. The same on every engine; only the predictor differs (``ocrhub.predictor``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ocrhub import models, predictor
from ocrhub.config import OcrConfig
from ocrhub.errors import ConfigError
from ocrhub.stages.cls import Classifier
from ocrhub.stages.crop import crop_line
from ocrhub.stages.det import Detector, DetSettings
from ocrhub.stages.lines import image_shape
from ocrhub.stages.rec import Recognizer


def create_predictor(config: OcrConfig, stage: str) -> predictor.Predictor:
    """The predictor of ``stage`` (det, cls, rec); a model that cannot be loaded is a one-line ConfigError."""
    program = models.check_model_dir(config.model_path(stage), config.model_set, config.runtime)
    if stage == "rec":
        models.check_file(config.model_path("dict"), config.model_set)
    try:
        return predictor.create(
            program,
            stage,
            engine=config.cpu_engine,
            threads=config.threads,
            cache_dir=Path(config.data_dir) / "openvino-cache",
            use_gpu=config.use_gpu,
            gpu_mem=config.gpu_mem,
            gpu_id=config.gpu_id,
        )
    except Exception as err:  # the engines' own message for an unreadable model is a page long
        lines = str(err).strip().splitlines()
        raise ConfigError(
            f"cannot load the {stage} model in {config.model_path(stage)}: {lines[-1] if lines else type(err).__name__}; "
            f"re-fetch it with: " + models.FETCH_HINT.format(set=config.model_set)
        ) from None


class System:
    """det → crop → cls → rec → drop low scores, as paddleocr's TextSystem."""

    def __init__(self, detector: Detector, classifier: Classifier | None, recognizer: Recognizer, drop_score: float):
        self.detector, self.classifier, self.recognizer = detector, classifier, recognizer
        self.drop_score = drop_score

    def __call__(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        boxes = self.detector(image)
        lines = [crop_line(image, box) for box in boxes]
        if self.classifier is not None:
            lines = self.classifier.upright(lines)
        texts = self.recognizer(lines)
        return [(box, text, score) for box, (text, score) in zip(boxes, texts) if score >= self.drop_score]


@functools.cache
def detector(config: OcrConfig) -> Detector:
    return Detector(create_predictor(config, "det"), DetSettings.of(config))


@functools.cache
def classifier(config: OcrConfig) -> Classifier:
    return Classifier(create_predictor(config, "cls"), config)


@functools.cache
def recognizer(config: OcrConfig) -> Recognizer:
    return Recognizer(create_predictor(config, "rec"), config)


def preload(config: OcrConfig, stages: tuple[str, ...]) -> None:
    """Build ``stages`` (det, cls, rec) at once: OpenVINO compiles models in parallel threads (three in
    0.3 s instead of 0.45 s on 2 cores, a third of a worker's start). Paddle Inference one at a time."""
    build = {"det": detector, "cls": classifier, "rec": recognizer}
    with ThreadPoolExecutor(len(stages) if config.on_openvino else 1) as pool:
        list(pool.map(lambda stage: build[stage](config), stages))


def system(config: OcrConfig) -> System:
    cls = classifier(config) if config.use_angle_cls else None
    return System(detector(config), cls, recognizer(config), config.drop_score)


WIDE_LINE = 5  # Paddle's recognizer warm-up: a full batch of lines 5× its input width (1600 px, 33× their height)


def warm_up(config: OcrConfig, stages: tuple[str, ...]) -> None:
    """Run each stage a task uses (``ocrhub.tasks``) once, so the first request does not pay for the
    engine's initialisation. Results do not change.

    On OpenVINO's runtime, on one small input each: the first inference of a model initialises it
    (0.1-0.2 s); 0.1 s in all, where the largest inputs take 0.6 s (``settle_steps`` runs those
    later). On Paddle Inference, on the largest usual inputs (a page of ``det_limit_side_len``
    squared, a full batch of very wide lines): Paddle keeps the memory of every input larger than all
    before it, so largest first its memory stops growing after start-up."""
    for stage in used_stages(config, stages):
        _warm_up_stage(config, stage, largest=not config.on_openvino)


def settle_steps(config: OcrConfig, stages: tuple[str, ...]) -> list[Callable[[], None]]:
    """On OpenVINO's runtime, one step per stage that runs it on its largest usual input, for a server's
    worker to take while it is idle once it is ready: the memory then grows to what later requests
    reuse, where growing it request by request served one client 7 % slower (BENCHMARKS.md), and the
    worker still answers its first request within a second of starting. Nothing on Paddle Inference,
    whose ``warm_up`` did it."""
    if not config.on_openvino:
        return []
    return [functools.partial(_warm_up_stage, config, stage, True) for stage in used_stages(config, stages)]


def used_stages(config: OcrConfig, stages: tuple[str, ...]) -> tuple[str, ...]:
    """The stages a task runs: ``ocr_system`` skips the classifier without ``use_angle_cls``."""
    return tuple(stage for stage in stages if stage != "cls" or stages == ("cls",) or config.use_angle_cls)


def _sample(height: int, width: int) -> np.ndarray:
    """White with a dark bar; only the size matters."""
    image = np.full((height, width, 3), 255, np.uint8)
    image[height // 3 : 2 * height // 3 + 1, 8:-8] = 0
    return image


@functools.cache
def _warm_up_stage(config: OcrConfig, stage: str, largest: bool) -> None:
    """Once per stage and process, however many modules share the stage."""
    if stage == "det":
        side = int(config.det_limit_side_len) if largest else 64  # the largest size detection resizes a page to
        detector(config)(_sample(side, side))
    elif stage == "cls":
        _, height, width = image_shape(config.cls_image_shape)
        classifier(config)([_sample(height, width)] * (max(1, config.cls_batch_num) if largest else 1))
    else:
        _, height, width = image_shape(config.rec_image_shape)
        batch = max(1, config.rec_batch_num) if largest else 1
        recognizer(config)([_sample(height, WIDE_LINE * width if largest else width)] * batch)
