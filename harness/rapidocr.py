"""RapidOCR (onnxruntime) at its defaults, timed in another Python that has ``rapidocr_onnxruntime``.

    from harness import rapidocr
    if rapidocr.available(python):
        result = rapidocr.measure(python, paths, rounds=3)   # same shape as harness.inproc's answers

This file runs as a script in that Python (its own venv; never the project's), so it imports only
the standard library at the top: one warm-up pass, then ``rounds`` timed passes, one call per image.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

RESULT = "RAPIDOCR-RESULT "


def available(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import rapidocr_onnxruntime"], check=False, capture_output=True)
    return probe.returncode == 0


def measure(python: str, paths: list[Path], rounds: int, timeout: float = 3600) -> dict:
    spec = json.dumps({"paths": [str(p) for p in paths], "rounds": rounds})
    run = subprocess.run([python, __file__, spec], check=False, capture_output=True, text=True, timeout=timeout, cwd="/")
    answers = [line[len(RESULT) :] for line in run.stdout.splitlines() if line.startswith(RESULT)]
    if not answers:
        return {"skipped": f"RapidOCR exited with {run.returncode}: {run.stderr.strip()[-300:]}"}
    return json.loads(answers[-1])


def child(spec: dict) -> None:
    import resource
    from importlib import metadata

    import cv2
    from rapidocr_onnxruntime import RapidOCR

    started = time.perf_counter()
    engine = RapidOCR()
    load_s = time.perf_counter() - started
    images = [cv2.imread(path) for path in spec["paths"]]

    def one_pass() -> tuple[list[float], list[list[str]]]:
        seconds, texts = [], []
        for image in images:
            begin = time.perf_counter()
            lines, _ = engine(image)
            seconds.append(time.perf_counter() - begin)
            texts.append([line[1] for line in lines or []])
        return seconds, texts

    warm_up, _ = one_pass()
    passes = [one_pass() for _ in range(spec["rounds"])]
    versions = f"{metadata.version('rapidocr_onnxruntime')} (onnxruntime {metadata.version('onnxruntime')})"
    result = {
        "engine": f"RapidOCR {versions}",
        "load_s": load_s,
        "warm_up": warm_up,
        "passes": [seconds for seconds, _ in passes],
        "texts": passes[-1][1] if passes else [],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(RESULT + json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
