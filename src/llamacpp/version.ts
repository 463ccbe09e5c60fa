/**
 * The llama.cpp the managed build uses: the source bundle shipped inside this exact version of the
 * `node-llama-cpp` npm package (its `llama/gitRelease.bundle`). Changing it changes the cache key, so a new
 * version builds into a new folder and the old build stays usable until then.
 */
export const NODE_LLAMA_CPP_VERSION = '3.21.1';

/**
 * The llama.cpp tools the managed build produces (cmake target = binary name). llama-server is required, the
 * others are helpers. `ggml-rpc-server` is what this llama.cpp calls the RPC server (tools/rpc, built only with
 * -DGGML_RPC=ON); older releases named it `rpc-server`, which a user's own build may still ship.
 */
export const MANAGED_TOOLS = ['llama-server', 'llama-fit-params', 'llama-quantize', 'ggml-rpc-server'] as const;
export type LlamaTool = (typeof MANAGED_TOOLS)[number];

/**
 * cmake options the tools depend on. A managed build whose build-info.json lacks any of them is not reused (it is
 * rebuilt): a llama-server compiled without GGML_RPC has no `--rpc` and must never be taken for one that has.
 */
export const REQUIRED_CMAKE_ARGS = ['-DGGML_RPC=ON'] as const;
