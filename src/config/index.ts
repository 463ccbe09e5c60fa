export { ConfigSchema, ModelEntrySchema, type ModelEntry, type ApiKeyConfig, type ConfigInput, type ClusterConfig, type GpuConfig, type HubConfig, type OllamaBackendConfig } from './schema.js';
export { loadConfig, buildConfig, defaultCacheDir, ConfigError, DEFAULT_CONFIG_FILE, type Config, type LoadOptions } from './load.js';
