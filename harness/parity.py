"""Our pipeline against paddleocr 2.10's own ``TextSystem`` on the same models and parameters, or
against itself on another engine.

    from harness import parity
    differences = parity.compare(config, images)      # [] when every line and box agrees

    python -m harness.parity ../shared/images/*.jpg    # the same on files, with a summary
    python -m harness.parity --set v5-mobile --engines openvino,plain ../shared/images/*
                                                      # lines read alike by two engines

paddleocr 2.10 cannot read PP-OCRv5's Paddle 3 programs; for those sets, ``--engines`` compares
OpenVINO on the converted IR with Paddle Inference on the official files.

paddleocr's classes build their own Paddle Inference predictors (oneDNN, as paddleocr does), so ours
run on ``engine=onednn`` here: the same model outputs, then each side's pre- and post-processing.
Lines must read the same, boxes agree within ``BOX_PX`` and scores within ``SCORE``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from harness.report import line_agreement
from ocrhub import pipeline
from ocrhub.config import OcrConfig, load_config

BOX_PX, SCORE = 1, 1e-3


def paddleocr_args(config: OcrConfig):
    """paddleocr's argument namespace: its own defaults, then ours (absolute model paths)."""
    from paddleocr.tools.infer import utility

    args = utility.init_args().parse_args([])
    for key, value in dataclasses.asdict(config).items():
        if hasattr(args, key):
            setattr(args, key, value)
    for stage in ("det", "rec", "cls"):
        setattr(args, f"{stage}_model_dir", str(config.model_path(stage)))
    args.rec_char_dict_path = str(config.model_path("dict"))
    args.cpu_threads, args.use_gpu, args.show_log = config.threads, False, False
    return args


def reference(config: OcrConfig):
    """paddleocr's TextSystem with ``config``'s models and parameters."""
    from paddleocr.tools.infer.predict_system import TextSystem

    return TextSystem(paddleocr_args(config))


def read_reference(system, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
    boxes, results, _ = system(image, cls=system.use_angle_cls)
    return [(np.asarray(box), text, score) for box, (text, score) in zip(boxes or [], results or [])]


def differences(ours: list, theirs: list, name: str) -> list[str]:
    """What differs between two readings of one image: texts, boxes beyond BOX_PX, scores beyond SCORE."""
    if [text for _, text, _ in ours] != [text for _, text, _ in theirs]:
        return [f"{name}: texts differ: {[t for _, t, _ in ours]} != {[t for _, t, _ in theirs]}"]
    found = []
    for index, ((box, text, score), (their_box, _, their_score)) in enumerate(zip(ours, theirs)):
        off = float(np.abs(np.asarray(box, float) - np.asarray(their_box, float)).max())
        if off > BOX_PX or abs(score - their_score) > SCORE:
            found.append(f"{name} line {index} {text!r}: box off by {off:g} px, score {score:.5f} != {their_score:.5f}")
    return found


def compare(config: OcrConfig, images: dict[str, np.ndarray]) -> tuple[int, list[str]]:
    """(lines compared, differences) of our System and paddleocr's on each named image."""
    config = dataclasses.replace(config, engine="onednn", cls_mode="line")  # paddleocr turns each line alone
    ours, theirs = pipeline.system(config), reference(config)
    lines, found = 0, []
    for name, image in images.items():
        mine, reference_lines = ours(image), read_reference(theirs, image)
        lines += len(reference_lines)
        found += differences(mine, reference_lines, name)
    return lines, found


def engines_agree(config: OcrConfig, engines: list[str], images: dict[str, np.ndarray]) -> tuple[int, int, list[str]]:
    """(identical lines, lines, images that differ) of our System on two engines (``line_agreement``)."""
    first, second = (pipeline.system(dataclasses.replace(config, engine=engine)) for engine in engines)
    texts = {name: [[text for _, text, _ in system(image)] for system in (first, second)] for name, image in images.items()}
    identical, total, _ = line_agreement([pair[0] for pair in texts.values()], [pair[1] for pair in texts.values()])
    return identical, total, [f"{name}: {ours} != {theirs}" for name, (ours, theirs) in texts.items() if ours != theirs]


def main(argv: list[str]) -> int:
    import argparse

    import cv2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--set", default="mobile", help="model set (ocrhub.models)")
    parser.add_argument("--engines", help="two engines to compare, e.g. openvino,plain (default: against paddleocr)")
    args = parser.parse_args(argv)
    images = {Path(path).name: cv2.imread(path) for path in args.images}
    config = load_config({"model_set": args.set})
    if args.engines:
        identical, lines, found = engines_agree(config, args.engines.split(","), images)
        print("\n".join(found))
        print(f"{len(images)} images: {identical} of {lines} lines identical on {args.engines} ({identical / max(1, lines):.1%})")
        return 0
    lines, found = compare(config, images)
    print("\n".join(found))
    print(f"{len(images)} images, {lines} lines: {len(found)} differences (boxes within {BOX_PX} px, scores {SCORE})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
