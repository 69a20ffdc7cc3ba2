#!/usr/bin/env bash
# Installs what is missing, builds, and starts the control plane in dev mode: the
# embedded SQLite store under ./.kaito, gRPC on 127.0.0.1:50051, metrics on :8080, and
# beside it kaito-kube-shim on 127.0.0.1:6443 with a kubeconfig for it in
# .kaito/kubeconfig (KAITO_KUBE_SHIM=0: no shim).
# Then, in another terminal:  build/bin/kaitoctl apply -f <manifest.yaml>
#                        or:  KUBECONFIG=.kaito/kubeconfig kubectl apply -f <manifest.yaml>
# Extra arguments go to kaito-server (e.g. --listen 127.0.0.1:0 --port-file p).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
DATA_DIR=${KAITO_DATA_DIR:-.kaito}
mkdir -p "$DATA_DIR"
if [ "${KAITO_KUBE_SHIM:-1}" = 1 ] && [ $# = 0 ]; then
  cat > "$DATA_DIR/kubeconfig" <<'KUBECONFIG'
apiVersion: v1
kind: Config
clusters:
- name: kaito-dev
  cluster:
    server: http://127.0.0.1:6443
contexts:
- name: kaito-dev
  context:
    cluster: kaito-dev
    namespace: default
    user: dev
current-context: kaito-dev
users:
- name: dev
  user: {}
KUBECONFIG
  "$BUILD_DIR/bin/kaito-kube-shim" --server 127.0.0.1:50051 --listen 127.0.0.1:6443 \
    --metrics-listen "" &
  shim=$!
  trap 'kill $shim 2>/dev/null || true' EXIT
  echo "run: kaito-kube-shim on 127.0.0.1:6443; KUBECONFIG=$DATA_DIR/kubeconfig kubectl get workspace"
fi
"$BUILD_DIR/bin/kaito-server" --dev --data-dir "$DATA_DIR" "$@"
