#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (the device tool), after scripts/prepare-gpu-check.sh here:
#   run(command="bash scripts/gpu-check.sh", carry=[".tmp/gpu-check"], timeout_s=600)
# Builds llama-server with CUDA for this GPU only, checks the NVML source against the driver, loads sparse
# replicas of three presets on the GPU through the proxy, and prints estimate vs measured memory per instance.
# Results: $OUT/gpu-check.json, $OUT/build.log, $OUT/gpu-check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/.tmp/gpu-check
OUT=${OUT:-$dir/out}
mkdir -p "$OUT"
start=$(date +%s)
say() { echo "[$(( $(date +%s) - start ))s] $*"; }

node_bin=$(command -v node || true)
if [ -z "$node_bin" ] || ! "$node_bin" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  [ -f "$dir/node.tar.xz" ] || { say "no Node >= 20 here and none carried (prepare with --with-node)"; exit 2; }
  mkdir -p "$dir/node" && tar -C "$dir/node" -xJf "$dir/node.tar.xz"
  node_bin=$dir/node/bin/node
fi
say "node $("$node_bin" --version)"
nvidia-smi --query-gpu=index,name,memory.total,memory.used,driver_version,compute_cap --format=csv,noheader || say "nvidia-smi failed"
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
[ -n "$nvcc" ] || { say "no nvcc: cannot build llama-server with CUDA"; exit 3; }
command -v cmake >/dev/null || { say "no cmake"; exit 3; }
say "$($nvcc --version | tail -1)"

src=$dir/llama
if [ ! -x "$src/build/bin/llama-server" ]; then
  rm -rf "$src" && mkdir -p "$src" && tar -C "$src" -xJf "$dir/llama-src.tar.xz"
  say "building llama-server (CUDA, this GPU's architecture only)"
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON -DGGML_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=native > "$OUT/build.log" 2>&1 &&
  cmake --build "$src/build" -j "$(nproc)" --target llama-server >> "$OUT/build.log" 2>&1 ||
    { say "build failed"; tail -30 "$OUT/build.log"; exit 4; }
fi
say "llama-server: $("$src/build/bin/llama-server" --version 2>&1 | head -1)"
"$src/build/bin/llama-server" --list-devices 2>&1 | tee "$OUT/devices.txt"

say "check: NVML source, replicas through the proxy"
"$node_bin" "$dir/gpu-check.mjs" --llama-server "$src/build/bin/llama-server" --source nvml --out "$OUT" 2>&1 | tee "$OUT/gpu-check.log"
say "done"
