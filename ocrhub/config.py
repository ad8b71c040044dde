"""The one source of truth for every OCR parameter.

Field names are paddleocr 2.10's own argument names and defaults are its defaults, with these
deliberate differences for a CPU service: ``use_gpu`` is off, ``enable_mkldnn`` is on,
``use_angle_cls`` is on (``ocr_system`` classifies direction, as PaddleOCR's hubserving does), and
``cls_mode`` (ours) is "page": an image's lines are turned upright together, by majority, where
paddleocr turns each line by its own call ("line"), which turned upright lines of clean pages into
junk (``ocrhub.stages.cls``; BENCHMARKS.md).
``cpu_threads`` 0 means "every core this process may use" (``usable_cores``: a container's CPU limit counts).

A value is resolved in this order, later wins:

1. the defaults below;
2. the model set (``model_set``: ``mobile``, ``v5-mobile``, ``server`` or ``v5-server``, see
   ``ocrhub.models``), which fills in its model folders, dictionary and stage settings;
3. ``init_args`` from a PaddleHub ``config.json`` (``hub serving start -c``) or ``hub.Module(...)``;
4. environment variables ``OCR_<FIELD>`` in upper case, e.g. ``OCR_MODEL_SET=server``,
   ``OCR_DET_MODEL_DIR=/models/det``, ``OCR_CPU_THREADS=2``, ``OCR_ENABLE_MKLDNN=false``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ocrhub import models
from ocrhub.errors import ConfigError
from ocrhub.tasks import TASKS

ENV_PREFIX = "OCR_"
# ``hub serving`` adds these to init_args itself; they say which module to load, not how.
_HUB_KEYS = {"name", "version", "directory", "source", "branch"}
ENGINES = ("openvino", "openvino-bf16", "onednn", "plain")  # CPU engines (ocrhub.predictor)


@dataclass(frozen=True)
class OcrConfig:
    # Models: a named set, or explicit folders (relative paths are taken under inference_dir).
    model_set: str = "mobile"
    inference_dir: str = str(models.DEFAULT_INFERENCE_DIR)
    det_model_dir: str = ""
    rec_model_dir: str = ""
    cls_model_dir: str = ""
    rec_char_dict_path: str = ""
    # Engine (Paddle Inference).
    use_gpu: bool = False
    gpu_id: int = 0
    gpu_mem: int = 500
    enable_mkldnn: bool = True
    cpu_threads: int = 0
    engine: str = "openvino"  # one of ENGINES, see ocrhub.predictor (enable_mkldnn=false makes onednn plain)
    # Detection (DB).
    det_limit_side_len: float = 960
    det_limit_type: str = "max"
    det_db_thresh: float = 0.3
    det_db_box_thresh: float = 0.6
    det_db_unclip_ratio: float = 1.5
    use_dilation: bool = False
    det_db_score_mode: str = "fast"
    # Direction classification.
    use_angle_cls: bool = True
    cls_image_shape: str = "3, 48, 192"
    cls_batch_num: int = 6
    cls_thresh: float = 0.9
    cls_mode: str = "page"  # "page": an image's lines turned together by majority; "line": each alone (paddleocr)
    # Recognition (CTC).
    rec_image_shape: str = "3, 48, 320"
    rec_batch_num: int = 6
    max_text_length: int = 25
    use_space_char: bool = True
    drop_score: float = 0.5
    # Request limits (enforced by every module, under any server).
    max_images: int = 64
    max_image_pixels: int = 40_000_000
    max_request_pixels: int = 400_000_000  # all images (or pages rendered for OCR) of one request together
    max_pages: int = 100  # PDF pages per /ocr request (after its page range)
    max_line_ratio: float = 100.0  # width/height of an ocr_rec/ocr_cls image (its cost grows with it)
    request_timeout: float = 120.0  # seconds of work per request, checked between images
    # Files: the only directory the service writes to (engine caches, metrics, temporary files).
    data_dir: str = "/tmp/ocrhub"

    def model_path(self, stage: str) -> Path:
        """Absolute path of a stage's model folder (``det``/``rec``/``cls``) or of ``dict``."""
        name = "rec_char_dict_path" if stage == "dict" else f"{stage}_model_dir"
        return Path(self.inference_dir) / getattr(self, name)

    @property
    def threads(self) -> int:
        return self.cpu_threads or usable_cores()

    @property
    def cpu_engine(self) -> str:
        """The engine that runs on the CPU: ``enable_mkldnn=false`` keeps its old meaning for onednn, plain."""
        return "plain" if self.engine == "onednn" and not self.enable_mkldnn else self.engine

    @property
    def on_openvino(self) -> bool:
        """Whether the predictors run on OpenVINO's runtime (the openvino engines, on the CPU), else on Paddle Inference."""
        return self.engine.startswith("openvino") and not self.use_gpu

    @property
    def runtime(self) -> str:
        """The library that runs the models: ``openvino`` or ``paddle`` (which program files it reads: ``ocrhub.models``)."""
        return "openvino" if self.on_openvino else "paddle"


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: its CPU affinity, bounded by a container's CPU limit (its cgroup's
    CPU quota), which the affinity does not show."""
    cores = len(os.sched_getaffinity(0))
    quota = _cpu_quota(cgroup)
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def _cpu_quota(cgroup: Path) -> float | None:
    """Cores' worth of CPU time the cgroup allows; None for no limit (or no cgroup file to say)."""
    try:
        try:
            quota, period = (cgroup / "cpu.max").read_text().split()  # v2: "200000 100000" or "max 100000"
        except FileNotFoundError:
            quota, period = ((cgroup / "cpu" / name).read_text().strip() for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        return None if quota in ("max", "-1") else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def usable_memory_mb(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The memory this process may use, in MB: the machine's, bounded by a container's memory limit."""
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _memory_limit(cgroup)
    return min(machine, limit or machine) // 2**20


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags as Linux names them (avx2, avx512f, amx_bf16, ...); None where unknown."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    return next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), None)


def _memory_limit(cgroup: Path) -> int | None:
    """Bytes the cgroup allows; None for no limit (v2 "max"; v1 says a huge number, which min() takes care of)."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):  # cgroup v2, v1
        try:
            text = (cgroup / name).read_text().strip()
        except OSError:
            continue
        return int(text) if text.isdigit() else None
    return None


@dataclass(frozen=True)
class ServerConfig:
    """The production server's settings (``ocrhub-serve``, see ``ocrhub.serving``), from ``OCR_*`` too."""

    modules: str = ",".join(TASKS)
    # Inference workers: processes that take queued requests when idle (0: by engine, see layout.default_layout).
    workers: int = 0
    solo_worker: str = "auto"  # one more worker, with every core, for a request alone: auto, true or false
    # The queue admits a request while the work ahead of it should clear within queue_timeout (measured
    # seconds per image × jobs ahead ÷ workers, see workers.WorkerPool.admit); queue_size is a safety net
    # only: never more waiting than that, however cheap the jobs look. Beyond either: 503 + Retry-After.
    queue_size: int = 256  # requests waiting for a worker at most, whatever the estimate
    queue_timeout: float = 30.0  # seconds a request may wait for a worker: admission's bound, and then a 503
    worker_max_memory_mb: int = 2048  # a worker over this RSS after a request is replaced (0: never); see layout.fit_memory
    # HTTP front: every connection is read in full, within these bounds, before a worker sees it.
    max_connections: int = 1000  # open connections; a request on one more is answered 503
    header_timeout: float = 10.0  # seconds to send a request's line and headers, from connect or the last answer
    body_timeout: float = 60.0  # seconds to send the whole body
    keepalive_timeout: float = 5.0  # seconds an idle kept-alive connection stays open
    max_body_bytes: int = 20 * 1024 * 1024
    max_buffered_bytes: int = 256 * 1024 * 1024  # bodies held by the front at once; more is 503
    graceful_timeout: float = 30.0
    offline: bool = True  # refuse outbound network connections from the service's processes
    # Access: API keys (none: open, as on loopback), browser origins, logs.
    api_keys: str = ""  # comma-separated keys; with keys, /predict/* and /ocr need one
    api_keys_file: str = ""  # one key per line (a mounted Secret), re-read when it changes
    open_metrics: bool = False  # with keys, /metrics needs one too unless this is true
    open_page: bool = True  # with keys, the page at / and /openapi.json stay open (the page asks for a key)
    cors_origins: str = ""  # comma-separated origins allowed to call the API from a browser ("*": any)
    log_format: str = "text"  # text or json (one object per line)

    @property
    def solo(self) -> bool:
        """A solo worker, once ``layout.default_layout`` has resolved ``auto``."""
        return self.solo_worker == "true"

    @property
    def module_names(self) -> list[str]:
        return [name.strip() for name in self.modules.split(",") if name.strip()]


FIELDS = {f.name: f for f in dataclasses.fields(OcrConfig)}


def _parse(cls, name: str, raw, source: str):
    kind = type(getattr(cls, name))
    if isinstance(raw, str) and kind is not str:
        text = raw.strip().lower()
        if kind is bool:
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{source}: expected true/false, got {raw!r}")
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{source}: expected {kind.__name__}, got {raw!r}") from None
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if not isinstance(raw, kind):
        raise ConfigError(f"{source}: expected {kind.__name__}, got {raw!r}")
    return raw


def _overrides(cls, init_args: dict, environ) -> dict:
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, raw in init_args.items():
        if key in _HUB_KEYS:
            continue
        if key not in fields:
            raise ConfigError(f"unknown init_arg {key!r}; known: {', '.join(sorted(fields))}")
        values[key] = _parse(cls, key, raw, f"init_arg {key}")
    for key in fields:
        env = ENV_PREFIX + key.upper()
        if environ.get(env, "") != "":
            values[key] = _parse(cls, key, environ[env], env)
    return values


def load_config(init_args: dict | None = None, environ=None) -> OcrConfig:
    """Defaults, then the model set, then ``init_args``, then ``OCR_*`` environment variables."""
    values = _overrides(OcrConfig, init_args or {}, os.environ if environ is None else environ)
    set_name = values.get("model_set", OcrConfig.model_set)
    for key, value in models.model_set(set_name).config_values().items():
        values.setdefault(key, value)
    inference_dir = Path(values.get("inference_dir", OcrConfig.inference_dir)).expanduser()
    values["inference_dir"] = str(inference_dir.resolve())
    _check_choices(values)
    config = OcrConfig(**values)
    if not config.use_gpu:
        models.check_engine(set_name, config.cpu_engine)
    return config


def load_server_config(environ=None) -> ServerConfig:
    values = _overrides(ServerConfig, {}, os.environ if environ is None else environ)
    _check_choices(values)
    return ServerConfig(**values)


def _check_choices(values: dict) -> None:
    if values.get("det_limit_type", "max") not in ("max", "min"):
        raise ConfigError(f"det_limit_type must be 'max' or 'min', got {values['det_limit_type']!r}")
    if values.get("cls_mode", "page") not in ("page", "line"):
        raise ConfigError(f"cls_mode must be 'page' or 'line', got {values['cls_mode']!r}")
    if values.get("log_format", "text") not in ("text", "json"):
        raise ConfigError(f"log_format must be text or json, got {values['log_format']!r}")
    if values.get("solo_worker", "auto") not in ("auto", "true", "false"):
        raise ConfigError(f"solo_worker must be auto, true or false, got {values['solo_worker']!r}")
    if values.get("engine", OcrConfig.engine) not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {values['engine']!r}")
    for key in ("rec_image_shape", "cls_image_shape"):
        if key in values and len(values[key].split(",")) != 3:
            raise ConfigError(f"{key} must be 'C, H, W', got {values[key]!r}")
    for key, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{key} must not be negative, got {value}")


def env_table() -> list[tuple[str, object]]:
    """(environment variable, default) for every setting: the README's configuration table."""
    return [(ENV_PREFIX + f.name.upper(), f.default) for cls in (OcrConfig, ServerConfig) for f in dataclasses.fields(cls)]
