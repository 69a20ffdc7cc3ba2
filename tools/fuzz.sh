#!/usr/bin/env bash
# Builds the libFuzzer targets of test/fuzz with clang (ASan + UBSan) in their own build
# directory and runs each for a bounded time from a seed corpus of the example manifests.
# Exits non-zero on any crash, sanitizer report, leak, timeout or broken invariant; the
# input that did it is left under $FUZZ_BUILD_DIR/artifacts/ (replay: ./FUZZER FILE).
# Environment: FUZZ_SECONDS (default 30) per fuzzer, FUZZ_BUILD_DIR (default build-fuzz),
#              FUZZ_TARGETS (default: both fuzzers), KAITO_EXAMPLES_DIR (Kaito's examples,
#              default ../shared/kaito-examples, used when present).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=(${FUZZ_TARGETS:-manifest_codec_fuzzer label_selector_fuzzer})
EXAMPLES_DIR=${KAITO_EXAMPLES_DIR:-../shared/kaito-examples}

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ is missing (tools/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi

start=$(date +%s)
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DKAITO_FUZZ=ON "${launcher[@]}" >/dev/null
fi
cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${TARGETS[@]}"
echo "fuzz: built in $(($(date +%s) - start))s"

# Seeds, copied at run time: every example manifest, and the selector lines one per file.
seeds="$BUILD_DIR/seeds"
rm -rf "$seeds"
mkdir -p "$seeds/manifest_codec_fuzzer" "$seeds/label_selector_fuzzer"
n=0
for f in examples/*.yaml $(find "$EXAMPLES_DIR" -name '*.yaml' 2>/dev/null | sort); do
  n=$((n + 1))
  cp "$f" "$seeds/manifest_codec_fuzzer/seed-$n.yaml"
done
n=0
while IFS= read -r line; do
  n=$((n + 1))
  printf '%s' "$line" > "$seeds/label_selector_fuzzer/seed-$n"
done < test/fuzz/label_selector_seeds.txt

mkdir -p "$BUILD_DIR/artifacts"
status=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD_DIR/corpus/$t"  # What the fuzzer learns, kept between runs of this dir.
  mkdir -p "$corpus"
  dict="test/fuzz/${t%_fuzzer}.dict"
  echo "fuzz: $t for ${FUZZ_SECONDS}s"
  if ! "$BUILD_DIR/bin/$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      -max_len=16384 -dict="$dict" -artifact_prefix="$BUILD_DIR/artifacts/$t-" \
      -print_final_stats=1 "$corpus" "$seeds/$t" >"$BUILD_DIR/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; the last lines of $BUILD_DIR/$t.log:" >&2
    tail -n 40 "$BUILD_DIR/$t.log" >&2
    status=1
  else
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$BUILD_DIR/$t.log" |
      sed "s/^/fuzz: $t /"
  fi
done
echo "fuzz: done in $(($(date +%s) - start))s"
exit $status
