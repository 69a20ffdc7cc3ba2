#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest.
# Exits non-zero on any failure. Extra arguments go to ctest (e.g. -R Store).
# A full run (no arguments) then runs tools/fuzz.sh (KAITO_SKIP_FUZZ=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" --timeout 300 "$@"
# Then the fuzzers, for a bounded time (FUZZ_SECONDS each), on a full run only: not when
# ctest is given a part to run, nor with KAITO_SKIP_FUZZ=1.
if [ $# -eq 0 ] && [ "${KAITO_SKIP_FUZZ:-0}" != 1 ]; then
  tools/fuzz.sh
fi
