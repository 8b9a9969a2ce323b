#!/usr/bin/env bash
# Run the benchmark on a CUDA machine that has python + torch but no internet.
#   bash bench/run_gpu.sh OUTDIR [run.py args, default --sizes 256,512]
# Needs ComfyUI's comfy/ and node_helpers.py at $COMFYUI_PATH (default .host/ComfyUI).
# Installs nothing from the internet: einops/psutil come from .host/bench-wheels when
# absent; ComfyUI imports the benchmark never runs are stubbed (--stub-missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/out}; shift || true
mkdir -p "$OUT"
export COMFYUI_PATH=${COMFYUI_PATH:-$ROOT/.host/ComfyUI}
PY=${PYTHON:-$(command -v python3 || command -v python)}
cd "$ROOT"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
  for m in torch numpy einops psutil safetensors transformers tokenizers scipy torchsde PIL yaml tqdm torchvision; do
    "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('$m') is None)" && echo "have $m" || echo "MISSING $m"
  done
} 2>&1 | tee "$OUT/env.txt"
for m in einops psutil; do
  if ! "$PY" -c "import $m" 2>/dev/null && [ -d "$ROOT/.host/bench-wheels" ]; then
    "$PY" -m pip install -q --no-index --find-links "$ROOT/.host/bench-wheels" "$m" \
      || "$PY" -m pip install -q --no-index --target "$ROOT/.host/bench-site" --find-links "$ROOT/.host/bench-wheels" "$m"
  fi
done
export PYTHONPATH="$ROOT/.host/bench-site${PYTHONPATH:+:$PYTHONPATH}"
[ $# -gt 0 ] || set -- --sizes 256,512
"$PY" bench/run.py --device cuda --stub-missing --json "$OUT/bench.json" "$@" 2>&1 | tee "$OUT/bench.md"
