"""Shared fixtures: rendered images with known text, the default config, and a real hub serving server."""

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from ocrhub import testimages
from ocrhub.config import load_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODULES = ["ocr_system", "ocr_det", "ocr_cls", "ocr_rec"]


def normalized(text: str) -> str:
    """Ground truth ignores spaces: PP-OCR often drops the space between words, never a character."""
    return "".join(text.split())


def covers(found, ink, slack: int = 6, margin: int = 12) -> bool:
    """A detected box (x0, y0, x1, y1) covers a line's ink: no side cuts more than ``slack`` pixels
    into it (DB boxes may clip a descender) nor lies more than ``margin`` pixels outside it."""
    inward = (found[0] - ink[0], found[1] - ink[1], ink[2] - found[2], ink[3] - found[3])
    return all(-margin <= side <= slack for side in inward)


def rect(region) -> tuple:
    """Axis-aligned bounds of a 4-point text_region."""
    points = np.asarray(region)
    return (*points.min(axis=0).tolist(), *points.max(axis=0).tolist())


def b64(image: np.ndarray, ext: str = ".png") -> str:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return base64.b64encode(data.tobytes()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120, ok=lambda r: True) -> list[int]:
    """Poll ``url`` until ``ok(response)``; returns the HTTP codes seen on the way."""
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            response = requests.get(url, timeout=2)
            seen.append(response.status_code)
            if ok(response):
                return seen
        except (requests.ConnectionError, requests.Timeout):  # not listening, or a worker still importing
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


class Server:
    """``scripts/serve.py`` (the production launcher) on a free port, started from /."""

    def __init__(self, data_dir: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OCR_", "HUB_HOME", "PROMETHEUS"))}
        env = {"OCR_DATA_DIR": str(data_dir), "OCR_WORKERS": "2", "PORT": str(self.port), **env}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen([sys.executable, ROOT / "scripts" / "serve.py"], env={**clean, **env},
                                            cwd="/", stdout=log, stderr=subprocess.STDOUT)
        ready_workers = set()

        def all_ready(response) -> bool:  # each worker loads its own modules: wait for every one
            if response.status_code == 200:
                ready_workers.add(response.json()["pid"])
            return len(ready_workers) == int(env["OCR_WORKERS"])

        try:
            self.health_codes = wait_for_http(self.url + "/health", self.process, ok=all_ready)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One production server for the session: 2 workers, small limits so the tests can reach them."""
    instance = Server(tmp_path_factory.mktemp("server"), OCR_MAX_BODY_BYTES=str(4 * 1024 * 1024),
                      OCR_MAX_IMAGES="8", OCR_MAX_IMAGE_PIXELS="20000000")
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def font() -> str:
    return testimages.find_cjk_font()


@pytest.fixture(scope="session")
def pages(font):
    return {sample.name: sample for sample in testimages.pages(font)}


@pytest.fixture(scope="session")
def lines(font):
    return testimages.lines(font)


@pytest.fixture(scope="session")
def config():
    return load_config({}, environ={})


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory):
    """A private PaddleHub home with the four modules installed by `hub install`, as a user does."""
    home = tmp_path_factory.mktemp("hub_home")
    env = {**os.environ, "HUB_HOME": str(home)}
    subprocess.run([BIN / "hub", "install", *[ROOT / "modules" / m for m in MODULES]],
                   env=env, check=True, capture_output=True, cwd="/")
    return home


@pytest.fixture(scope="session")
def hub_server(hub_home, tmp_path_factory):
    """`hub serving start -m ocr_system ocr_det ocr_cls ocr_rec -p <free port>`, started from /."""
    port = free_port()
    log = (tmp_path_factory.mktemp("logs") / "hub_serving.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    process = subprocess.Popen([BIN / "hub", "serving", "start", "-m", *MODULES, "-p", str(port)],
                               env={**env, "HUB_HOME": str(hub_home)}, cwd="/", stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
