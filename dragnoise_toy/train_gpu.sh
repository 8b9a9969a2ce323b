#!/usr/bin/env bash
# Train several toy-model variants at once on one CUDA GPU, then measure each with bench/accuracy.py.
#   bash dragnoise_toy/train_gpu.sh OUTDIR [SECONDS of UNet training per variant, default 300]
# Needs python3 with torch and ComfyUI's comfy/ at $COMFYUI_PATH (default .host/ComfyUI): no internet.
# The variants share the GPU (each sets its step count from its own speed, logged in train_log.json);
# the scene pools are rendered once, on every core. OUTDIR gets one <variant>.tar per variant
# (weights, configuration, training log) and results.tar (training output, accuracy JSON and logs).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?OUTDIR}; BUDGET=${2:-300}
mkdir -p "$OUT" /tmp/toy/logs
export COMFYUI_PATH=${COMFYUI_PATH:-$ROOT/.host/ComfyUI} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
# smaller settings for a dry run on a CPU: DEVICE=cpu SCENES=500 CASES=2 WORKERS=2
DEVICE=${DEVICE:-cuda} SCENES=${SCENES:-12000} CASES=${CASES:-60} WORKERS=${WORKERS:-16}
cd "$ROOT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; "$PY" -c 'import torch; print("torch", torch.__version__)'; nproc; } > /tmp/toy/logs/env.txt 2>&1

COMMON="--device $DEVICE --time-budget $BUDGET --skip-drop 0 --model-channels 64 --channel-mult 1,2
        --vae-from dragnoise_toy/weights --scenes $SCENES --pairs $SCENES --two 0.3 --workers $WORKERS
        --unet-batch 128 --unet-steps 100000"
# the pools once (the first variant's arguments), then all variants read them
for range in 0.05,0.3 0.01,0.3; do
  $PY -c "
from dragnoise_toy.train import cached_latent_pools
lat, pairs = cached_latent_pools('/tmp/toy/pools_$range.pt', $SCENES, $SCENES, 0, $WORKERS, 0.3, ($range))
print('pools', ($range), tuple(lat.shape), tuple(pairs[0].shape))" >> /tmp/toy/logs/pools.txt 2>&1
done

declare -A VARIANT=(
  [a_swap06]="--swap 0.6 --lr 1e-3"
  [b_swap06_noise05]="--swap 0.6 --bn-noise 0.5 --lr 1e-3"
  [c_swap06_noise10]="--swap 0.6 --bn-noise 1.0 --lr 1e-3"
  [d_swap08_noise05]="--swap 0.8 --bn-noise 0.5 --lr 1e-3"
  [e_shipped_noise05]="--swap 0.7 --bn-noise 0.5 --lr 5e-4 --init-from dragnoise_toy/weights"
  [f_short_drags_noise05]="--swap 0.6 --bn-noise 0.5 --lr 1e-3 --drag-range 0.01,0.3"
)
for v in "${!VARIANT[@]}"; do
  # shellcheck disable=SC2086
  range=$([[ ${VARIANT[$v]} == *drag-range* ]] && echo 0.01,0.3 || echo 0.05,0.3)
  $PY -m dragnoise_toy.train $COMMON ${VARIANT[$v]} --pool-cache /tmp/toy/pools_$range.pt --out /tmp/toy/$v \
    > /tmp/toy/logs/train_$v.txt 2>&1 &
done
wait
for v in "${!VARIANT[@]}"; do
  [ -f /tmp/toy/$v/toy_unet.safetensors ] || continue
  for lr in 0.01 0.05; do
    cases=$([ $lr = 0.01 ] && echo "$CASES" || echo $((CASES / 3)))
    DRAGNOISE_TOY_WEIGHTS=/tmp/toy/$v timeout ${EVAL_SECONDS:-150} $PY bench/accuracy.py --device "$DEVICE" --cases $cases --lr $lr \
      --methods reconstruction,dragnoise,oracle --json /tmp/toy/logs/acc_${v}_lr$lr.json \
      > /tmp/toy/logs/acc_${v}_lr$lr.txt 2>&1 &
  done
done
wait
for v in "${!VARIANT[@]}"; do
  [ -d /tmp/toy/$v ] && tar -C /tmp/toy -cf "$OUT/$v.tar" --exclude='taesd_*' "$v"
done
tar -C /tmp/toy -czf "$OUT/results.tar.gz" logs
grep -h "unet_steps_done\|ms a step" /tmp/toy/logs/train_*.txt | cut -c1-200
for f in /tmp/toy/logs/acc_*.txt; do echo "== $f"; grep "^| \(dragnoise\|oracle\|reconstruction\)" "$f"; tail -3 "$f" | cut -c1-300; done
