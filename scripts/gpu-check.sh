#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (the device tool), after scripts/prepare-gpu-check.sh here:
#   run(command="bash scripts/gpu-check.sh", carry=[".tmp/gpu-check"], timeout_s=600)
# Builds llama-server and llama-fit-params with CUDA for this GPU only (while the NVML checks run), then loads
# models on the GPU through the proxy and prints estimate vs measured memory per instance (scripts/gpu-check.ts).
# Results in $OUT: gpu-check.log, gpu-check.json, gpu-sources.json, build.log, and the CUDA build packed as
# llama-bin.tar.xz.* (carry them back in .tmp/gpu-check/ to skip the build on a fresh machine).
# GPU_CHECK_BUDGET: seconds the whole script may take (default 570). GPU_CHECK_LLAMA_BIN: use this build folder.
# A dry run of the pipeline on a machine without GPUs: GPU_CHECK_SOURCE=simulated GPU_CHECK_BACKEND=cpu.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/.tmp/gpu-check
OUT=${OUT:-$dir/out}
mkdir -p "$OUT"
log=$OUT/gpu-check.log
start=$(date +%s)
budget=${GPU_CHECK_BUDGET:-570}
source_kind=${GPU_CHECK_SOURCE:-nvml}
say() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$log"; }
# tar.xz without xz on the machine: Python's lzma
untar_xz() { tar -C "$2" -xJf "$1" 2>/dev/null || python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"; }

node_bin=$(command -v node || true)
if [ -z "$node_bin" ] || ! "$node_bin" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  [ -f "$dir/node.tar.xz" ] || { say "no Node >= 20 here and none carried (prepare with --with-node)"; exit 2; }
  mkdir -p "$dir/node" && untar_xz "$dir/node.tar.xz" "$dir/node"
  node_bin=$dir/node/bin/node
fi
say "node $("$node_bin" --version); $(nproc) CPUs; $(uname -r)"
nvidia-smi --query-gpu=index,name,memory.total,memory.used,driver_version,compute_cap --format=csv,noheader 2>&1 | tee -a "$log"
nvml=$( (ldconfig -p 2>/dev/null | awk '/libnvidia-ml\.so\.1 /{print $NF; exit}'; ls /usr/local/nvidia/lib64/libnvidia-ml.so.1 /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 2>/dev/null) | head -1)
nvml=${nvml:-libnvidia-ml.so.1}
say "NVML library: $nvml"

bin=${GPU_CHECK_LLAMA_BIN:-$dir/llama/build/bin}
build_pid=
if [ ! -x "$bin/llama-server" ] && ls "$dir"/llama-bin.tar.xz.* >/dev/null 2>&1; then
  mkdir -p "$bin" && cat "$dir"/llama-bin.tar.xz.* > "$dir/llama-bin.tar.xz" && untar_xz "$dir/llama-bin.tar.xz" "$bin"
  say "using the carried CUDA build"
fi
if [ ! -x "$bin/llama-server" ]; then
  backend=(-DGGML_CUDA=OFF)
  if [ "${GPU_CHECK_BACKEND:-cuda}" = cuda ]; then
    nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
    [ -n "$nvcc" ] || { say "no nvcc: cannot build llama-server with CUDA"; exit 3; }
    say "$($nvcc --version | tail -1)"
    backend=(-DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=native)
  fi
  command -v cmake >/dev/null || { say "no cmake"; exit 3; }
  src=$dir/llama
  rm -rf "$src" && mkdir -p "$src" && untar_xz "$dir/llama-src.tar.xz" "$src"
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  # as the managed build does: AMX matmul code crashes on Q8_0/Q4_K weights
  flags=(); grep -q amx_tile /proc/cpuinfo && flags=("-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
  say "building llama-server, llama-fit-params (${backend[*]}, ${gen[*]:-make})"
  (
    b0=$(date +%s)
    cmake -S "$src" -B "$src/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON \
      "${flags[@]}" "${backend[@]}" > "$OUT/build.log" 2>&1 &&
    timeout $(( budget - 150 )) cmake --build "$src/build" -j "$(nproc)" --target llama-server llama-fit-params >> "$OUT/build.log" 2>&1
    rc=$?
    echo "build exit $rc after $(( $(date +%s) - b0 )) s" >> "$OUT/build.log"
    exit $rc
  ) &
  build_pid=$!
fi

say "phase 1: GPU sources"
"$node_bin" "$dir/gpu-check.mjs" --phase sources --source "$source_kind" --nvml-library "$nvml" --out "$OUT" 2>&1 | tee -a "$log"

if [ -n "$build_pid" ]; then
  wait "$build_pid" || { say "build failed"; tail -40 "$OUT/build.log"; exit 4; }
  say "$(tail -1 "$OUT/build.log")"
  # Packed for a rerun on a fresh machine (15 MiB parts: $OUT takes files up to 16 MiB)
  (cd "$bin" && tar -cf - llama-server llama-fit-params ./*.so* | xz -T4 -6 | split -b 15M - "$OUT/llama-bin.tar.xz.") &
  pack_pid=$!
fi
"$bin/llama-server" --version 2>&1 | tail -2 | tee -a "$log"
"$bin/llama-server" --list-devices 2>&1 | tail -4 | tee -a "$log"

say "phase 2: models through the proxy"
"$node_bin" "$dir/gpu-check.mjs" --phase loads --source "$source_kind" --nvml-library "$nvml" --llama-server "$bin/llama-server" \
  --out "$OUT" --deadline $(( start + budget - 15 )) ${GPU_CHECK_ONLY:+--only "$GPU_CHECK_ONLY"} 2>&1 | tee -a "$log"
[ -n "${pack_pid:-}" ] && wait "$pack_pid"
ls -la "$OUT" | tee -a "$log"
say "done"
