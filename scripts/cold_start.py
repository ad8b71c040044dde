"""Cold start of an image: seconds from `podman run` (or `docker run`) to /health 200 and to the first
OCR answer (a rendered line to /predict/ocr_system), each run in a new container; median and range.

    .venv/bin/python scripts/cold_start.py localhost/ocrhub:test-lean --runs 3
    .venv/bin/python scripts/cold_start.py localhost/ocrhub:test-lean -- --read-only --tmpfs /tmp --memory 1g --cpus 1

Options after ``--`` go to the run command. The container publishes on a free loopback port and is
removed after each run. With podman as root here, set CONTAINERS_CONF as scripts/container_test.sh does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import requests

from harness import testimages
from harness.load import image_body
from harness.photos import encode
from harness.servers import free_port
from harness.stats import summary


def one_run(tool: str, image: str, options: list[str], body: bytes) -> tuple[float, float]:
    port, name = free_port(), f"ocrhub-cold-{time.monotonic_ns()}"
    started = time.monotonic()
    command = [tool, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9000", *options, image]
    subprocess.run(command, check=True, capture_output=True)
    try:
        url, ready = f"http://127.0.0.1:{port}", None
        while time.monotonic() - started < 120:
            try:
                if ready is None and requests.get(url + "/health", timeout=1).status_code == 200:
                    ready = time.monotonic() - started
                if ready is not None:
                    headers = {"Content-Type": "application/json"}
                    answer = requests.post(url + "/predict/ocr_system", data=body, headers=headers, timeout=30)
                    assert answer.json()["status"] == "000", answer.text
                    return ready, time.monotonic() - started
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"{image} did not answer within 120 s")
    finally:
        subprocess.run([tool, "rm", "-f", "-t", "0", name], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, options = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tool", default="podman", help="podman or docker")
    args = parser.parse_args(ours)
    line = testimages.render_line("line", "Hello World", 32, testimages.find_cjk_font())
    body = image_body(encode("line", line.image))
    runs = [one_run(args.tool, args.image, options, body) for _ in range(args.runs)]
    result = {name: summary([run[index] for run in runs]) for index, name in enumerate(("health_s", "answer_s"))}
    print(json.dumps({"image": args.image, "options": options, "runs": runs, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
