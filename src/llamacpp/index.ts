export { NODE_LLAMA_CPP_VERSION, MANAGED_TOOLS, type LlamaTool } from './version.js';
export {
  ensureManagedBuild,
  findManagedBuild,
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
export { ensureLlamaTools, locateLlamaTools, type LlamaTools, type ToolSource, type LocateOptions } from './locate.js';
