import { loadConfig } from '../config/index.js';
import { ensureLlamaTools, locateLlamaTools } from '../llamacpp/index.js';

export interface SetupFlags {
  config?: string;
  force?: boolean;
  backend?: 'auto' | 'cpu' | 'cuda';
}

/** Makes sure a llama-server is there, building the managed one when none is found (or when forced). */
export async function setupCommand(flags: SetupFlags): Promise<void> {
  const config = loadConfig(flags.config ? { file: flags.config } : {});
  const llamaServer = { ...config.llamaServer, ...(flags.backend ? { backend: flags.backend } : {}) };
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const before = locateLlamaTools({ cacheDir: config.cacheDir, llamaServer });
  if (before && !flags.force) {
    say(`llama-server found: ${before.server} (${before.source}); nothing to build`);
    return;
  }
  const tools = await ensureLlamaTools({ cacheDir: config.cacheDir, llamaServer: { ...llamaServer, autoBuild: true }, log: say, forceBuild: !!flags.force });
  say(`llama-server ready: ${tools.server} (${tools.source})`);
  if (tools.fitParams) say(`llama-fit-params: ${tools.fitParams}`);
}
