/** The llama-server command line for one instance. Pure. */
export interface ServerFlagsInput {
  file: string;
  /** Name the instance reports as its model (the id the client used). */
  alias: string;
  host: string;
  port: number;
  ctx: number;
  parallel: number;
  /** From `llamaServer.extraArgs`, then the model's own `args`; later ones win in llama-server. */
  extraArgs: readonly string[];
}

export function serverFlags(input: ServerFlagsInput): string[] {
  return [
    '-m', input.file,
    '--host', input.host,
    '--port', String(input.port),
    '-a', input.alias,
    '-c', String(input.ctx),
    '-np', String(input.parallel),
    // The proxy decides the placement; llama-server must not change -ngl/-c behind its back.
    '--fit', 'off',
    '--metrics',
    '--no-webui',
    '--log-colors', 'off',
    ...input.extraArgs,
  ];
}
