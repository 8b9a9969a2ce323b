#!/usr/bin/env bash
# The test command: sets up the host (idempotent) and runs the whole suite.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
setup=$(bash "$ROOT/scripts/setup_host.sh" --browser)
echo "$setup"
# the tests load the ComfyUI the host was built with (an unpacked archive lives in the host folder)
export COMFYUI_PATH=$(sed -n 's/^COMFYUI=//p' <<<"$setup")
PY=${DRAGNOISE_HOST:-$ROOT/.host}/venv/bin/python
cd "$ROOT"
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
