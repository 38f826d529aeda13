#!/usr/bin/env bash
# Set up and run the whole test suite (SQLite and PostgreSQL metadata stores), lint and types.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-browser.sh
export DATENLABOR_TEST_POSTGRES_URL=${DATENLABOR_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -n 2 "$@"
