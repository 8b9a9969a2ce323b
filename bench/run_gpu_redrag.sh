#!/usr/bin/env bash
# Issue 24 on a lent GPU, in one call (about 6-8 minutes on an H200):
#   bash bench/run_gpu_redrag.sh OUTDIR
# 1. re-drag through ComfyUI's executor, SD1.5 architecture, 512 px, fp16, 60 iterations: eager and with
#    the optimization replayed as a CUDA graph, the first drag, Cancel and out-of-memory checks
#    (bench/redrag.py -> OUTDIR/redrag_h200.json; the engine check compares eager and graph results);
# 2. the same re-drag with --fast, to say which ComfyUI options keep the capture working;
# 3. SDXL at 1024 px (bench/run.py --model sdxl -> OUTDIR/sdxl_1024.json): iteration in forwards,
#    inversion, propagation, whole-edit peak memory against the meta-device count.
# Uses the machine's python and torch; ComfyUI's source comes from $COMFYUI_PATH (default .host/ComfyUI,
# carried along); packages the timing never uses are stubbed where absent (--stub-missing).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/out}
mkdir -p "$OUT"
export COMFYUI_PATH=${COMFYUI_PATH:-$ROOT/.host/ComfyUI}
PY=${PYTHON:-$(command -v python3 || command -v python)}
cd "$ROOT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'; } \
  2>&1 | tee "$OUT/env.txt"
status=0
timeout 300 "$PY" bench/redrag.py --device cuda --stub-missing --faults --json "$OUT/redrag_h200.json" \
  2>&1 | grep -v "it/s]" | tee "$OUT/redrag.md" || status=1
timeout 150 "$PY" bench/redrag.py --device cuda --stub-missing --redrags 2 --comfy-args "--fast" \
  --json "$OUT/redrag_h200_fast.json" 2>&1 | grep -v "it/s]" | tee "$OUT/redrag_fast.md" || status=1
timeout 240 "$PY" bench/run.py --model sdxl --sizes 1024 --device cuda --stub-missing --json "$OUT/sdxl_1024.json" \
  2>&1 | tee "$OUT/sdxl.md" || status=1
exit $status
