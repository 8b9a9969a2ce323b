#!/usr/bin/env bash
# The run command: installs the host if needed and starts ComfyUI with the pack and its workflows.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
eval "$(bash "$ROOT/scripts/setup_host.sh" | grep -E '^(COMFYUI|PYTHON)=')"
PORT=${PORT:-8188}
# the example workflows appear in ComfyUI's workflow browser
mkdir -p "$COMFYUI/user/default/workflows"
cp "$ROOT"/workflows/*.json "$COMFYUI/user/default/workflows/" 2>/dev/null || true
if ! ls "$COMFYUI"/models/checkpoints/*.safetensors "$COMFYUI"/models/checkpoints/*.ckpt >/dev/null 2>&1; then
  echo "No checkpoint found: put an SD1.5 checkpoint (e.g. v1-5-pruned-emaonly.safetensors)"
  echo "into $COMFYUI/models/checkpoints/ and reload the page."
fi
dev=()
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || dev=(--cpu)
echo "ComfyUI with DragNoise: http://127.0.0.1:$PORT  (Workflows menu: dragnoise_*.json)"
cd "$COMFYUI"
exec "$PYTHON" main.py --listen 127.0.0.1 --port "$PORT" --disable-auto-launch "${dev[@]}"
