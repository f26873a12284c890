#!/usr/bin/env bash
# Runs every test: the release build's unit and end-to-end tests (CTest), the unit tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer, and each fuzz target for a short time
# from its committed seed corpus (FUZZ_SECONDS, default 60).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
JOBS=$(nproc)
export BILLION_SMOLLM2_GGUF="${BILLION_SMOLLM2_GGUF:-${BILLION_HOME:-$HOME/.cache/billion}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

echo "== release build: all tests"
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 900

# This machine's table is AVX-512's where the CPU has it; the issue's reference machine (Zen 3)
# and many users' machines run the AVX2 table, whose weight layouts differ (F16/BF16 re-laid in runs of
# four rows): the model-level tests again with it.
if grep -qw avx2 /proc/cpuinfo && grep -qw avx512f /proc/cpuinfo; then
  echo "== release build: model-level tests with the AVX2 kernel table"
  BILLION_KERNELS=avx2 ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 900 \
    -R "Engine|KvConsistency|Speculative|WeightMemory|Merge|Peft|Lora|GgufToGguf|HfToGguf"
fi

echo "== sanitizers (ASan + UBSan, clang): unit tests, then the fuzz targets of the same build"
# One clang build serves both: libFuzzer's coverage instrumentation does not change results, and
# building once keeps CI well inside its time.
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBILLION_SANITIZE=ON -DBILLION_FUZZ=ON -DBILLION_BENCH=OFF >/dev/null
cmake --build build-asan -j"$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$JOBS" -L unit --timeout 1800 \
  -E "SmolLM2|RealModel|QuantQuality"  # the real-model runs are minutes each under ASan; the release pass covers them

echo "== fuzzing (libFuzzer, ${FUZZ_SECONDS:-60} s per target)"
for target in build-asan/fuzz/fuzz_*; do
  name=$(basename "$target")
  corpus_seed="fuzz/corpus/${name#fuzz_}"
  work="build-asan/fuzz-corpus-${name#fuzz_}"
  mkdir -p "$work"
  echo "-- $name"
  "$target" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 "$work" "$corpus_seed" 2>&1 | tail -n 12
done
echo "test.sh: all passed"
