#!/usr/bin/env bash
# Set up, load the demo data into ./demo-pool (SQLite + local files + DuckDB) and show it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DATENLABOR_POOL=${DATENLABOR_POOL:-$PWD/demo-pool}
exec .venv/bin/datenlabor demo
