"""Model files + engine → a predictor: ``Predictor.run(batch)`` returns the model's outputs, checked.

Which library runs the Paddle params files (``inference.pdmodel`` + ``inference.pdiparams``) on each
engine (seconds per pass over the shared photos and rendered pages: BENCHMARKS.md):

- ``openvino`` (default) and ``openvino-bf16``: **OpenVINO's own runtime** (the ``openvino`` package),
  whose Paddle frontend reads the params files directly; fp32, or bfloat16 where the CPU has it
  (AVX512-BF16, AMX: faster, and it changes some text). No Paddle is imported: a worker starts in
  half a second and holds about a third of the memory. Elsewhere OpenVINO emulates bf16 (AVX-512
  without BF16) or runs fp32 (AVX2); a warning says so once per process (``native_bf16``).
- ``onednn``: **Paddle Inference** with MKLDNN, as paddleocr builds its predictors (kernels kept for 10
  input shapes): PaddleOCR's stock engine, the benchmarks' baseline.
- ``plain``: Paddle Inference without MKLDNN. ``use_gpu`` takes Paddle Inference on the GPU instead
  (``gpu_mem`` MB to start with, device ``gpu_id``), as paddleocr's ``create_predictor`` does.

``paddle`` and ``openvino`` are imported by the engine that needs them, when a predictor is created.

Traits of OpenVINO's CPU plugin, and what is done about them:

- It prepares kernels ("primitives") for each new input shape and keeps them: with no bound, a
  process that saw 100 distinct page sizes held 1.7 GB. ``CPU_RUNTIME_CACHE_CAPACITY`` bounds the
  primitives kept (``SHAPE_CACHE``: 300 holds a worker at about 0.7 GB after 100 sizes at the same
  speed; 100 held it at 0.65 GB but served the benchmark's ten images 10 % slower, BENCHMARKS.md).
  What is left is the memory of the largest input each model has seen (a 960×960 page, a batch of
  lines 3,000 px wide: 0.3 GB each), which no setting gives back but recompiling; the server
  replaces a worker past ``worker_max_memory_mb`` (``ocrhub.serving.worker``).
- Compiled models go to ``cache_dir`` (``OcrConfig.data_dir``/openvino-cache/fp32 or bf16, its
  ``CACHE_DIR``), which makes a second start's compile a load.
- It pins its threads to the first cores the process may use: processes with one thread each all
  run on the first core unless each is given a core of its own (the server does,
  ``ocrhub.serving.workers``).
- One inference request per predictor: calls take turns (``Predictor.run`` holds a lock).
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

import numpy as np

from ocrhub.config import cpu_flags
from ocrhub.errors import EngineError

OPENVINO_PRECISIONS = {"openvino": "f32", "openvino-bf16": "bf16"}  # engine -> INFERENCE_PRECISION_HINT
CACHE_FOLDERS = {"f32": "fp32", "bf16": "bf16"}
SHAPE_CACHE = 300  # primitives OpenVINO keeps, of all shapes together (BENCHMARKS.md: memory against speed)
ONEDNN_SHAPE_CACHE = 10  # paddleocr's bound on the shapes oneDNN keeps kernels for
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo's names for the instructions bf16 needs to be fast

log = logging.getLogger("ocrhub.predictor")


def create(
    program: Path,
    stage: str,
    *,
    engine: str,
    threads: int,
    cache_dir: Path,
    use_gpu: bool = False,
    gpu_mem: int = 500,
    gpu_id: int = 0,
) -> Predictor:
    """The predictor of one stage (``det``, ``rec`` or ``cls``) from its ``program`` file (``inference.pdmodel``,
    or a Paddle 3 ``inference.json`` for Paddle Inference and its OpenVINO IR ``inference.xml`` for OpenVINO,
    ``ocrhub.models.program``), with its weights beside it (``inference.pdiparams``; ``inference.bin`` for IR)."""
    if not use_gpu and engine in OPENVINO_PRECISIONS:
        return Predictor(_OpenVino(program, OPENVINO_PRECISIONS[engine], threads, cache_dir), stage)
    if not use_gpu and engine not in ("onednn", "plain"):
        raise ValueError(f"unknown engine {engine!r}")
    return Predictor(_PaddleInference(program, engine, threads, use_gpu, gpu_mem, gpu_id, shrink=stage == "cls"), stage)


class Predictor:
    """One model on one engine: ``run`` takes an NCHW float32 batch and returns the model's outputs,
    each checked against the input (``check_outputs``). Calls from several threads take turns: an
    engine's inference request is not to be shared."""

    def __init__(self, runner, stage: str):
        self.runner, self.stage = runner, stage
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        try:
            with self._lock:
                outputs = self.runner.run(np.ascontiguousarray(batch, dtype=np.float32))
        except Exception as err:  # the engines say why in a page of C++ frames: its first line serves
            raise EngineError(f"the {self.stage} model failed on an input of shape {batch.shape}: {_first_line(err)}") from None
        check_outputs(self.stage, batch.shape, outputs)
        return outputs


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip() and not line.startswith("Exception from")]
    return lines[0].strip() if lines else type(err).__name__


def check_outputs(stage: str, input_shape: tuple, outputs: list[np.ndarray]) -> None:
    """Each output has the input's batch size, and a detection map its height and width. Paddle's
    engines log and swallow some failures, leaving the previous call's outputs in place."""
    for output in outputs:
        wrong_batch = output.ndim == 0 or output.shape[0] != input_shape[0]
        if wrong_batch or (stage == "det" and output.shape[2:] != tuple(input_shape[2:])):
            raise EngineError(
                f"the {stage} model returned an output of shape {tuple(output.shape)} for an "
                f"input of shape {tuple(input_shape)}: the inference failed (the engine's log "
                f"says why), so its outputs are stale"
            )


class _OpenVino:
    """OpenVINO's runtime on the params files: one compiled model, one inference request."""

    def __init__(self, model: Path, precision: str, threads: int, cache_dir: Path):
        import openvino

        folder = cache_dir / CACHE_FOLDERS[precision]
        folder.mkdir(parents=True, exist_ok=True)
        if precision == "bf16":
            _warn_if_no_native_bf16()
        self.settings = {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",  # one stream: a worker answers one request at a time
            "CACHE_DIR": str(folder),
            "CPU_RUNTIME_CACHE_CAPACITY": SHAPE_CACHE,
        }
        self.compiled = _core(openvino).compile_model(str(model), "CPU", self.settings)
        self.request = self.compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        self.request.infer({0: batch})
        return [self.request.get_output_tensor(index).data.copy() for index in range(len(self.compiled.outputs))]


@functools.cache
def _core(openvino):
    """One OpenVINO Core per process: it holds the plugins and their thread pools."""
    return openvino.Core()


class _PaddleInference:
    """A Paddle Inference predictor, configured as paddleocr 2.10's ``create_predictor`` does."""

    def __init__(self, model: Path, engine: str, threads: int, use_gpu: bool, gpu_mem: int, gpu_id: int, shrink: bool):
        from paddle import inference

        config = inference.Config(str(model), str(model.with_suffix(".pdiparams")))
        if use_gpu:
            config.enable_use_gpu(gpu_mem, gpu_id)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(threads)
            if engine == "onednn":
                config.set_mkldnn_cache_capacity(ONEDNN_SHAPE_CACHE)
                config.enable_mkldnn()
            else:
                config.disable_mkldnn()  # Paddle 3 turns it on unless told not to
        if model.suffix == ".pdmodel":  # Paddle 3 programs (.json) have no such pass: creating the predictor fails
            config.enable_memory_optim()
        config.disable_glog_info()
        config.delete_pass("conv_transpose_eltwiseadd_bn_fuse_pass")
        config.delete_pass("matmul_transpose_reshape_fuse_pass")
        config.switch_use_feed_fetch_ops(False)
        config.switch_ir_optim(True)
        self.config, self.shrink = config, shrink
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.outputs = [self.predictor.get_output_handle(name) for name in self.predictor.get_output_names()]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        outputs = [handle.copy_to_cpu() for handle in self.outputs]
        if self.shrink:  # as paddleocr's classifier does after each batch
            self.predictor.try_shrink_memory()
        return outputs


def native_bf16(flags: set[str] | None) -> bool | None:
    """Whether CPU ``flags`` (``config.cpu_flags``) include bfloat16 instructions; None where unknown."""
    return None if flags is None else any(flag in flags for flag in BF16_FLAGS)


@functools.cache
def _warn_if_no_native_bf16() -> None:
    if native_bf16(cpu_flags()) is False:
        log.warning(
            "OCR_ENGINE=openvino-bf16 on a CPU without bfloat16 instructions (%s): OpenVINO runs fp32 "
            "(AVX2) or emulates bf16 (AVX-512): expect no speed-up over OCR_ENGINE=openvino",
            " or ".join(BF16_FLAGS),
        )
