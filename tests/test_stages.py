"""Each stage of ocrhub.stages against paddleocr 2.10's own operators, on the same inputs and model
outputs: pre-processing bit for bit, boxes, crops, angles and texts identical."""

import dataclasses

import cv2
import numpy as np
import pytest
from paddleocr.ppocr.data import create_operators, transform
from paddleocr.ppocr.postprocess.cls_postprocess import ClsPostProcess
from paddleocr.ppocr.postprocess.db_postprocess import DBPostProcess
from paddleocr.ppocr.postprocess.rec_postprocess import CTCLabelDecode
from paddleocr.tools.infer.predict_cls import TextClassifier
from paddleocr.tools.infer.predict_det import TextDetector
from paddleocr.tools.infer.predict_rec import TextRecognizer
from paddleocr.tools.infer.predict_system import sorted_boxes
from paddleocr.tools.infer.utility import get_rotate_crop_image

from harness.parity import paddleocr_args
from ocrhub import pipeline
from ocrhub.stages import det
from ocrhub.stages import lines as line_input
from ocrhub.stages.crop import crop_line
from ocrhub.stages.rec import dictionary

RNG = np.random.default_rng(5)


def bare(cls, config, **fields):
    """A paddleocr stage object without its predictor (its methods only read these fields)."""
    made = object.__new__(cls)
    made.__dict__.update(fields, args=paddleocr_args(config))
    return made


def page_inputs(pages) -> list[np.ndarray]:
    noise = RNG.integers(0, 256, (301, 517, 3), dtype=np.uint8)
    return [*(sample.image for sample in pages.values()), noise, noise[:10, :20], noise[:1, :300], noise[:900, :7]]


@pytest.mark.parametrize("limit_type", ["max", "min"])
def test_detection_input_is_paddleocrs_bit_for_bit(config, pages, limit_type):
    theirs = create_operators(
        [
            {"DetResizeForTest": {"limit_side_len": config.det_limit_side_len, "limit_type": limit_type}},
            {"NormalizeImage": {"std": list(det.STD), "mean": list(det.MEAN), "scale": "1./255.", "order": "hwc"}},
            {"ToCHWImage": None},
        ]
    )
    for image in page_inputs(pages):
        expected = transform({"image": image}, theirs)["image"]
        found = det.normalize(det.resize_for_detection(det.pad_tiny(image), config.det_limit_side_len, limit_type))
        assert found.dtype == expected.dtype and np.array_equal(found, expected)
    floats = page_inputs(pages)[0].astype(np.float32)  # not 8-bit: computed, not looked up
    assert np.array_equal(det.normalize(floats), transform({"image": floats}, theirs[1:])["image"])


def probability_maps(config, pages) -> list[np.ndarray]:
    """Real maps from the detection model, and drawn ones."""
    detector = pipeline.detector(config)
    maps = []
    for image in page_inputs(pages)[:4]:
        batch = det.normalize(det.resize_for_detection(image, config.det_limit_side_len, "max"))[np.newaxis]
        maps.append(detector.predictor.run(batch)[0][0, 0])
    for _ in range(4):  # rotated bars of random strength, softened: many boxes at every angle
        canvas = np.zeros((384, 640), np.float32)
        for _ in range(12):
            centre, size = RNG.uniform((0, 0), (640, 384)), RNG.uniform((8, 4), (200, 30))
            corners = cv2.boxPoints((tuple(centre), tuple(size), RNG.uniform(-30, 30))).astype(np.int32)
            cv2.fillPoly(canvas, [corners], float(RNG.uniform(0.35, 1.0)))
        maps.append(cv2.GaussianBlur(canvas, (0, 0), 1.5))
    return maps


@pytest.mark.parametrize(("score_mode", "use_dilation"), [("fast", False), ("slow", False), ("fast", True)])
def test_db_boxes_are_paddleocrs(config, pages, score_mode, use_dilation):
    config = dataclasses.replace(config, det_db_score_mode=score_mode, use_dilation=use_dilation, det_db_box_thresh=0.5)
    settings = det.DetSettings.of(config)
    theirs = DBPostProcess(
        thresh=settings.thresh,
        box_thresh=settings.box_thresh,
        unclip_ratio=settings.unclip_ratio,
        use_dilation=use_dilation,
        score_mode=score_mode,
    )
    detector = bare(TextDetector, config)
    compared = 0
    for probability in probability_maps(config, pages):
        height, width = int(probability.shape[0] * 1.37), int(probability.shape[1] * 0.81)  # a resized page
        shape = np.array([[height, width, probability.shape[0] / height, probability.shape[1] / width]])
        expected = theirs({"maps": probability[np.newaxis, np.newaxis]}, shape)[0]["points"]
        expected = sorted_boxes(detector.filter_tag_det_res(expected, (height, width, 3)))
        found = det.sorted_boxes(
            det.filter_boxes(det.boxes_from_map(probability, shape[0][1], shape[0][0], settings), height, width)
        )
        assert [box.tolist() for box in found] == [box.tolist() for box in expected]
        compared += len(found)
    assert compared > 20


def test_polygon_area_and_length_are_shapelys():
    from shapely.geometry import Polygon

    for _ in range(200):
        box, _ = det.mini_box(RNG.random((9, 1, 2)).astype(np.float32) * 500)
        polygon = Polygon(np.array(box))
        assert det.polygon_area_and_length(np.array(box)) == (polygon.area, polygon.length)


def test_crops_are_paddleocrs(pages):
    image = pages["mixed"].image
    for _ in range(50):
        box = RNG.random((4, 2)).astype(np.float32) * [image.shape[1], image.shape[0]]
        box = det.order_clockwise(box)
        if min(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[0] - box[3])) < 2:
            continue
        assert np.array_equal(crop_line(image, box), get_rotate_crop_image(image, box.copy()))


def line_inputs(sample_lines) -> list[np.ndarray]:
    images = [line.image for line in sample_lines]
    odd = [images[0][:, :9], cv2.resize(images[1], (3000, 30)), RNG.integers(0, 256, (7, 5, 3), np.uint8)]
    return [*images, *odd]


def test_line_inputs_are_paddleocrs(config, lines):
    recognizer = bare(TextRecognizer, config, rec_image_shape=[3, 48, 320], rec_algorithm="SVTR_LCNet", use_onnx=False)
    classifier = bare(TextClassifier, config, cls_image_shape=[3, 48, 192])
    for line in line_inputs(lines):
        for widest in (320 / 48, 9.5):
            expected = recognizer.resize_norm_img(line, widest)
            assert np.array_equal(line_input.resize_normalize(line, 3, 48, int(48 * widest)), expected)
        assert np.array_equal(line_input.resize_normalize(line, 3, 48, 192), classifier.resize_norm_img(line))


def test_recognition_and_direction_are_paddleocrs(config, lines):
    """The whole stages, on real model outputs: batches, resizing, CTC decoding and turning lines."""
    images = line_inputs(lines) + [np.ascontiguousarray(line.image[::-1, ::-1]) for line in lines]
    rec = pipeline.recognizer(config)
    decode = CTCLabelDecode(str(config.model_path("dict")), use_space_char=True)
    assert decode.character == dictionary(config.model_path("dict"), True)
    recognizer = bare(
        TextRecognizer,
        config,
        rec_image_shape=[3, 48, 320],
        rec_algorithm="SVTR_LCNet",
        use_onnx=False,
        rec_batch_num=config.rec_batch_num,
        benchmark=False,
        return_word_box=False,
        postprocess_op=decode,
        postprocess_params={"name": "CTCLabelDecode"},
        **Handle.fields(rec.predictor),
    )
    expected, _ = recognizer(images)
    assert rec(images) == [(text, float(score)) for text, score in expected]

    cls = pipeline.classifier(config)
    classifier = bare(
        TextClassifier,
        config,
        cls_image_shape=[3, 48, 192],
        cls_batch_num=config.cls_batch_num,
        cls_thresh=config.cls_thresh,
        use_onnx=False,
        postprocess_op=ClsPostProcess(label_list=["0", "180"]),
        **Handle.fields(cls.predictor),
    )
    their_lines, their_angles, _ = classifier(images)
    our_lines, our_angles = cls(images)
    assert our_angles == [(label, float(score)) for label, score in their_angles]
    assert {angle for angle, _ in our_angles} == {"0", "180"}
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(our_lines, their_lines))


class Handle:
    """Our predictor behind paddleocr's predictor and handle calls, so both sides see the same outputs."""

    def __init__(self, predictor):
        self.predictor, self.batch, self.outputs = predictor, None, []

    @classmethod
    def fields(cls, predictor) -> dict:
        handle = cls(predictor)
        return {"predictor": handle, "input_tensor": handle, "output_tensors": [handle]}

    def copy_from_cpu(self, batch):
        self.batch = batch

    def run(self):
        self.outputs = self.predictor.run(self.batch)

    def copy_to_cpu(self):
        return self.outputs[0]

    def try_shrink_memory(self):
        pass
