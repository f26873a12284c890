#!/usr/bin/env bash
# Prepares .devpack/ (ignored by git) for a run of tools/gpu_checks.sh on a GPU machine that has
# the CUDA driver, cuBLAS and python3 with torch/transformers but not our Debian libraries: the
# stripped binaries of build/, every shared library they load that is not glibc or CUDA's (xz
# tarball), the target models' config.json files and the ten default MMLU subjects and HumanEval
# from ../shared/data (copied for the run only, never committed).
#   tools/gpu_pack.sh [build-dir]      (default build; needs the CUDA backend ON)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SHARED=../shared
PACK=.devpack
grep -qx '/.devpack/' .git/info/exclude 2>/dev/null || echo '/.devpack/' >> .git/info/exclude
rm -rf "$PACK" && mkdir -p "$PACK/bin" "$PACK/lib" "$PACK/configs" "$PACK/data/mmlu/dev" "$PACK/data/mmlu/test" "$PACK/data/humaneval"
for b in "$BUILD/billion" "$BUILD/tests/test_cuda" "$BUILD/bench/bench_engine"; do
  strip -o "$PACK/bin/$(basename "$b")" "$b"
done
for b in "$PACK"/bin/*; do ldd "$b"; done | awk '/=>/ {print $3}' | sort -u |
  grep -v -E 'lib(c|m|dl|rt|pthread|gcc_s|stdc\+\+|cublas|cublasLt|cudart)\.so|ld-linux' | while read -r lib; do cp -L "$lib" "$PACK/lib/"; done
tar -C "$PACK" -cJf "$PACK/lib.tar.xz" lib && rm -rf "$PACK/lib"
for m in tinyllama llama3.2-1b stablelm pythia-1b; do mkdir -p "$PACK/configs/$m" && cp "$SHARED/models/$m/config.json" "$PACK/configs/$m/"; done
for s in abstract_algebra anatomy college_computer_science high_school_biology high_school_mathematics high_school_us_history \
         marketing philosophy professional_medicine world_religions; do
  cp "$SHARED/data/mmlu/dev/${s}_dev.csv" "$PACK/data/mmlu/dev/" && cp "$SHARED/data/mmlu/test/${s}_test.csv" "$PACK/data/mmlu/test/"
done
cp "$SHARED/data/humaneval/HumanEval.jsonl.gz" "$PACK/data/humaneval/"
du -sh "$PACK"
