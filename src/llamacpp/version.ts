/**
 * The llama.cpp the managed build uses: the source bundle shipped inside this exact version of the
 * `node-llama-cpp` npm package (its `llama/gitRelease.bundle`). Changing it changes the cache key, so a new
 * version builds into a new folder and the old build stays usable until then.
 */
export const NODE_LLAMA_CPP_VERSION = '3.21.1';

/** The llama.cpp tools the managed build produces. llama-server is required, the others are helpers. */
export const MANAGED_TOOLS = ['llama-server', 'llama-fit-params', 'llama-quantize'] as const;
export type LlamaTool = (typeof MANAGED_TOOLS)[number];
