export { NODE_LLAMA_CPP_VERSION, MANAGED_TOOLS, REQUIRED_CMAKE_ARGS, type LlamaTool } from './version.js';
export {
  ensureManagedBuild,
  findManagedBuild,
  hasRequiredCmakeArgs,
  managedBuildDir,
  cpuHasAmx,
  missingBuildPrerequisites,
  BUILD_INFO_FILE,
  resolveBackend,
  BuildError,
  type ManagedBuild,
  type BuildInfo,
  type Backend,
} from './managed-build.js';
export { ensureLlamaTools, locateLlamaTools, supportsRpc, type LlamaTools, type ToolSource, type LocateOptions } from './locate.js';
