#!/usr/bin/env bash
# Set up, load the demo data into ./demo-pool (SQLite + local files + DuckDB) and start the
# web service on http://127.0.0.1:8000/ (sign in as admin / datenlabor-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DATENLABOR_POOL=${DATENLABOR_POOL:-$PWD/demo-pool}
.venv/bin/datenlabor demo
exec .venv/bin/datenlabor serve --host "${DATENLABOR_HOST:-127.0.0.1}" --port "${DATENLABOR_PORT:-8000}"
