"""The in-process ``ocr_system`` pipeline timed in fresh processes (engines, thread pools are per process).

    from harness import inproc
    run = inproc.measure(paths, engine="openvino", threads=1, rounds=3, data_dir=tmp)
    inproc.seconds_per_pass(run), inproc.images_per_s(run)

    with inproc.Session(paths, engine="openvino", threads=1, data_dir=tmp, cores=[0]) as session:
        session.one_pass()   # seconds per image; timed when the caller says, between other measurements

Each process reads the image files, builds ``ocrhub.service.OcrService("ocr_system", config)`` with
OCR_ENGINE and OCR_CPU_THREADS set (every other OCR_* setting at its default), runs one warm-up
pass, says it is ready and then times one pass, one ``predict`` call per image, for each "pass" line
on its stdin, so that processes measured together can time the same span. On "done" its answer (JSON):
seconds per image of each pass, the texts of the last pass, load time and peak RSS; or
``{"skipped": why}`` when the config rejects the engine or the engine cannot start.
Child side: ``python -m harness.inproc SPEC``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from harness.servers import clean_env
from harness.stats import summary

READY, PASSED, RESULT = "INPROC-READY", "INPROC-PASS ", "INPROC-RESULT "


def measure(paths: list[Path], *, engine: str, threads: int, rounds: int, data_dir: Path, checkout: str | None = None) -> dict:
    """``rounds`` passes in a fresh process, one after the other: the child's answer (or ``{"skipped": ...}``).
    ``checkout``: another revision's source folder, whose ``ocrhub`` and ``harness`` the child imports
    instead of these (``PYTHONPATH``), to time it beside this one."""
    folder = data_dir / f"{engine}-{threads}t{'-' + Path(checkout).name if checkout else ''}"
    with Session(paths, engine=engine, threads=threads, data_dir=folder, checkout=checkout) as session:
        try:
            for _ in range(rounds if session.ready else 0):
                session.one_pass()
        except RuntimeError as err:  # the child died during a pass
            return {"skipped": str(err)}
    return session.result


class Session:
    """One in-process pipeline kept loaded in its own process, timed one pass at a time when the caller
    says: ``one_pass()`` returns seconds per image; ``result`` is the child's answer after the session
    (or ``{"skipped": ...}`` from the start, and no pass runs). Sessions timed together should each get
    ``cores`` of their own: OpenVINO pins its threads to the first cores a process may use, so
    unpinned they would all share the first core."""

    def __init__(
        self,
        paths: list[Path],
        *,
        engine: str,
        threads: int,
        data_dir: Path,
        cores: list[int] | None = None,
        checkout: str | None = None,
    ):
        spec = json.dumps({"paths": [str(p) for p in paths]})
        self.child = _start(spec, engine, threads, data_dir, cores, checkout)
        self.result = _read_until_ready(self.child)

    @property
    def ready(self) -> bool:
        return self.result is None

    def start_pass(self) -> None:
        self.child.stdin.write("pass\n")
        self.child.stdin.flush()

    def end_pass(self) -> list[float]:
        for line in self.child.stdout:
            if line.startswith(PASSED):
                return json.loads(line[len(PASSED) :])
        raise RuntimeError(f"in-process child exited: {_failed(self.child)['skipped']}")

    def one_pass(self) -> list[float]:
        self.start_pass()
        return self.end_pass()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc) -> None:
        if self.ready and self.child.poll() is None:
            self.child.stdin.write("done\n")
            self.child.stdin.flush()
            self.result = _read_result(self.child, timeout=60)
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()


def seconds_per_pass(run: dict) -> dict:
    """Median, min and max of a run's timed passes, in seconds (also for ``harness.rapidocr``'s runs)."""
    return summary([sum(one_pass) for one_pass in run["passes"]])


def images_per_s(run: dict) -> float:
    """A run's rate at its median pass."""
    return len(run["passes"][0]) / seconds_per_pass(run)["median"]


def pooled_images_per_s(passes: list[list[float]]) -> float:
    """The rate over passes of seconds per image taken together (``Session.one_pass`` results)."""
    return sum(map(len, passes)) / sum(map(sum, passes))


def _start(spec: str, engine: str, threads: int, data_dir: Path, cores: list[int] | None, checkout: str | None):
    data_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env(OCR_ENGINE=engine, OCR_CPU_THREADS=str(threads), OCR_DATA_DIR=str(data_dir))
    if checkout:
        env["PYTHONPATH"] = checkout
    with (data_dir / "child.log").open("w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "harness.inproc", spec],
            env=env,
            cwd="/",
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
    child.log_path = data_dir / "child.log"
    return child


def _read_until_ready(child: subprocess.Popen) -> dict | None:
    """None once the child is ready; its answer if it answered without timing (skipped, failed)."""
    for line in child.stdout:
        if line.startswith(READY):
            return None
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    return _failed(child)


def _read_result(child: subprocess.Popen, timeout: float) -> dict:
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"no answer in {timeout:g} s"}
    answers = [line[len(RESULT) :] for line in out.splitlines() if line.startswith(RESULT)]
    return json.loads(answers[-1]) if answers else _failed(child)


def _failed(child: subprocess.Popen) -> dict:
    child.wait()
    tail = child.log_path.read_text(errors="replace").strip().splitlines()[-5:]
    return {"skipped": f"the process exited with {child.returncode}: " + " | ".join(tail)}


# ------------------------------------------------------------------------------------------ child side


def _answer(result: dict) -> None:
    print(RESULT + json.dumps(result, ensure_ascii=False), flush=True)


def child(spec: dict) -> None:
    import cv2

    from ocrhub.config import load_config
    from ocrhub.service import OcrService

    started = time.perf_counter()
    try:
        config = load_config()
        service = OcrService("ocr_system", config)
    except Exception as err:  # noqa: BLE001  an engine this machine or config does not take is skipped
        return _answer({"skipped": f"{type(err).__name__}: {str(err).strip()[-300:]}"})
    load_s = time.perf_counter() - started
    images = [cv2.imread(path) for path in spec["paths"]]

    def one_pass() -> tuple[list[float], list[list[str]]]:
        seconds, texts = [], []
        for image in images:
            begin = time.perf_counter()
            (lines,) = service.predict([image])
            seconds.append(time.perf_counter() - begin)
            texts.append([line["text"] for line in lines])
        return seconds, texts

    warm_up, _ = one_pass()
    print(READY, flush=True)
    passes = []
    for command in sys.stdin:  # "pass": time one more pass; "done" (or the end): answer
        if command.strip() != "pass":
            break
        passes.append(one_pass())
        print(PASSED + json.dumps(passes[-1][0]), flush=True)
    _answer(
        {
            "engine": config.engine,
            "threads": config.threads,
            "load_s": load_s,
            "warm_up": warm_up,
            "passes": [seconds for seconds, _ in passes],
            "texts": passes[-1][1] if passes else [],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
