"""Paddle Inference predictors for the OCR stages, on the engine ``OcrConfig.engine`` names.

Engines, all on CPU with ``cpu_threads`` threads (seconds per pass over the shared photos and the
rendered pages at 1 / 2 threads, and lines read as on oneDNN; BENCHMARKS.md has the full runs):

- ``openvino`` (default): Paddle Inference hands the whole model to OpenVINO (bundled in the
  paddlepaddle wheel), fp32. 3.6 / 2.0 s; every line read as on oneDNN (83/83 here, 275/275 on 28
  photos).
- ``openvino-bf16``: the same in bfloat16 where the CPU has it (AVX512-BF16, AMX). 2.2 / 1.3 s;
  81/83 and 254/275 lines identical: faster, and it changes some text. Elsewhere OpenVINO emulates
  bf16 (AVX-512 without BF16) or runs fp32 (AVX2: same text and speed as ``openvino``, measured on an
  AMD EPYC); a warning says so once per process (``native_bf16``).
- ``onednn``: Paddle's kernels with MKLDNN, as paddleocr builds them (it keeps kernels for 10 input
  shapes). 5.4 / 3.6 s; identical to paddleocr's own pipeline.
- ``plain``: Paddle's kernels without MKLDNN (Paddle 3 turns it on unless told not to). 16.7 / 13.5 s.

``use_gpu`` takes the GPU instead, as paddleocr's ``create_predictor`` does (``gpu_mem`` MB to start
with, device ``gpu_id``); ``engine`` is then not used.

Traits of Paddle's OpenVINO engine, and what is done about them:

- Without ``Config.set_optim_cache_dir`` it writes compiled models to ``./__cache__`` in the current
  directory: they go under ``OcrConfig.data_dir`` (``openvino-cache/fp32`` or ``bf16``).
- It holds one inference request per predictor: calls to one predictor must not overlap
  (``pipeline.Stage`` has a lock). Each predictor gets an engine of its own (Paddle keys engines by
  graph node ids, unique in a process), so predictors of one model do not meet. Paddle never frees
  an engine, so predictors are built once per process (``pipeline`` caches them).
- It logs and swallows errors from the inference itself, leaving the previous call's outputs in
  place: every output's shape is checked against its input (batch size; height and width for
  detection) and a mismatch raises ``EngineError`` instead of returning stale results.
- It compiles and keeps kernels for every new input shape, with no bound and no setting to bound
  it (2 to 4.5 MB each). Padding inputs to a few sizes stops the growth but changes text (88 % of
  lines identical), so inputs are left as they are and the production server bounds memory by
  replacing a worker whose RSS passes ``worker_max_memory_mb`` (``ocrhub.serving.worker``).
- It pins its threads to the first cores the process may use: processes with one thread each all
  run on the first core unless each is given a core of its own (the server does,
  ``ocrhub.serving.workers``).

``create`` returns a ``Predictor``, which stands in for paddleocr's predictor and its input and
output handles, so that paddleocr's stages keep their own pre- and post-processing around it.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
from paddle import inference

from ocrhub.config import cpu_flags
from ocrhub.errors import EngineError

PRECISIONS = {  # OpenVINO engines: cache folder, precision
    "openvino": ("fp32", inference.PrecisionType.Float32),
    "openvino-bf16": ("bf16", inference.PrecisionType.Bfloat16),
}
ONEDNN_SHAPE_CACHE = 10  # paddleocr's bound on the shapes oneDNN keeps kernels for
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo's names for the instructions bf16 needs to be fast

log = logging.getLogger("ocrhub.predictor")


def create(
    model_dir: Path,
    stage: str,
    *,
    engine: str,
    threads: int,
    cache_dir: Path,
    use_gpu: bool = False,
    gpu_mem: int = 500,
    gpu_id: int = 0,
) -> Predictor:
    """The predictor of one stage (``det``, ``rec`` or ``cls``) from ``inference.pdmodel`` and
    ``inference.pdiparams`` in ``model_dir``; ``cache_dir`` takes OpenVINO's compiled models."""
    config = inference.Config(str(model_dir / "inference.pdmodel"), str(model_dir / "inference.pdiparams"))
    if use_gpu:
        config.enable_use_gpu(gpu_mem, gpu_id)
    else:
        _set_cpu_engine(config, engine, threads, cache_dir)
    # paddleocr's settings for every device
    config.enable_memory_optim()
    config.disable_glog_info()
    config.delete_pass("conv_transpose_eltwiseadd_bn_fuse_pass")
    config.delete_pass("matmul_transpose_reshape_fuse_pass")
    config.switch_use_feed_fetch_ops(False)
    config.switch_ir_optim(True)
    return Predictor(inference.create_predictor(config), stage, config)


def _set_cpu_engine(config: inference.Config, engine: str, threads: int, cache_dir: Path) -> None:
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)  # OpenVINO takes its thread count from here too
    if engine == "onednn":
        config.set_mkldnn_cache_capacity(ONEDNN_SHAPE_CACHE)
        config.enable_mkldnn()
        return
    config.disable_mkldnn()  # Paddle 3 turns it on unless told not to
    if engine in PRECISIONS:
        name, precision = PRECISIONS[engine]
        folder = cache_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        config.set_optim_cache_dir(str(folder))
        config.enable_openvino_engine(precision)
        if name == "bf16":
            _warn_if_no_native_bf16()
    elif engine != "plain":
        raise ValueError(f"unknown engine {engine!r}")


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


def check_outputs(stage: str, input_shape: tuple, outputs: list[np.ndarray]) -> None:
    """Each output has the input's batch size, and a detection map its height and width."""
    for output in outputs:
        wrong_batch = output.ndim == 0 or output.shape[0] != input_shape[0]
        if wrong_batch or (stage == "det" and output.shape[2:] != tuple(input_shape[2:])):
            raise EngineError(
                f"the {stage} model returned an output of shape {tuple(output.shape)} for an "
                f"input of shape {tuple(input_shape)}: the inference failed (the engine's log "
                f"says why), so its outputs are stale"
            )


class Predictor:
    """A Paddle predictor as paddleocr's stages use it: ``copy_from_cpu`` on the input handle,
    ``run()``, ``copy_to_cpu()`` on each output handle. This object is the predictor and the input
    handle; ``output_tensors`` are its output handles. ``run`` checks the outputs against the input."""

    def __init__(self, predictor, stage: str, config: inference.Config | None = None):
        self.paddle_predictor, self.stage, self.config = predictor, stage, config
        self._input = predictor.get_input_handle(predictor.get_input_names()[0])
        self._outputs = [predictor.get_output_handle(name) for name in predictor.get_output_names()]
        self.output_tensors = [_Output(self, index) for index in range(len(self._outputs))]
        self._batch: np.ndarray | None = None
        self.results: list[np.ndarray] = []

    def copy_from_cpu(self, batch: np.ndarray) -> None:
        self._batch = batch

    def run(self) -> None:
        self.results = []
        self._input.copy_from_cpu(self._batch)
        self.paddle_predictor.run()
        outputs = [handle.copy_to_cpu() for handle in self._outputs]
        check_outputs(self.stage, self._batch.shape, outputs)
        self.results = outputs

    def try_shrink_memory(self) -> None:
        self.paddle_predictor.try_shrink_memory()


class _Output:
    def __init__(self, predictor: Predictor, index: int):
        self._predictor, self._index = predictor, index

    def copy_to_cpu(self) -> np.ndarray:
        return self._predictor.results[self._index]
