#!/usr/bin/env bash
# Installs what is missing, builds, and starts the control plane in dev mode: the
# embedded SQLite store under ./.kaito, gRPC on 127.0.0.1:50051, metrics on :8080.
# Then, in another terminal:  build/bin/kaitoctl apply -f <manifest.yaml>
# Extra arguments go to kaito-server (e.g. --listen 127.0.0.1:0 --port-file p).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
exec "$BUILD_DIR/bin/kaito-server" --dev --data-dir "${KAITO_DATA_DIR:-.kaito}" "$@"
