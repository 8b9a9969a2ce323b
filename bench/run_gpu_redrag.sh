#!/usr/bin/env bash
# Issues 28 and 24 on a lent GPU, in one call:
#   bash bench/run_gpu_redrag.sh OUTDIR            # everything (about 10-12 minutes on an H100)
#   DRAGNOISE_GPU_STEPS=check bash bench/run_gpu_redrag.sh OUTDIR    # step 1 only (about 6 minutes)
# 1. check (issue 28, bench/gpu_check.py -> OUTDIR/gpu_check.{md,json}): the drag on ComfyUI 0.33 with
#    DynamicVRAM on (its CUDA default) and off, and on 0.3.75, each started by its own main.py; eager and
#    with CUDA graphs, with a mask and the stop rule; Cancel mid-optimization and out of memory, with the
#    memory before and after. Exits non-zero on any mismatch beyond the GPU's own run-to-run spread.
# 2. redrag (issue 24): re-drag through ComfyUI's executor, SD1.5 architecture, 512 px, fp16, 60
#    iterations: eager and with the optimization replayed as a CUDA graph (bench/redrag.py ->
#    OUTDIR/redrag.json), and the same with --fast (OUTDIR/redrag_fast.json);
# 3. sdxl: SDXL at 1024 px (bench/run.py --model sdxl -> OUTDIR/sdxl_1024.json).
# Uses the machine's python and torch. ComfyUI's sources: .devhost/033 and .devhost/075 (made by
# scripts/devhost.sh, small enough to carry), else .host-0.33/ComfyUI and .host/ComfyUI. 0.33's main.py
# needs comfy-aimdo and SQLAlchemy, which the GPU machine's image lacks (scripts/devhost.sh downloads their
# wheels into .whl/); packages the check never uses are stubbed where absent.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/out}
STEPS=${DRAGNOISE_GPU_STEPS:-check,redrag,sdxl}
mkdir -p "$OUT"
PY=${PYTHON:-$(command -v python3 || command -v python)}
cd "$ROOT"
if ls .whl/*.whl >/dev/null 2>&1 && ! "$PY" -c 'import comfy_aimdo, sqlalchemy' 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/dragnoise-site .whl/*.whl \
    && export PYTHONPATH=/tmp/dragnoise-site${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'; } \
  2>&1 | tee "$OUT/env.txt"
OLD=$ROOT/.devhost/075; [ -f "$OLD/main.py" ] || OLD=$ROOT/.host/ComfyUI
status=0
if [[ $STEPS == *check* ]]; then
  timeout 560 "$PY" bench/gpu_check.py --out "$OUT" 2>&1 | grep -v "it/s]" | tee "$OUT/gpu_check.log" || status=1
fi
if [[ $STEPS == *redrag* ]]; then
  COMFYUI_PATH=$OLD timeout 300 "$PY" bench/redrag.py --device cuda --stub-missing --faults --json "$OUT/redrag.json" \
    2>&1 | grep -v "it/s]" | tee "$OUT/redrag.md" || status=1
  COMFYUI_PATH=$OLD timeout 150 "$PY" bench/redrag.py --device cuda --stub-missing --redrags 2 --comfy-args=--fast \
    --json "$OUT/redrag_fast.json" 2>&1 | grep -v "it/s]" | tee "$OUT/redrag_fast.md" || status=1
fi
if [[ $STEPS == *sdxl* ]]; then
  COMFYUI_PATH=$OLD timeout 240 "$PY" bench/run.py --model sdxl --sizes 1024 --device cuda --stub-missing \
    --json "$OUT/sdxl_1024.json" 2>&1 | tee "$OUT/sdxl.md" || status=1
fi
exit $status
