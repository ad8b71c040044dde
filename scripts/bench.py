#!/usr/bin/env python3
"""Benchmark the OCR service: in-process floor, HTTP per module, concurrency, stages, cold start, memory.

    .venv/bin/python scripts/bench.py                  # full run (≤ 10 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick          # about a minute: rendered pages only, fewer rounds
    .venv/bin/python scripts/bench.py --images DIR --rapidocr-python /tmp/rapidocr-venv/bin/python

Images: pages rendered with ``ocrhub.testimages`` (always), the shared sample photos in
``../shared/images`` when that folder exists (not in --quick), and every image file of each
``--images`` folder. In one run, side by side:

(a) the in-process pipeline (``ocrhub.pipeline.system``, same config as the servers) with the
    default threads and with 1 thread, each in its own fresh process (the floor);
(b) each module over HTTP (production launcher), one request of one image at a time;
(c) ``ocr_system`` over HTTP at concurrency 1, 2, 4, 8 for the production launcher and for plain
    ``hub serving start`` (both started here on free loopback ports with a private
    HUB_HOME / OCR_DATA_DIR under a temp dir, and stopped at the end);
(d) a per-image stage breakdown (decode, det pre/infer/post, crop, cls, rec pre/infer/post,
    serialization), timed by calling paddleocr's own pieces (measurement only);
(e) cold start: process start to the first answered request, for both servers;
(f) peak RSS of every server process (VmHWM) and of the in-process runs;
(g) RapidOCR on onnxruntime with its defaults, when ``--rapidocr-python`` names a Python that has
    ``rapidocr_onnxruntime`` (a separate venv; never the project's).

Recognized texts are compared everywhere: HTTP answers against the in-process pipeline.
Prints a table, writes JSON (``--json``, default bench-results/bench.json) and a PNG chart
(``--png``, default bench-results/bench.png; needs matplotlib from requirements-bench.txt).
OCR_* variables in the environment (e.g. OCR_ENABLE_MKLDNN=false) reach every run alike;
``--launcher-env OCR_WORKERS=1`` sets variables for the production launcher only.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_IMAGES = ROOT.parent / "shared" / "images"
MODULES = ["ocr_system", "ocr_det", "ocr_cls", "ocr_rec"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STAGES = ["decode", "det_pre", "det_infer", "det_post", "crop", "cls", "rec_pre", "rec_infer", "rec_post",
          "serialize"]
MARK = "BENCHJSON "
# Plain `hub serving start`, unpatched except that Flask listens on loopback only (PaddleHub hard-codes
# 0.0.0.0) and, as in the launcher, outbound connections are refused (PaddleHub reports usage).
HUB_WRAPPER = r"""
import sys, flask
from ocrhub.launcher import refuse_outbound_connections
refuse_outbound_connections()
_run = flask.Flask.run
flask.Flask.run = lambda self, host=None, port=None, **kw: _run(self, host="127.0.0.1", port=port, **kw)
from paddlehub.commands.utils import execute
sys.argv = ["hub", "serving", "start", "-m", *sys.argv[2:], "-p", sys.argv[1]]
sys.exit(execute())
"""
RAPIDOCR_CHILD = r"""
import json, sys, time
from importlib import metadata
import cv2
spec = json.loads(sys.argv[1])
started = time.perf_counter()
from rapidocr_onnxruntime import RapidOCR
engine = RapidOCR()
load = time.perf_counter() - started
images = [cv2.imread(path) for path in spec["paths"]]
def one_pass():
    times, texts = [], []
    for image in images:
        t = time.perf_counter()
        result, _ = engine(image)
        times.append(time.perf_counter() - t)
        texts.append([line[1] for line in result or []])
    return times, texts
first, _ = one_pass()
passes = [one_pass() for _ in range(spec["rounds"])]
import resource
print("BENCHJSON " + json.dumps({"version": metadata.version("rapidocr_onnxruntime"),
      "onnxruntime": metadata.version("onnxruntime"), "load_s": load, "first": first,
      "passes": [p[0] for p in passes], "texts": passes[-1][1],
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# ----------------------------------------------------------------------------------------- helpers

def pct(values, q):
    """Percentile with linear interpolation (q in 0..100)."""
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(extra: dict | None = None) -> dict:
    """The environment without any server placement; OCR_* model/engine settings pass through."""
    drop = ("HUB_HOME", "PROMETHEUS", "OCR_DATA_DIR", "OCR_WORKERS", "OCR_CPU_THREADS", "PORT", "HOST")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, **(extra or {})}


def run_child(cmd: list, env: dict, timeout: float, label: str) -> dict:
    """Run a measuring child process; its last ``BENCHJSON`` line is the answer."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd="/")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            answer = json.loads(line[len(MARK):])
            answer["wall_s"] = time.perf_counter() - started
            return answer
    raise RuntimeError(f"{label} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


class CpuMeter:
    """How busy the rest of the machine was during a phase: CPU time of all processes (/proc/stat)
    minus this benchmark's own (itself and every child it has waited for), per second of wall time;
    and time stolen by the hypervisor. Exact when all our processes of the phase have exited."""

    def __init__(self):
        self.phases = {}
        self._start = self._read()

    @staticmethod
    def _read():
        import resource

        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4] - fields[7]) / tick  # not idle, iowait, steal
        own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                    resource.getrusage(resource.RUSAGE_CHILDREN)))
        return time.perf_counter(), busy, own, fields[7] / tick

    def phase(self, name: str) -> None:
        """Close the phase that started at the previous call."""
        (t0, busy0, own0, steal0), (t1, busy1, own1, steal1) = self._start, self._read()
        wall = max(t1 - t0, 1e-9)
        self.phases[name] = {"wall_s": round(wall, 1), "others_cores": round(max(0.0, busy1 - busy0 - (own1 - own0)) / wall, 2),
                             "own_cores": round((own1 - own0) / wall, 2), "steal_cores": round((steal1 - steal0) / wall, 2)}
        self._start = (t1, busy1, own1, steal1)


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size of a live process (Linux VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout
        return head.strip() + (" (modified)" if dirty.strip() else "")
    except OSError:
        return ""


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil
        ram_gb = psutil.virtual_memory().total / 2**30
    except ImportError:
        ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from importlib import metadata
    versions = {}
    for name in ("paddlepaddle", "paddleocr", "paddlehub", "gunicorn", "numpy", "opencv-python-headless"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"cores": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu_model": model,
            "ram_gb": round(ram_gb, 1), "python": platform.python_version(), "versions": versions,
            "kernel": platform.release()}


# ------------------------------------------------------------------------------------------ images

def prepare_images(args, workdir: Path) -> dict:
    """Write the rendered images as PNG files; list every image file; base64 of each."""
    from ocrhub import testimages

    pages_dir, lines_dir = workdir / "pages", workdir / "lines"
    pages_dir.mkdir()
    lines_dir.mkdir()
    import cv2

    pages, lines = [], []
    try:
        font = testimages.find_cjk_font()
    except FileNotFoundError as err:
        print(f"note: no rendered images ({err})")
        font = None
    if font:
        for sample in testimages.pages(font):
            path = pages_dir / f"{sample.name}.png"
            cv2.imwrite(str(path), sample.image)
            pages.append({"name": sample.name, "group": "rendered", "path": str(path)})
            if sample.name.endswith("_180"):
                continue
            for index, (x0, y0, x1, y1) in enumerate(sample.boxes):  # each drawn line, cropped
                path = lines_dir / f"{sample.name}_{index}.png"
                cv2.imwrite(str(path), sample.image[max(0, y0 - 6):y1 + 6, max(0, x0 - 6):x1 + 6])
                lines.append({"name": path.stem, "group": "lines", "path": str(path)})
        for sample in testimages.lines(font):
            path = lines_dir / f"{sample.name}.png"
            cv2.imwrite(str(path), sample.image)
            lines.append({"name": sample.name, "group": "lines", "path": str(path)})
    folders = [Path(folder) for folder in args.images]
    if not args.quick and not args.no_shared and SHARED_IMAGES.is_dir():
        folders.insert(0, SHARED_IMAGES)
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            print(f"note: no image files in {folder}")
        for path in files:
            pages.append({"name": path.name, "group": str(folder), "path": str(path)})
    if not pages:
        raise SystemExit("no images: install a CJK font (fonts-wqy-microhei) or pass --images DIR")
    for item in pages + lines:
        item["b64"] = base64.b64encode(Path(item["path"]).read_bytes()).decode()
    return {"pages": pages, "lines": lines}


# ------------------------------------------------------------------------------- in-process floor

def stage_breakdown(config, b64: str) -> tuple[dict, list]:
    """One image through the same steps as ocrhub.pipeline.System, each timed (paddleocr's pieces)."""
    import numpy as np
    from paddleocr.paddleocr import predict_system as ppocr

    from ocrhub import images as image_input, pipeline

    clock, times = time.perf_counter, {}
    t = clock()
    image = image_input.decode(b64, 0, config.max_image_pixels)
    times["decode"] = clock() - t

    det = pipeline.detector(config)._predictor
    t = clock()
    data = ppocr.predict_det.transform({"image": image}, det.preprocess_op)
    tensor, shape_list = np.expand_dims(data[0], 0).copy(), np.expand_dims(data[1], 0)
    times["det_pre"] = clock() - t
    t = clock()
    det.input_tensor.copy_from_cpu(tensor)
    det.predictor.run()
    maps = [out.copy_to_cpu() for out in det.output_tensors]
    times["det_infer"] = clock() - t
    t = clock()
    boxes = det.filter_tag_det_res(det.postprocess_op({"maps": maps[0]}, shape_list)[0]["points"], image.shape)
    boxes = [] if len(boxes) == 0 else ppocr.sorted_boxes(boxes)
    times["det_post"] = clock() - t
    t = clock()
    crops = [ppocr.get_rotate_crop_image(image, copy.deepcopy(box)) for box in boxes]
    times["crop"] = clock() - t
    t = clock()
    if config.use_angle_cls and crops:
        crops, _ = pipeline.classifier(config)(crops)
    times["cls"] = clock() - t

    rec = pipeline.recognizer(config)._predictor  # TextRecognizer.__call__ for CRNN/SVTR, step by step
    results = [("", 0.0)] * len(crops)
    order = np.argsort(np.array([c.shape[1] / float(c.shape[0]) for c in crops]))
    times.update(rec_pre=0.0, rec_infer=0.0, rec_post=0.0)
    _, height, width = rec.rec_image_shape[:3]
    for start in range(0, len(crops), rec.rec_batch_num):
        batch = order[start:start + rec.rec_batch_num]
        t = clock()
        ratios = [crops[i].shape[1] / crops[i].shape[0] for i in batch]
        max_ratio = max([width / height] + ratios)
        tensor = np.concatenate([rec.resize_norm_img(crops[i], max_ratio)[np.newaxis] for i in batch]).copy()
        times["rec_pre"] += clock() - t
        t = clock()
        rec.input_tensor.copy_from_cpu(tensor)
        rec.predictor.run()
        outputs = [out.copy_to_cpu() for out in rec.output_tensors]
        times["rec_infer"] += clock() - t
        t = clock()
        decoded = rec.postprocess_op(outputs[0] if len(outputs) == 1 else outputs,
                                     return_word_box=rec.return_word_box, wh_ratio_list=ratios, max_wh_ratio=max_ratio)
        for i, result in zip(batch, decoded):
            results[i] = result
        times["rec_post"] += clock() - t
    t = clock()
    lines = [{"text": text, "confidence": float(score), "text_region": np.asarray(box).astype(np.int32).tolist()}
             for box, (text, score) in zip(boxes, results) if score >= config.drop_score]
    json.dumps({"status": "000", "msg": "", "results": [lines]})
    times["serialize"] = clock() - t
    return times, [line["text"] for line in lines]


def inproc_child(spec: dict) -> None:
    """Child process: the in-process pipeline on the given images (first pass, steady passes, stages)."""
    import resource

    started = time.perf_counter()
    from ocrhub import images as image_input, pipeline
    from ocrhub.config import load_config

    config = load_config({}, environ={**os.environ, "OCR_CPU_THREADS": str(spec["threads"])})
    pipeline.warm_up(config, "system")
    load = time.perf_counter() - started
    system = pipeline.system(config)
    images = [image_input.decode(b64, i, config.max_image_pixels) for i, b64 in enumerate(spec["b64"])]

    def one_pass():
        times, texts = [], []
        cpu = time.process_time()
        for image in images:
            t = time.perf_counter()
            texts.append([text for _, text, _ in system(image)])
            times.append(time.perf_counter() - t)
        return times, texts, time.process_time() - cpu

    first = one_pass()
    passes = [one_pass() for _ in range(spec["rounds"])]
    answer = {"threads": config.threads, "load_s": load, "first": first[0], "passes": [p[0] for p in passes],
              "cpu_per_pass": [p[2] for p in passes], "texts": passes[-1][1]}
    if spec["breakdown"]:
        runs = [[stage_breakdown(config, b64) for b64 in spec["b64"]] for _ in range(spec["breakdown"])]
        answer["stages"] = [{stage: statistics.median(run[i][0][stage] for run in runs) for stage in STAGES}
                            for i in range(len(images))]
        answer["stages_texts_match"] = [run[i][1] for run in runs for i in range(len(images))] == \
                                       [answer["texts"][i] for _ in runs for i in range(len(images))]
    answer["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(MARK + json.dumps(answer), flush=True)


def run_inproc(images: list, threads: int, rounds: int, breakdown: int, env: dict) -> dict:
    spec = {"threads": threads, "rounds": rounds, "breakdown": breakdown, "b64": [i["b64"] for i in images]}
    spec_file = Path(env["TMPDIR"]) / f"inproc-{threads}.json"
    spec_file.write_text(json.dumps(spec))
    return run_child([sys.executable, __file__, "--_inproc", str(spec_file)], env, 900, f"in-process ({threads} threads)")


def run_rapidocr(python: str, images: list, rounds: int, env: dict) -> dict:
    spec = json.dumps({"paths": [i["path"] for i in images], "rounds": rounds})
    return run_child([python, "-c", RAPIDOCR_CHILD, spec], env, 900, "RapidOCR")


# ------------------------------------------------------------------------------------------ servers

class RssSampler(threading.Thread):
    """Peak RSS of a process tree: sampled every 0.2 s, and VmHWM read from /proc before it stops."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.roles = pid, {}, {}
        self.stopped = threading.Event()

    def sample(self):
        import psutil
        try:
            root = psutil.Process(self.pid)
            procs = [root] + root.children()  # the master (or hub's one process) and its workers
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                rss = proc.memory_info().rss / 2**20
                hwm = vm_hwm_mb(proc.pid) or 0
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            self.roles[proc.pid] = "master" if proc.pid == self.pid else "worker"
            self.peak[proc.pid] = max(self.peak.get(proc.pid, 0), rss, hwm)

    def run(self):
        while not self.stopped.wait(0.2):
            self.sample()

    def finish(self) -> dict:
        self.sample()
        self.stopped.set()
        return {str(pid): {"role": self.roles[pid], "peak_rss_mb": round(mb, 1)} for pid, mb in self.peak.items()}


class ServerProc:
    """A server started here: the production launcher or plain `hub serving start`."""

    def __init__(self, kind: str, workdir: Path, probe: str, launcher_env: dict):
        self.kind, self.port = kind, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{kind}.log"
        if kind == "launcher":
            env = clean_env({"OCR_DATA_DIR": str(workdir / "launcher-data"), "PORT": str(self.port),
                             "HOST": "127.0.0.1", **launcher_env})
            cmd = [sys.executable, str(ROOT / "scripts" / "serve.py")]
        else:
            env = clean_env({"HUB_HOME": str(workdir / "hub_home"), "TMPDIR": str(workdir / "tmp")})
            cmd = [sys.executable, "-c", HUB_WRAPPER, str(self.port), *MODULES]
        self.env = env
        import psutil, requests  # noqa: F401  loaded before the clock starts, not while the server boots
        self.started = time.perf_counter()
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(cmd, env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.sampler = RssSampler(self.process.pid)
        self.sampler.start()
        self.cold_start_s = self._first_answer(probe)
        self.health_s = None

    def _first_answer(self, probe: str, timeout: float = 300) -> float:
        import requests

        body = json.dumps({"images": [probe]})
        while time.perf_counter() - self.started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                answer = requests.post(self.url + "/predict/ocr_system", data=body, timeout=60,
                                       headers={"Content-Type": "application/json"})
                if answer.json().get("status") == "000":
                    return time.perf_counter() - self.started
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} did not answer in {timeout} s:\n{self.log()[-3000:]}")

    def wait_all_workers(self, workers: int, timeout: float = 180) -> float:
        """Launcher: until /health has said ok from every worker; seconds since process start."""
        import requests

        seen, deadline = set(), time.monotonic() + timeout
        while len(seen) < workers and time.monotonic() < deadline:
            try:
                answer = requests.get(self.url + "/health", timeout=10)
                if answer.status_code == 200:
                    seen.add(answer.json()["pid"])
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.02)
        return time.perf_counter() - self.started

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> dict:
        rss = self.sampler.finish()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        return rss


def post_many(url: str, module: str, bodies: list, concurrency: int, total: int) -> dict:
    """``total`` requests (body i % len(bodies)) from ``concurrency`` client threads; latencies and rate."""
    import requests

    lock, counter = threading.Lock(), iter(range(total))
    latencies, answers, errors = [None] * total, [None] * total, []

    def client():
        session = requests.Session()
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            t = time.perf_counter()
            try:
                response = session.post(f"{url}/predict/{module}", data=bodies[index % len(bodies)], timeout=300,
                                        headers={"Content-Type": "application/json"})
                answer = response.json()
            except Exception as err:  # noqa: BLE001  a benchmark counts errors, it does not stop
                errors.append(f"{type(err).__name__}: {err}")
                continue
            latencies[index] = time.perf_counter() - t
            if answer.get("status") != "000":
                errors.append(answer.get("msg", "")[:200])
            answers[index] = answer.get("results")

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    done = [lat for lat in latencies if lat is not None]
    return {"concurrency": concurrency, "requests": total, "wall_s": wall, "images_per_s": len(done) / wall,
            "p50_s": pct(done, 50), "p90_s": pct(done, 90), "mean_s": statistics.fmean(done) if done else None,
            "latencies": latencies, "answers": answers, "errors": errors[:5], "error_count": len(errors)}


def bodies_of(items: list) -> list:
    return [json.dumps({"images": [item["b64"]]}).encode() for item in items]


def system_texts(answers: list, count: int) -> list:
    """Texts per image from the first ``count`` ocr_system answers (one image per request)."""
    return [[line["text"] for line in answer[0]] if answer else None for answer in answers[:count]]


def bench_server(kind: str, images: dict, args, workdir: Path, budget) -> dict:
    pages, lines = images["pages"], images["lines"]
    probe = (lines or pages)[0]["b64"]
    launcher_env = dict(item.split("=", 1) for item in args.launcher_env)
    result = {"kind": kind}
    if kind == "hub":
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "hub"), "install", *[str(ROOT / "modules" / m) for m in MODULES]],
                       env=clean_env({"HUB_HOME": str(workdir / "hub_home")}), check=True, capture_output=True, cwd="/")
        result["hub_install_s"] = time.perf_counter() - started
    starts = []
    for _ in range(args.cold_starts - 1):  # extra starts, so one noisy start does not decide
        extra = ServerProc(kind, workdir, probe, launcher_env)
        starts.append(extra.cold_start_s)
        extra.stop()
    server = ServerProc(kind, workdir, probe, launcher_env)
    try:
        starts.append(server.cold_start_s)
        result["cold_start_runs_s"] = starts
        result["cold_start_s"] = statistics.median(starts)
        workers = 1
        if kind == "launcher":
            from ocrhub.config import load_server_config
            workers = load_server_config(server.env).worker_count
            result["all_workers_ready_s"] = server.wait_all_workers(workers)
            result["workers"] = workers
            result["threads_per_worker"] = int(server.env.get("OCR_CPU_THREADS") or max(1, len(os.sched_getaffinity(0)) // workers))
        page_bodies, line_bodies = bodies_of(pages), bodies_of(lines)
        # Warm every process on every image shape (MKLDNN builds its kernels per input shape).
        warm = post_many(server.url, "ocr_system", page_bodies, max(1, 2 * workers), len(pages) * max(1, 3 * workers))
        result["warm_first_latencies"] = warm["latencies"][:len(pages)]
        result["levels"] = []
        for level in args.concurrency:
            passes = max(args.http_rounds, level if level > 1 else args.http_rounds)
            if budget() < 30:
                passes = max(1, level)
            run = post_many(server.url, "ocr_system", page_bodies, level, len(pages) * passes)
            entry = {k: run[k] for k in ("concurrency", "requests", "wall_s", "images_per_s", "p50_s", "p90_s",
                                         "mean_s", "error_count", "errors")}
            if level == 1:
                entry["latency_per_image"] = [statistics.median(run["latencies"][i::len(pages)]) for i in range(len(pages))]
                entry["texts"] = system_texts(run["answers"], len(pages))
            result["levels"].append(entry)
            print(f"  {kind} c={level}: {entry['images_per_s']:.2f} images/s, p50 {entry['p50_s']*1000:.0f} ms, "
                  f"p90 {entry['p90_s']*1000:.0f} ms, errors {entry['error_count']}", flush=True)
        # (b) after (c): ocr_cls and ocr_rec bring other shapes to the shared oneDNN kernel cache
        if kind == "launcher" and not args.skip_modules:
            result["modules"] = {}
            for module, bodies in (("ocr_system", page_bodies), ("ocr_det", page_bodies),
                                   ("ocr_cls", line_bodies), ("ocr_rec", line_bodies)):
                if not bodies:
                    continue
                post_many(server.url, module, bodies, workers, len(bodies) * workers)  # warm
                run = post_many(server.url, module, bodies, 1, len(bodies) * args.http_rounds)
                result["modules"][module] = {k: run[k] for k in ("p50_s", "p90_s", "mean_s", "images_per_s",
                                                                  "requests", "error_count", "errors")}
                if module == "ocr_system":
                    result["modules"][module]["latency_per_image"] = [
                        statistics.median(run["latencies"][i::len(bodies)]) for i in range(len(bodies))]
    finally:
        result["rss"] = server.stop()
    return result


# ----------------------------------------------------------------------------------------- report

def mean_per_image(passes: list) -> float:
    return statistics.median(sum(p) for p in passes) / len(passes[0])


def per_image_median(passes: list) -> list:
    return [statistics.median(p[i] for p in passes) for i in range(len(passes[0]))]


def compute_ratios(res: dict) -> dict:
    cores = res["machine"]["cores"]
    inproc = res.get("inproc", {})
    ratios = {}
    default, single = inproc.get("default"), inproc.get("single")
    launcher, hub = res.get("launcher"), res.get("hub")

    def level(server, c):
        return next((l for l in (server or {}).get("levels", []) if l["concurrency"] == c), None)

    if default:
        ratios["inproc_default_s_per_image"] = mean_per_image(default["passes"])
    if single:
        ratios["inproc_1thread_s_per_image"] = mean_per_image(single["passes"])
        ratios["machine_limit_images_per_s"] = cores / ratios["inproc_1thread_s_per_image"]
    l1, l4, h4 = level(launcher, 1), level(launcher, 4), level(hub, 4)
    if l1:
        http_c1 = statistics.fmean(l1["latency_per_image"])
        ratios["http_c1_s_per_image"] = http_c1
        if default:
            ratios["http_c1_vs_inproc_default"] = http_c1 / ratios["inproc_default_s_per_image"]
        if single:
            ratios["http_c1_vs_inproc_1thread"] = http_c1 / ratios["inproc_1thread_s_per_image"]
    if l4 and single:
        ratios["c4_vs_machine_limit"] = l4["images_per_s"] / ratios["machine_limit_images_per_s"]
    if l4 and h4:
        ratios["c4_vs_hub_c4"] = l4["images_per_s"] / h4["images_per_s"]
    rapid = res.get("rapidocr")
    if rapid and "passes" in rapid:
        rapid_s = mean_per_image(rapid["passes"])
        ratios["rapidocr_s_per_image"] = rapid_s
        if default:
            ratios["rapidocr_vs_inproc_default"] = rapid_s / ratios["inproc_default_s_per_image"]
        if l1:
            ratios["rapidocr_vs_http_c1"] = rapid_s / ratios["http_c1_s_per_image"]
        if l4:
            ratios["rapidocr_vs_http_c4_throughput"] = rapid_s * l4["images_per_s"]
    if launcher:
        ratios["cold_start_launcher_s"] = launcher["cold_start_s"]
        ratios["all_workers_ready_s"] = launcher.get("all_workers_ready_s")
        workers = [v["peak_rss_mb"] for v in launcher["rss"].values() if v["role"] == "worker"]
        ratios["peak_rss_per_worker_mb"] = max(workers) if workers else None
        ratios["peak_rss_master_mb"] = max((v["peak_rss_mb"] for v in launcher["rss"].values() if v["role"] == "master"), default=None)
    if hub:
        ratios["cold_start_hub_s"] = hub["cold_start_s"]
        ratios["peak_rss_hub_mb"] = max(v["peak_rss_mb"] for v in hub["rss"].values())
    return ratios


TARGETS = [  # key, label, target text, test
    ("http_c1_vs_inproc_default", "HTTP c=1 / in-process (default threads) per image", "≤ 1.05×", lambda v: v <= 1.05),
    ("http_c1_vs_inproc_1thread", "HTTP c=1 / in-process (1 thread = a worker's config)", "≤ 1.05×", lambda v: v <= 1.05),
    ("c4_vs_machine_limit", "throughput c=4 / (cores × 1-thread in-process rate)", "≥ 0.95×", lambda v: v >= 0.95),
    ("c4_vs_hub_c4", "throughput c=4 / plain hub serving c=4", "≥ 1.25×", lambda v: v >= 1.25),
    ("rapidocr_vs_inproc_default", "RapidOCR time / in-process per image", "≥ 2×", lambda v: v >= 2),
    ("rapidocr_vs_http_c1", "RapidOCR time / HTTP c=1 per image", "≥ 2×", lambda v: v >= 2),
    ("rapidocr_vs_http_c4_throughput", "RapidOCR time / HTTP c=4 time per image (throughput)", "≥ 2×", lambda v: v >= 2),
    ("cold_start_launcher_s", "cold start, launcher (to first answer)", "< 6 s", lambda v: v < 6),
]


def report(res: dict) -> str:
    out = []
    m = res["machine"]
    out.append(f"machine: {m['cores']} cores, {m['cpu_model']}, {m['ram_gb']} GB RAM; load average "
               f"{res['load_before']} before, {res['load_after']} after; {res['elapsed_s']:.0f} s")
    noise = ", ".join(f"{name} {p['others_cores']:.2f}" + (f" (+{p['steal_cores']:.2f} stolen)" if p["steal_cores"] >= 0.05 else "")
                      for name, p in res.get("noise", {}).items() if name != "setup")
    out.append(f"other processes' CPU use, in cores of {m['cores']} (the noise): {noise}")
    pages = res["images"]["pages"]
    out.append(f"images: {len(pages)} pages ({', '.join(sorted({p['group'] for p in pages}))}), "
               f"{len(res['images']['lines'])} lines")
    inproc = res.get("inproc", {})
    rows = []
    for key, label in (("default", "in-process, default threads"), ("single", "in-process, 1 thread")):
        if key in inproc:
            r = inproc[key]
            rows.append((f"{label} ({r['threads']})", sum(r["first"]), statistics.median(sum(p) for p in r["passes"]),
                         r["load_s"], r["peak_rss_mb"]))
    if "rapidocr" in res and "passes" in res["rapidocr"]:
        r = res["rapidocr"]
        rows.append((f"RapidOCR {r['version']} (onnxruntime {r['onnxruntime']})", sum(r["first"]),
                     statistics.median(sum(p) for p in r["passes"]), r["load_s"], r["peak_rss_mb"]))
    if rows:
        out.append("")
        out.append(f"{'pipeline (one pass over all pages)':48} {'first pass':>10} {'steady':>8} {'load':>6} {'peak RSS':>9}")
        for label, first, steady, load, rss in rows:
            out.append(f"{label:48} {first:9.2f}s {steady:7.2f}s {load:5.1f}s {rss:7.0f}MB")
    names = [p["name"] for p in pages]
    if "default" in inproc:
        out.append("")
        header = f"{'per image (s, median)':24}" + "".join(f"{n[:11]:>12}" for n in names)
        out.append(header)
        out.append(f"{'in-process default':24}" + "".join(f"{v:12.3f}" for v in per_image_median(inproc['default']['passes'])))
        if "single" in inproc:
            out.append(f"{'in-process 1 thread':24}" + "".join(f"{v:12.3f}" for v in per_image_median(inproc['single']['passes'])))
        for kind in ("launcher", "hub"):
            lv = next((l for l in res.get(kind, {}).get("levels", []) if l["concurrency"] == 1), None)
            if lv:
                out.append(f"{kind + ' HTTP c=1':24}" + "".join(f"{v:12.3f}" for v in lv["latency_per_image"]))
        if "rapidocr" in res and "passes" in res["rapidocr"]:
            out.append(f"{'RapidOCR':24}" + "".join(f"{v:12.3f}" for v in per_image_median(res['rapidocr']['passes'])))
    stage_key = "single" if "stages" in inproc.get("single", {}) else "default"
    if "stages" in inproc.get(stage_key, {}):
        out.append("")
        out.append(f"stage breakdown, ms (in-process, {inproc[stage_key]['threads']} thread(s), median)")
        out.append(f"{'image':16}" + "".join(f"{s:>10}" for s in STAGES) + f"{'total':>10}")
        for name, stages in zip(names, inproc[stage_key]["stages"]):
            out.append(f"{name[:16]:16}" + "".join(f"{stages[s]*1000:10.1f}" for s in STAGES)
                       + f"{sum(stages.values())*1000:10.1f}")
    launcher = res.get("launcher")
    if launcher and launcher.get("modules"):
        out.append("")
        out.append(f"{'module over HTTP, one at a time':32} {'p50 ms':>8} {'p90 ms':>8} {'requests':>9}")
        for module, r in launcher["modules"].items():
            out.append(f"{module:32} {r['p50_s']*1000:8.0f} {r['p90_s']*1000:8.0f} {r['requests']:9d}")
    for kind in ("launcher", "hub"):
        server = res.get(kind)
        if not server:
            continue
        out.append("")
        what = (f"production launcher ({server.get('workers')} workers × {server.get('threads_per_worker')} threads)"
                if kind == "launcher" else "plain hub serving start")
        runs = ", ".join(f"{v:.1f}" for v in server.get("cold_start_runs_s", []))
        out.append(f"ocr_system, {what}: cold start {server['cold_start_s']:.1f} s (median of {runs})"
                   + (f", all workers ready {server['all_workers_ready_s']:.1f} s" if 'all_workers_ready_s' in server else "")
                   + (f", hub install {server['hub_install_s']:.1f} s" if 'hub_install_s' in server else ""))
        out.append(f"{'concurrency':>12} {'images/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'errors':>7}")
        for lv in server["levels"]:
            out.append(f"{lv['concurrency']:12d} {lv['images_per_s']:9.2f} {lv['p50_s']*1000:8.0f} "
                       f"{lv['p90_s']*1000:8.0f} {lv['error_count']:7d}")
        rss = ", ".join(f"{v['role']} {v['peak_rss_mb']:.0f} MB" for v in server["rss"].values())
        out.append(f"peak RSS: {rss}")
    out.append("")
    out.append("texts: " + ", ".join(f"{k} {'identical' if v else 'DIFFERENT'}" for k, v in res["texts_match"].items()))
    ratios = res["ratios"]
    out.append("")
    out.append(f"{'ratio':62} {'measured':>10} {'target':>8}  met")
    for key, label, target, test in TARGETS:
        if ratios.get(key) is not None:
            value = ratios[key]
            shown = f"{value:.1f} s" if key.endswith("_s") else f"{value:.2f}×"
            out.append(f"{label:62} {shown:>10} {target:>8}  {'yes' if test(value) else 'NO'}")
    for key in ("inproc_default_s_per_image", "inproc_1thread_s_per_image", "http_c1_s_per_image",
                "machine_limit_images_per_s", "rapidocr_s_per_image", "all_workers_ready_s", "cold_start_hub_s",
                "peak_rss_per_worker_mb", "peak_rss_master_mb", "peak_rss_hub_mb"):
        if ratios.get(key) is not None:
            out.append(f"  {key} = {ratios[key]:.3f}")
    return "\n".join(out)


def chart(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1, 1.5]})
    for kind, label, style in (("launcher", "production launcher", "o-"), ("hub", "plain hub serving", "s--")):
        if kind in res:
            levels = res[kind]["levels"]
            left.plot([l["concurrency"] for l in levels], [l["images_per_s"] for l in levels], style, label=label)
    ratios = res["ratios"]
    if "machine_limit_images_per_s" in ratios:
        left.axhline(ratios["machine_limit_images_per_s"], color="grey", ls=":", label="cores × 1-thread in-process")
    if "inproc_default_s_per_image" in ratios:
        left.axhline(1 / ratios["inproc_default_s_per_image"], color="tab:green", ls="-.", lw=1,
                     label="in-process, default threads")
    left.set_xscale("log", base=2)
    left.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
    left.set_xlabel("concurrent clients")
    left.set_ylabel("images / s (ocr_system)")
    tops = [l["images_per_s"] for kind in ("launcher", "hub") for l in res.get(kind, {}).get("levels", [])]
    tops += [ratios.get("machine_limit_images_per_s", 0)]
    left.set_ylim(0, max(tops) * 1.12)
    left.legend(fontsize=8, loc="lower right")
    left.set_title("throughput vs concurrency", fontsize=10)
    inproc = res.get("inproc", {})
    key = "single" if "stages" in inproc.get("single", {}) else "default"
    if "stages" in inproc.get(key, {}):
        names = [p["name"] for p in res["images"]["pages"]]
        stages = inproc[key]["stages"]
        bottom = [0.0] * len(names)
        colors = plt.get_cmap("tab10")
        for i, stage in enumerate(STAGES):
            values = [s[stage] * 1000 for s in stages]
            right.barh(names, values, left=bottom, color=colors(i), label=stage)
            bottom = [b + v for b, v in zip(bottom, values)]
        lv = next((l for l in res.get("launcher", {}).get("levels", []) if l["concurrency"] == 1), None)
        if lv:
            right.scatter([v * 1000 for v in lv["latency_per_image"]], names, marker="|", s=200, color="black",
                          zorder=3, label="HTTP c=1")
        right.invert_yaxis()
        right.set_xlabel("ms per image")
        right.set_title(f"stage breakdown (in-process, {inproc[key]['threads']} thread)", fontsize=10)
        right.legend(fontsize=7, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
        right.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)


# --------------------------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about a minute: rendered pages, fewer rounds")
    parser.add_argument("--images", action="append", default=[], help="a folder of images (repeatable)")
    parser.add_argument("--no-shared", action="store_true", help="skip ../shared/images")
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "bench.json"))
    parser.add_argument("--png", default=str(ROOT / "bench-results" / "bench.png"))
    parser.add_argument("--rapidocr-python", help="a python with rapidocr_onnxruntime installed (separate venv)")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--servers", default="launcher,hub", help="launcher,hub or one of them or none")
    parser.add_argument("--skip-inproc", action="store_true")
    parser.add_argument("--skip-modules", action="store_true", help="skip (b), the per-module latencies")
    parser.add_argument("--launcher-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the production launcher only, e.g. OCR_WORKERS=1")
    parser.add_argument("--rounds", type=int, help="steady passes in-process (default 3, quick 2)")
    parser.add_argument("--cold-starts", type=int, help="starts of each server; the median is reported (default 3, quick 1)")
    parser.add_argument("--_inproc", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._inproc:
        inproc_child(json.loads(Path(args._inproc).read_text()))
        return 0
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.http_rounds = 2 if args.quick else 3
    args.cold_starts = max(1, args.cold_starts or (1 if args.quick else 3))
    started = time.perf_counter()
    limit = 90 if args.quick else 600
    budget = lambda: limit - (time.perf_counter() - started)  # noqa: E731

    res = {"machine": machine(), "load_before": [round(v, 2) for v in os.getloadavg()], "quick": args.quick,
           "argv": sys.argv[1:], "ocr_env": {k: v for k, v in os.environ.items() if k.startswith("OCR_")},
           "launcher_env": args.launcher_env, "git": git_state()}
    meter = CpuMeter()
    res["noise"] = meter.phases
    workdir = Path(tempfile.mkdtemp(prefix="ocrhub-bench-"))
    try:
        (workdir / "tmp").mkdir()
        images = prepare_images(args, workdir)
        res["images"] = {key: [{k: v for k, v in item.items() if k != "b64"} for item in items]
                         for key, items in images.items()}
        pages = images["pages"]
        meter.phase("setup")
        print(f"{len(pages)} pages, {len(images['lines'])} lines; work dir {workdir}", flush=True)
        env = clean_env({"TMPDIR": str(workdir / "tmp")})
        res["inproc"] = {}
        if not args.skip_inproc:
            cores = res["machine"]["cores"]
            for key, threads in (("default", cores), ("single", 1)):
                if key == "single" and threads == cores and "default" in res["inproc"]:
                    res["inproc"]["single"] = res["inproc"]["default"]
                    continue
                print(f"in-process pipeline, {threads} thread(s)...", flush=True)
                res["inproc"][key] = run_inproc(pages, threads, args.rounds, 1 if args.quick else 3, env)
                meter.phase(f"in-process {threads} thread(s)")
        if args.rapidocr_python:
            print("RapidOCR...", flush=True)
            try:
                res["rapidocr"] = run_rapidocr(args.rapidocr_python, pages, args.rounds, env)
                meter.phase("RapidOCR")
            except Exception as err:  # noqa: BLE001  optional comparison
                res["rapidocr"] = {"skipped": str(err)[-500:]}
                print(f"RapidOCR skipped: {str(err)[-300:]}")
        for kind in [k for k in args.servers.split(",") if k in ("launcher", "hub")]:
            print(f"{kind} server...", flush=True)
            res[kind] = bench_server(kind, images, args, workdir, budget)
            meter.phase(kind)
        reference = res["inproc"].get("default", {}).get("texts")
        res["texts_match"] = {}
        if reference:
            if "single" in res["inproc"]:
                res["texts_match"]["in-process 1 thread"] = res["inproc"]["single"]["texts"] == reference
            if "stages_texts_match" in res["inproc"]["default"]:
                res["texts_match"]["stage breakdown"] = res["inproc"]["default"]["stages_texts_match"]
            for kind in ("launcher", "hub"):
                lv = next((l for l in res.get(kind, {}).get("levels", []) if l["concurrency"] == 1), None)
                if lv:
                    res["texts_match"][f"{kind} HTTP"] = lv["texts"] == reference
        res["load_after"] = [round(v, 2) for v in os.getloadavg()]
        res["elapsed_s"] = time.perf_counter() - started
        res["ratios"] = compute_ratios(res)
        text = report(res)
        print()
        print(text)
        json_path = Path(args.json)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=1, ensure_ascii=False, default=str))
        print(f"\nJSON: {json_path}")
        try:
            chart(res, Path(args.png))
            print(f"chart: {args.png}")
        except ImportError:
            print("chart skipped: matplotlib is not installed (pip install --no-deps -r requirements-bench.txt)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
