#!/usr/bin/env bash
# The GPU checks, run on a machine with an NVIDIA GPU from the repository root after
# tools/gpu_pack.sh made .devpack/ here (see docs/GPU.md):
#   1. tests/test_cuda (the CUDA backend against transformers and llama.cpp references), then
#      two of its tests again under compute-sanitizer memcheck;
#   2. `billion bench --device cuda --tasks speed,memory` on random F16 weights of each target
#      shape (made by bench_engine --random-shape), F16 weights, and F32 for the first shape;
#      then MMLU and HumanEval (--limit 2) on the Llama-3.2 shape, to run those paths on the GPU;
#   3. transformers' generate() on the same shapes (tools/gpu_peer_transformers.py), same GPU.
#   tools/gpu_checks.sh OUT_DIR [shape ...]     (shapes default: tinyllama llama3.2-1b stablelm pythia-1b)
set -uo pipefail
OUT=${1:?usage: tools/gpu_checks.sh OUT_DIR [shape ...]}
shift
SHAPES=${*:-tinyllama llama3.2-1b stablelm pythia-1b}
PACK=$PWD/.devpack
mkdir -p "$OUT" /tmp/billion-gpu
tar -C /tmp/billion-gpu -xJf "$PACK/lib.tar.xz"
export LD_LIBRARY_PATH=/tmp/billion-gpu/lib:${LD_LIBRARY_PATH:-} PATH=$PATH:/usr/local/cuda/bin
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         "$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null)"; do
  [ -e "$d/libcublas.so.13" ] && export LD_LIBRARY_PATH=$d:$LD_LIBRARY_PATH && break
done
# The test binary reads its fixtures from the absolute path it was built with.
FIXTURES=$(strings "$PACK/bin/test_cuda" | grep -m1 '/tests/fixtures$' || true)
if [ -n "$FIXTURES" ] && [ ! -e "$FIXTURES" ]; then mkdir -p "$(dirname "$FIXTURES")" && ln -s "$PWD/tests/fixtures" "$FIXTURES"; fi
LOG=$OUT/checks.log
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  echo "== test_cuda"
  "$PACK/bin/test_cuda" 2>&1
  echo "test_cuda exit $?"
  echo "== compute-sanitizer memcheck"
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$PACK/bin/test_cuda" \
    --gtest_filter='Cuda.CacheStepsTruncationAndCopiesAgreeWithPrefill:Cuda.F16WeightsMatchTransformers' 2>&1 | tail -15
  echo "compute-sanitizer exit ${PIPESTATUS[0]}"
} > "$LOG" 2>&1
configs=()
for s in $SHAPES; do
  echo "== $s" >> "$LOG"
  "$PACK/bin/bench_engine" --random-shape "$PACK/configs/$s/config.json" --type f16 --keep "/tmp/billion-gpu/$s.f16.gguf" \
    --prompt 8 --gen 2 --runs 1 --threads 8 --out /tmp/billion-gpu/cpu.json > /dev/null 2>> "$LOG"
  weights="f16"
  [ ${#configs[@]} -eq 0 ] && weights="f16 f32"
  for w in $weights; do
    timeout 90 "$PACK/bin/billion" bench --device cuda --gpu-weights $w --model "/tmp/billion-gpu/$s.f16.gguf" --tasks speed,memory --offline \
      --quiet --out "/tmp/billion-gpu/bench-$s-$w.json" >> "$LOG" 2>&1
    echo "bench $s $w exit $?" >> "$LOG"
  done
  # The random-shape files carry a stand-in byte-level vocabulary, so MMLU prompts run to ~10k
  # tokens: only Llama-3.2's context holds them.
  if [ "$s" = llama3.2-1b ]; then
    timeout 150 "$PACK/bin/billion" bench --device cuda --model "/tmp/billion-gpu/$s.f16.gguf" --tasks mmlu,humaneval --limit 2 \
      --data "$PACK/data" --offline --quiet --out "$OUT/cuda-mmlu-humaneval-$s.json" >> "$LOG" 2>&1
    echo "bench mmlu,humaneval $s exit $?" >> "$LOG"
  fi
  configs+=(--config "$PACK/configs/$s/config.json")
done
python3 - "$OUT/cuda-speed-memory.json" /tmp/billion-gpu/bench-*.json <<'PY'
import json, sys
out = {f.split("/")[-1][len("bench-"):-len(".json")]: json.load(open(f)) for f in sys.argv[2:]}
json.dump(out, open(sys.argv[1], "w"), indent=1)
PY
PROMPT=$(python3 -c "import json,glob; f=sorted(glob.glob('/tmp/billion-gpu/bench-*-f16.json'))[0]; m=json.load(open(f))['models']; print(next(iter(m.values()))['speed']['prompt_tokens'])")
PYTHONUNBUFFERED=1 timeout 300 python3 tools/gpu_peer_transformers.py "${configs[@]}" --prompt-tokens "$PROMPT" --runs 3 --out "$OUT/transformers-peer.json" >> "$LOG" 2>&1
echo "transformers peer exit $?" >> "$LOG"
