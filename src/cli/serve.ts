import { loadConfig } from '../config/index.js';
import { startProxy } from '../server.js';
import { DEMO_ALIAS } from '../models/demo.js';

export interface ServeFlags {
  config?: string;
  host?: string;
  port?: number;
  watch?: boolean;
}

/** Runs the proxy until SIGINT/SIGTERM (SIGHUP reloads the config); every instance is stopped before the process exits. */
export async function serveCommand(flags: ServeFlags): Promise<void> {
  const overrides = { ...(flags.host !== undefined ? { host: flags.host } : {}), ...(flags.port !== undefined ? { port: flags.port } : {}) };
  const read = () => loadConfig({ ...(flags.config ? { file: flags.config } : {}), overrides });
  const config = read();
  const proxy = await startProxy(config, { reload: read, watch: flags.watch === true });
  const models = Object.keys(proxy.config.models);
  const example = models[0] ?? 'MODEL';
  // One write, so a reader of the pipe never sees the first line without the rest.
  const banner = [
    `\nllama-smart-proxy listening on ${proxy.url}`,
    `  llama-server: ${proxy.tools.server} (${proxy.tools.source})`,
    `  models: ${models.length ? models.join(', ') : '(none configured; requests may name .gguf files in ' + proxy.config.modelsDir + ')'}`,
    ...(proxy.demo ? [`  no config file found: serving the built-in demo model as "${DEMO_ALIAS}" (random weights, gibberish answers)`] : []),
    `\ntry:\n  curl ${proxy.url}/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{"model": "${example}", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16}'\n`,
  ];
  process.stderr.write(`${banner.join('\n')}\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    proxy.app.log.info({ signal }, 'shutting down: stopping every instance');
    proxy.close().then(
      () => process.exit(0),
      (err: Error) => {
        proxy.app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // SIGHUP re-reads the config (as nginx and most daemons do); an invalid file is logged and the old one kept.
  process.on('SIGHUP', () => {
    void proxy.reload();
  });
}
