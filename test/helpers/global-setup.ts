import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../src/config/index.js';
import { ensureLlamaTools } from '../../src/llamacpp/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    llamaServer: string;
    llamaFitParams: string | null;
    llamaQuantize: string | null;
    llamaToolsError: string | null;
  }
}

/**
 * Locates llama.cpp's tools the way `serve` does (config/LLAMA_SERVER/PATH/managed build), building the managed
 * one when none is found. Set LSP_TEST_NO_BUILD=1 to skip the build (tests needing it then skip with a reason).
 */
export default async function setup(project: TestProject): Promise<void> {
  const config = loadConfig({ cwd: process.cwd() });
  const noBuild = process.env.LSP_TEST_NO_BUILD === '1';
  try {
    const tools = await ensureLlamaTools({
      cacheDir: config.cacheDir,
      llamaServer: { ...config.llamaServer, autoBuild: !noBuild },
      log: (line) => process.stderr.write(`[setup] ${line}\n`),
    });
    project.provide('llamaServer', tools.server);
    project.provide('llamaFitParams', tools.fitParams ?? null);
    project.provide('llamaQuantize', tools.quantize ?? null);
    project.provide('llamaToolsError', null);
  } catch (err) {
    project.provide('llamaServer', '');
    project.provide('llamaFitParams', null);
    project.provide('llamaQuantize', null);
    project.provide('llamaToolsError', (err as Error).message);
  }
}
