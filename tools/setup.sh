#!/usr/bin/env bash
# Installs every Debian package that building and testing need, then configures and builds.
# Idempotent: when everything is present it only runs the (incremental) build.
# Environment: BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo),
#              KAITO_SANITIZE=1 for an ASan+UBSan build, KAITO_SKIP_BUILD=1 to only install.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libyaml-cpp-dev libcurl4-openssl-dev libssl-dev libgtest-dev libgmock-dev libsqlite3-dev sqlite3
  prometheus-cpp-dev libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  python3-grpcio python3-protobuf grpc-proto curl prometheus
  clang libclang-rt-14-dev
  python3-kubernetes
  podman runc busybox-static docker-registry
  etcd-server etcd-client golang-etcd-server-dev
)
# kubectl for the Kubernetes shim's tests: the machine's own when it has one (any recent
# release), else Debian's.
if ! command -v kubectl >/dev/null 2>&1; then PACKAGES+=(kubernetes-client); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q || true
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ "${KAITO_SKIP_BUILD:-0}" = 1 ] && exit 0

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
extra=()
if [ "${KAITO_SANITIZE:-0}" = 1 ]; then extra+=(-DKAITO_SANITIZE=ON); fi
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache "${extra[@]}"
fi
cmake --build "$BUILD_DIR" -j"$(nproc)"
