#!/usr/bin/env bash
# Prepares what bench/run_gpu_redrag.sh needs on a lent GPU machine, small enough to travel with the
# working tree (the device tool's limit is 64 MiB): ComfyUI 0.3.75 and 0.33 sources without their
# caches, tests, blueprints and non-Python text-encoder data (.devhost/075, .devhost/033; the hosts
# come from scripts/setup_host.sh), and the comfy-aimdo wheel 0.33's main.py imports (.whl/), which the
# GPU machine's image lacks, with SQLAlchemy. Both folders are git-ignored locally (.git/info/exclude).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
for pair in "075:.host/ComfyUI" "033:.host-0.33/ComfyUI"; do
  dst=.devhost/${pair%%:*}; src=${pair#*:}
  [ -f "$src/main.py" ] || { echo "skip $dst: no $src (run scripts/setup_host.sh)"; continue; }
  rm -rf "$dst"; mkdir -p .devhost
  cp -a "$src" "$dst"
  rm -rf "$dst/custom_nodes/comfyui-dragnoise" "$dst/tests-unit" "$dst/tests" "$dst/blueprints" "$dst/.git"
  find "$dst/comfy/text_encoders" -type f ! -name "*.py" -delete
  find "$dst" -name __pycache__ -type d -prune -exec rm -rf {} +
done
# 0.33's main.py imports comfy-aimdo (DynamicVRAM) and SQLAlchemy (its asset database) at start-up
version=$(sed -n 's/^comfy-aimdo==//p' .host-0.33/ComfyUI/requirements.txt 2>/dev/null || true)
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "comfy-aimdo${version:+==$version}" "sqlalchemy==${DRAGNOISE_SQLALCHEMY:-2.1.9}" "greenlet==${DRAGNOISE_GREENLET:-3.5.6}"
exclude=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$exclude")"
for d in /.devhost/ /.whl/; do grep -qx "$d" "$exclude" 2>/dev/null || echo "$d" >> "$exclude"; done
du -sh .devhost/* .whl
