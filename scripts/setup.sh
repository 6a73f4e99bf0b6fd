#!/usr/bin/env bash
# Create or reuse .venv and install the project into it; install ffmpeg and espeak-ng when absent.
# Fast when nothing changed: the install is skipped while .venv/.install-stamp matches pyproject.toml.
#   scripts/setup.sh [more Debian packages]   (make test adds chromium, for the report check)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
system_packages=(ffmpeg espeak-ng "$@")
missing=()
for tool in "${system_packages[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]}. Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

stamp=.venv/.install-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "setup: installing the project into .venv (first time: several minutes, torch is large)"
.venv/bin/python -m pip install --quiet --upgrade "pip>=24"
# py-feat needs torchvision; these two releases are the pair that import together (CUDA builds, run on CPU too).
.venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -c "from feat import Detectorv2; import opensmile, prefect, duckdb, dvc, mediapipe, sentence_transformers"
echo "$want" > "$stamp"
echo "setup: done"
