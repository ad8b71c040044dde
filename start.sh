#!/usr/bin/env bash
# One command from a fresh clone to an OCR service on port 9000, from any directory.
#
#   ./start.sh [serve] [--port N]   set up (venv, pinned deps, models, hub install), then serve with
#                                   the production server (ocrhub-serve: async front + inference workers)
#   ./start.sh plain [--port N]     set up, then serve with PaddleHub's own `hub serving start`
#   ./start.sh setup                set up only
#   ./start.sh test [pytest args]   set up, add the test dependencies and a CJK font, run the tests
#
# Every step is skipped when already done, so a second run is serving within seconds.
# Environment: PORT (9000), PYTHON (python3.11, else python3), VENV (<repo>/.venv), HUB_HOME
# (PaddleHub's module store, default ~/.paddlehub), and the OCR_* parameters of the README.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${VENV:-$ROOT/.venv}"
MODULES=(ocr_system ocr_det ocr_cls ocr_rec)
CJK_FONT_PACKAGE=fonts-wqy-microhei

say() { printf '[start.sh] %s\n' "$*" >&2; }

pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return
    fi
  done
  say "Python 3.11 is needed (set PYTHON=/path/to/python3.11)"; exit 1
}

# Install a pinned requirements file once; a stamp holding its hash marks it done.
install_pinned() {
  local file="$1" stamp="$VENV/.installed-$(basename "$1")"
  local sum; sum="$(sha256sum "$file" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    say "installing $(basename "$file") (pinned, --no-deps)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$file"
    echo "$sum" > "$stamp"
  fi
}

setup_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    "$(pick_python)" -m venv "$VENV"
  fi
  install_pinned "$ROOT/requirements.txt"
  # The project itself (editable): its packages and the ocrhub-serve entry point.
  if [ ! -x "$VENV/bin/ocrhub-serve" ] || ! (cd / && "$VENV/bin/python" -c 'import ocrhub.serving, harness') 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
  fi
}

# hub install copies the modules into HUB_HOME; redo it only when their files changed.
install_modules() {
  local store="${HUB_HOME:-$HOME/.paddlehub}/modules" sum name missing=0
  sum="$(cd "$ROOT/modules" && find . -type f -not -path '*/__pycache__/*' | sort | xargs sha256sum | sha256sum)"
  for name in "${MODULES[@]}"; do [ -f "$store/$name/module.py" ] || missing=1; done
  if [ "$missing" = 1 ] || [ "$(cat "$store/.ocrhub-installed" 2>/dev/null)" != "$sum" ]; then
    say "hub install ${MODULES[*]}"
    (cd "$ROOT/modules" && "$VENV/bin/hub" install "${MODULES[@]/#/$ROOT/modules/}" >/dev/null)
    echo "$sum" > "$store/.ocrhub-installed"
  fi
}

setup() {
  setup_venv
  "$VENV/bin/python" "$ROOT/scripts/fetch_models.py"
  install_modules
}

ensure_test_tools() {
  # A CJK font to render test pages with; poppler-utils, whose pdftotext and pdftoppm check searchable PDFs.
  fc-list :lang=zh 2>/dev/null | grep -q . && command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null && return
  local packages=(fontconfig "$CJK_FONT_PACKAGE" poppler-utils)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing what the tests render and read documents with (${packages[*]})"
    apt-get install -y -q "${packages[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q "${packages[@]}" >/dev/null; }
  else
    say "the tests need: sudo apt-get install ${packages[*]}"; exit 1
  fi
}

command="serve"
case "${1:-}" in serve|plain|setup|test) command="$1"; shift ;; esac
export PATH="$VENV/bin:$PATH"

case "$command" in
  setup) setup ;;
  test)
    setup
    for set in mobile v5-mobile; do "$VENV/bin/python" "$ROOT/scripts/fetch_models.py" --set "$set"; done
    install_pinned "$ROOT/requirements-dev.txt"
    ensure_test_tools
    cd "$ROOT" && exec "$VENV/bin/python" -m pytest "$@" ;;
  serve|plain)
    port="${PORT:-9000}"
    if [ "${1:-}" = "--port" ] && [ -n "${2:-}" ]; then port="$2"; fi
    setup
    say "serving ${MODULES[*]} on port $port"
    if [ "$command" = plain ]; then
      exec "$VENV/bin/hub" serving start -m "${MODULES[@]}" -p "$port"
    fi
    PORT="$port" exec "$VENV/bin/ocrhub-serve" ;;
esac
