#!/usr/bin/env bash
# Creates .venv and installs the toolkit into it. Torch comes first, pinned to the CPU wheel, so that
# the project's torch range installs nothing more (a bare `torch` would pull a multi-GB CUDA build).
# Usage: bash scripts/setup.sh [EXTRAS]   e.g. bash scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
extras=${1:-}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/pip install --quiet -e "$spec"
# The tests open `nas report` pages in headless Chromium (Debian's package). Installed here where apt-get
# works (as root, or with password-less sudo); elsewhere that test skips and says why.
if [[ ",$extras," == *",test,"* ]] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
    && command -v apt-get >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); elif sudo -n true 2>/dev/null; then apt=(sudo -n apt-get); else apt=(); fi
  if [ ${#apt[@]} -eq 0 ] || ! { "${apt[@]}" install -y -q chromium >/dev/null 2>&1 \
      || { "${apt[@]}" update -q >/dev/null 2>&1 && "${apt[@]}" install -y -q chromium >/dev/null 2>&1; }; }; then
    echo "setup: chromium not installed (apt-get install chromium failed, or needs root);" \
      "the browser test of nas report will skip" >&2
  fi
fi
