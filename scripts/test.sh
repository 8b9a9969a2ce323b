#!/usr/bin/env bash
# The test command: sets up the host (idempotent) and runs the whole suite.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup_host.sh" --browser
PY=${DRAGNOISE_HOST:-$ROOT/.host}/venv/bin/python
cd "$ROOT"
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
