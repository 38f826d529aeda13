#!/usr/bin/env bash
# Test-only tools for the browser tests: Debian's chromium (never a downloaded browser) and
# axe-core from npm (package-lock.json). Idempotent; does nothing when both are present.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n apt-get install -y -q chromium >/dev/null
  else
    echo "chromium is missing: install Debian's package 'chromium' for the browser tests" >&2
  fi
fi
stamp=node_modules/.datenlabor-installed
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/axe-core/axe.min.js ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if command -v npm >/dev/null 2>&1; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "$want" > "$stamp"
  else
    echo "npm is missing: the accessibility checks need axe-core from npm (package.json)" >&2
  fi
fi
