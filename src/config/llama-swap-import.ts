/**
 * A llama-swap configuration turned into ours (pure: text and environment in, document and notes out).
 *
 * Carried over: each model whose `cmd` runs llama-server, as `path` (-m/--model, made absolute from the
 * llama-swap file's folder) or `hf` (-hf/--hf-repo, with -hff/--hf-file as the variant), `ctx` (-c/--ctx-size),
 * `parallel` (-np/--parallel), the remaining flags as `args` (--mmproj and --model-draft paths made absolute),
 * its `ttl`, `aliases`, `env`, `name`/`description`, and its filters as request rules (stripParams -> strip,
 * setParams -> force); globally `apiKeys`, `globalTTL`, `healthCheckTimeout` and `logLevel`. Macros are
 * expanded as llama-swap expands them (`${env.X}` first, then the model's macros over the global ones, each
 * macro seeing those defined before it; `${MODEL_ID}`), and `--port ${PORT}` / `--host` are dropped: the
 * proxy picks the port of each instance.
 *
 * Dropped, each with a note (a comment in the written file and a line on stderr): what the proxy decides
 * itself (-ngl, --tensor-split, --main-gpu, --split-mode, --device, --fit, CUDA_VISIBLE_DEVICES: the
 * placement; --alias, --api-key, -lv), models whose command is not llama-server (vllm, docker, python...,
 * written out in full in the comment), and the keys without an equivalent here (groups and the matrix:
 * memory-aware placement replaces them, and `pool.size` is set to the most models they let run together;
 * cmdStop, proxy, checkEndpoint, peers, profiles, ...). Bad input (not YAML, no models, an undefined macro,
 * an unset environment variable) is an error that names the problem.
 */
import path from 'node:path';
import { Document, isMap, isScalar, parse as parseYaml } from 'yaml';
import { shellWords, ShellWordsError } from './shell-words.js';

export class LlamaSwapImportError extends Error {}

export interface ImportNote {
  /** The model it is about, if any. */
  model?: string;
  /** The llama-swap key it is about (`models.qwen.cmdStop`, `groups`). */
  where: string;
  message: string;
}

export interface ImportOptions {
  /** For `${env.NAME}` macros. */
  env: Readonly<Record<string, string | undefined>>;
  /** The llama-swap file's folder: relative model paths are taken from it. */
  baseDir: string;
  /** The file's name, for the header comment. */
  source?: string;
}

export interface LlamaSwapImport {
  /** Our configuration, as the document `serve` reads. */
  config: Record<string, unknown>;
  /** Everything not carried over as it was, one line each (also comments in `yaml`). */
  notes: ImportNote[];
  /** The configuration written out, with the notes as comments. */
  yaml: string;
}

type Macros = Map<string, string>;

const MACRO_NAME = /^[a-zA-Z0-9_-]+$/;
const MACRO_USE = /\$\{([a-zA-Z0-9_-]+)\}/g;
const ENV_USE = /\$\{env\.([a-zA-Z_][a-zA-Z0-9_]*)\}/g;
const RESERVED = new Set(['PID', 'PORT', 'MODEL_ID']);
/** What `${PORT}` becomes while a command is read: no flag value can contain it by accident. */
const PORT = '\u0000PORT\u0000';
const MODEL_NAME = /^[A-Za-z0-9][\w.:@/-]*$/;
const GPU_ENV = new Set(['CUDA_VISIBLE_DEVICES', 'HIP_VISIBLE_DEVICES', 'ROCR_VISIBLE_DEVICES', 'GGML_VK_VISIBLE_DEVICES']);

/** Flags of llama-server that take a value, among those read or dropped here. */
const PLACEMENT_FLAGS = new Set(['-ngl', '--gpu-layers', '--n-gpu-layers', '-ts', '--tensor-split', '-mg', '--main-gpu', '-sm', '--split-mode', '-dev', '--device', '--fit', '-fit']);
const OURS_FLAGS = new Set(['--host', '--port', '-a', '--alias', '--api-key', '--api-key-file', '-lv', '--log-verbosity', '--verbosity']);

/** Keys of a model that have no equivalent here, and why. */
const MODEL_UNSUPPORTED: Readonly<Record<string, string>> = {
  cmdStop: 'the proxy stops its llama-server instances itself (SIGTERM, then SIGKILL after llamaServer.stopTimeout)',
  proxy: 'the proxy starts each instance on a port of its own (pool.portRange) and forwards there',
  checkEndpoint: 'the proxy waits for llama-server\'s /health',
  unloadTimeout: 'see llamaServer.stopTimeout and pool.drainTimeout',
  useModelName: 'the proxy names the model to llama-server itself',
  concurrencyLimit: 'see the model\'s parallel slots, pool.maxQueue and server.keys[].maxConcurrent',
  metadata: 'no equivalent (not shown in /v1/models)',
  sendLoadingState: 'a streamed request sees download progress as SSE comments; no loading state in the reasoning field',
  timeouts: 'see llamaServer.readTimeout (no per-model timeouts)',
  compat: 'no equivalent',
  capabilities: 'the proxy reads what a model can do from its GGUF and llama-server',
  healthCheckTimeout: 'only the global llamaServer.startTimeout',
  unlisted: 'every configured model is listed in /v1/models',
};

/** Top-level keys that have no equivalent here, and why. */
const GLOBAL_UNSUPPORTED: Readonly<Record<string, string>> = {
  groups: 'memory-aware placement decides what runs together; pool.size is set to the most models the groups let run at once',
  matrix: 'memory-aware placement decides what runs together; pool.size is set to the largest set',
  routing: 'memory-aware placement decides what runs together (groups, matrix) and the queue is FIFO per key',
  profiles: 'no equivalent',
  selectors: 'no equivalent',
  peers: 'see cluster (other llama-smart-proxy nodes) and backends.ollama',
  hooks: 'see models.<name>.pinned (loaded at start, and never evicted)',
  startPort: 'instances get ports from pool.portRange',
  upstream: 'no /upstream passthrough',
  logToStdout: 'instance logs are at /logs/<instance>',
  logTimeFormat: 'logs are JSON lines with epoch times',
  logRequests: 'one log line per request is always written',
  metricsMaxInMemory: 'see /metrics (Prometheus)',
  captureBuffer: 'no request captures',
  store: 'no activity store',
  ui: 'see the dashboard at /dashboard',
  performance: 'GPU readings: gpu.monitorInterval',
  sendLoadingState: 'a streamed request sees download progress as SSE comments',
  includeAliasesInList: 'aliases are not listed in /v1/models',
  unloadTimeout: 'see llamaServer.stopTimeout and pool.drainTimeout',
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `${env.NAME}` in every string of `value` (llama-swap substitutes them before anything else). */
function expandEnv(value: unknown, env: ImportOptions['env'], where: string): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_USE, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new LlamaSwapImportError(`${where}: uses \${env.${name}}, but the environment variable ${name} is not set`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, `${where}[${i}]`));
  if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, `${where}.${k}`)]));
  return value;
}

/**
 * Replaces the macros as llama-swap does: the last declared first, so a macro's value may use those declared
 * before it (and ${MODEL_ID}, declared first of all); others are left as written.
 */
function substitute(text: string, macros: Macros): string {
  let out = text;
  for (const [name, value] of [...macros].reverse()) out = out.replaceAll(`\${${name}}`, value);
  return out;
}

/** A macro list (global or a model's) over `base`, each value seeing the macros before it. */
function readMacros(raw: unknown, base: Macros, where: string): Macros {
  const out = new Map(base);
  if (raw === undefined || raw === null) return out;
  if (!isRecord(raw)) throw new LlamaSwapImportError(`${where}: must be a map of macro names to values`);
  for (const [name, value] of Object.entries(raw)) {
    if (!MACRO_NAME.test(name) || name.length >= 64) throw new LlamaSwapImportError(`${where}.${name}: macro names use letters, digits, _ and - (under 64 characters)`);
    if (RESERVED.has(name)) throw new LlamaSwapImportError(`${where}.${name}: ${name} is reserved (PID, PORT and MODEL_ID are set by llama-swap)`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new LlamaSwapImportError(`${where}.${name}: a macro's value is a string, a number or a boolean`);
    }
    out.set(name, String(value).trim());
  }
  return out;
}

/** Every string of a model's settings with its macros expanded; an undefined macro is an error naming it. */
function expandMacros(value: unknown, macros: Macros, where: string): unknown {
  if (typeof value === 'string') {
    const text = substitute(substitute(value, macros), new Map([['PORT', PORT]]));
    const left = [...text.matchAll(MACRO_USE)].map((m) => m[1]!).filter((n) => n !== 'PID');
    if (left.length > 0) {
      const name = left[0]!;
      if (macros.has(name)) throw new LlamaSwapImportError(`${where}: uses \${${name}} through a macro declared before it (a macro may use only the macros declared before it)`);
      const known = [...macros.keys()].filter((k) => k !== 'MODEL_ID');
      throw new LlamaSwapImportError(`${where}: uses \${${name}}, which is not a defined macro (defined: ${known.join(', ') || 'none'})`);
    }
    return text;
  }
  if (Array.isArray(value)) return value.map((v, i) => expandMacros(v, macros, `${where}[${i}]`));
  if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandMacros(v, macros, `${where}.${k}`)]));
  return value;
}

/** A command without its comment lines (those starting with #). */
function withoutComments(cmd: string): string {
  return cmd
    .split('\n')
    .filter((l) => !l.trim().startsWith('#'))
    .join('\n');
}

/** llama-swap's reading of `cmd`: split as a POSIX shell splits words. */
function commandWords(cmd: string, where: string): string[] {
  try {
    return shellWords(cmd);
  } catch (err) {
    if (err instanceof ShellWordsError) throw new LlamaSwapImportError(`${where}: ${err.message}`);
    throw err;
  }
}

function isLlamaServer(program: string): boolean {
  return /^llama-server(?:[-_.][\w.-]*)?$/i.test(path.basename(program));
}

/** A command line as it could be typed again (${PORT} written as llama-swap writes it). */
const shown = (words: readonly string[]) =>
  words
    .map((word) => word.replaceAll(PORT, '${PORT}'))
    .map((w) => (/^[\w./:=@%+,${}-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`))
    .join(' ');

interface ModelResult {
  entry?: Record<string, unknown>;
  notes: ImportNote[];
}

function positiveInt(v: string, flag: string, where: string): number {
  if (!/^\d+$/.test(v)) throw new LlamaSwapImportError(`${where}: ${flag} takes a whole number, not "${v}"`);
  return Number(v);
}

/** One model: its entry (undefined when its command is not llama-server's) and the notes. */
function convertModel(id: string, raw: Record<string, unknown>, opts: ImportOptions): ModelResult {
  const where = `models.${id}`;
  const notes: ImportNote[] = [];
  const note = (key: string, message: string) => notes.push({ model: id, where: key ? `${where}.${key}` : where, message });
  if (typeof raw.cmd !== 'string' || raw.cmd.trim() === '') throw new LlamaSwapImportError(`${where}.cmd: every model needs a command (a string)`);
  const words = commandWords(raw.cmd, `${where}.cmd`);
  if (words.length === 0) throw new LlamaSwapImportError(`${where}.cmd: the command is empty`);
  if (!MODEL_NAME.test(id)) {
    note('', `not imported: the name "${id}" is not one this proxy accepts (letters, digits and . _ - : @ /); its command: ${shown(words)}`);
    return { notes };
  }
  if (!isLlamaServer(words[0]!)) {
    note('cmd', `not imported: it runs ${path.basename(words[0]!)}, not llama-server (the proxy starts only llama-server); its command: ${shown(words)}`);
    for (const key of ['cmdStop', 'proxy'] as const) if (typeof raw[key] === 'string') note(key, `was: ${String(raw[key]).replaceAll(PORT, '${PORT}')}`);
    return { notes };
  }
  if (words[0] !== 'llama-server') note('cmd', `ran ${words[0]}; the proxy runs llamaServer.binary (else LLAMA_SERVER, PATH, or its managed build) for every model`);

  const entry: Record<string, unknown> = {};
  const args: string[] = [];
  const dropped: string[] = [];
  const placement: string[] = [];
  let file: string | undefined;
  let hfRepo: string | undefined;
  let hfFile: string | undefined;
  const abs = (p: string) => (path.isAbsolute(p) ? p : path.resolve(opts.baseDir, p));
  const rest = words.slice(1);
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i]!;
    const eq = word.startsWith('--') ? word.indexOf('=') : -1;
    const flag = eq > 0 ? word.slice(0, eq) : word;
    const inline = eq > 0 ? word.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = rest[++i];
      if (v === undefined) throw new LlamaSwapImportError(`${where}.cmd: ${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '-m':
      case '--model':
        file = value();
        break;
      case '-hf':
      case '-hfr':
      case '--hf-repo':
        hfRepo = value();
        break;
      case '-hff':
      case '--hf-file':
        hfFile = value();
        break;
      case '-c':
      case '--ctx-size': {
        const ctx = positiveInt(value(), flag, `${where}.cmd`);
        if (ctx > 0) entry.ctx = ctx;
        else note('cmd', `${flag} 0 took the model's training context; here a context is a number: modelDefaults.ctx applies, set ctx to change it`);
        break;
      }
      case '-np':
      case '--parallel': {
        const v = value();
        if (v === '-1') note('cmd', `${flag} -1 let llama-server choose its slots; here modelDefaults.parallel applies, set parallel to change it`);
        else entry.parallel = positiveInt(v, flag, `${where}.cmd`) || 1;
        break;
      }
      case '--mmproj':
      case '-mm':
      case '--model-draft':
      case '-md':
        args.push(flag, abs(value()));
        break;
      default:
        if (PLACEMENT_FLAGS.has(flag)) {
          const v = value();
          if ((flag === '-ngl' || flag === '--gpu-layers' || flag === '--n-gpu-layers') && /^\d+$/.test(v) && Number(v) < 99) {
            entry.gpu = { ngl: Number(v) };
            placement.push(`${flag} ${v} (kept as gpu.ngl: ${v})`);
          } else {
            placement.push(`${flag} ${v}`);
          }
        } else if (OURS_FLAGS.has(flag)) {
          const v = value();
          if (flag !== '--port' || v !== PORT) dropped.push(`${flag} ${v.replaceAll(PORT, '${PORT}')}`);
        } else if (word.includes(PORT)) {
          dropped.push(word.replaceAll(PORT, '${PORT}'));
        } else {
          args.push(word);
        }
    }
  }
  if (placement.length > 0) note('cmd', `dropped ${placement.join(', ')}: the proxy places each model on the GPUs it fits (pin with gpu.devices, gpu.tensorSplit, gpu.ngl)`);
  if (dropped.length > 0) note('cmd', `dropped ${dropped.join(', ')}: the proxy sets the host, port, alias, key and log level of its instances`);

  if (file !== undefined) {
    entry.path = abs(file);
    if (!path.isAbsolute(file)) note('cmd', `the relative model path ${file} is taken from the llama-swap file's folder: ${entry.path}`);
    if (hfRepo !== undefined) note('cmd', `names both -m and -hf; -m (${file}) was taken, -hf ${hfRepo} dropped`);
  } else if (hfRepo !== undefined) {
    const repo = hfFile !== undefined ? hfRepo.replace(/:[^/:]*$/, '') : hfRepo;
    entry.hf = hfFile !== undefined ? `${repo}:${hfFile}` : repo;
    if (hfFile === undefined && !/:[^/]+$/.test(hfRepo)) note('cmd', `-hf ${hfRepo} names no quantization: llama-server took Q4_K_M; here the best that fits this machine is chosen (:auto; hub.defaultVariant: Q4_K_M keeps llama-server's choice)`);
  } else {
    note('cmd', `not imported: its command names no model (-m or -hf); its command: ${shown(words)}`);
    return { notes };
  }
  entry.args = args;

  if (raw.ttl !== undefined) {
    if (typeof raw.ttl !== 'number' || !Number.isInteger(raw.ttl) || raw.ttl < -1) throw new LlamaSwapImportError(`${where}.ttl: a whole number of seconds, -1 (the global TTL) or more`);
    if (raw.ttl >= 0) entry.ttl = raw.ttl;
  }
  if (raw.aliases !== undefined) {
    if (!Array.isArray(raw.aliases) || raw.aliases.some((a) => typeof a !== 'string')) throw new LlamaSwapImportError(`${where}.aliases: a list of names`);
    const ok = (raw.aliases as string[]).filter((a) => MODEL_NAME.test(a));
    const bad = (raw.aliases as string[]).filter((a) => !MODEL_NAME.test(a));
    if (ok.length > 0) entry.aliases = ok;
    if (bad.length > 0) note('aliases', `dropped ${bad.map((a) => `"${a}"`).join(', ')}: names use letters, digits and . _ - : @ /`);
  }
  if (raw.env !== undefined) {
    if (!Array.isArray(raw.env)) throw new LlamaSwapImportError(`${where}.env: a list of NAME=value strings`);
    const env: Record<string, string> = {};
    for (const item of raw.env) {
      const m = typeof item === 'string' ? /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(item) : null;
      if (!m) throw new LlamaSwapImportError(`${where}.env: "${String(item)}" is not NAME=value`);
      if (GPU_ENV.has(m[1]!)) note('env', `dropped ${m[1]}=${m[2]}: the proxy chooses the GPUs of each instance (pin them with gpu.devices)`);
      else env[m[1]!] = m[2]!;
    }
    if (Object.keys(env).length > 0) entry.env = env;
  }
  const name = typeof raw.name === 'string' && raw.name ? raw.name : undefined;
  const description = typeof raw.description === 'string' && raw.description ? raw.description : undefined;
  if (name || description) entry.description = name && description ? `${name}: ${description}` : (name ?? description)!;

  if (raw.filters !== undefined) {
    if (!isRecord(raw.filters)) throw new LlamaSwapImportError(`${where}.filters: must be a map`);
    const rules: Record<string, unknown> = {};
    const strip = raw.filters.stripParams ?? raw.filters.strip_params;
    if (typeof strip === 'string') {
      const fields = strip.split(',').map((s) => s.trim()).filter((s) => s && s !== 'model');
      if (fields.length > 0) rules.strip = fields;
    }
    if (isRecord(raw.filters.setParams)) {
      const force = Object.fromEntries(Object.entries(raw.filters.setParams).filter(([k]) => k !== 'model'));
      if (Object.keys(force).length > 0) rules.force = force;
    }
    if (raw.filters.setParamsByID !== undefined) note('filters.setParamsByID', 'no equivalent (parameters per requested name); the names it made are not aliases here');
    for (const k of Object.keys(raw.filters)) if (!['stripParams', 'strip_params', 'setParams', 'setParamsByID'].includes(k)) note(`filters.${k}`, 'unknown filter, not imported');
    if (Object.keys(rules).length > 0) entry.rules = rules;
  }

  const known = new Set(['cmd', 'ttl', 'aliases', 'env', 'name', 'description', 'filters', 'macros']);
  for (const [key, value] of Object.entries(raw)) {
    if (known.has(key)) continue;
    const why = MODEL_UNSUPPORTED[key];
    const was = typeof value === 'string' ? ` (was: ${value.replaceAll(PORT, '${PORT}')})` : '';
    note(key, why ? `not imported: ${why}${was}` : `unknown key, not imported${was}`);
  }
  // In the order docs/configuration.md lists the keys.
  const order = ['path', 'hf', 'ctx', 'parallel', 'args', 'ttl', 'aliases', 'env', 'description', 'gpu', 'rules'];
  const ordered = Object.fromEntries(order.filter((k) => entry[k] !== undefined).map((k) => [k, entry[k]]));
  return { entry: ordered, notes };
}

/** How many models llama-swap's groups or matrix let run at once (groups: the largest non-swapping one). */
function concurrency(groups: unknown, matrix: unknown): number | undefined {
  let most: number | undefined;
  if (isRecord(groups)) {
    for (const g of Object.values(groups)) {
      if (!isRecord(g) || !Array.isArray(g.members)) continue;
      const n = g.swap === false ? g.members.length : 1;
      most = Math.max(most ?? 1, n);
    }
  }
  if (isRecord(matrix) && isRecord(matrix.sets)) {
    for (const expr of Object.values(matrix.sets)) {
      if (typeof expr !== 'string') continue;
      // Each & joins one more model to every set the expression makes (inlined +refs count as one).
      most = Math.max(most ?? 1, expr.split('&').length);
    }
  }
  return most;
}

/** Converts a llama-swap configuration (YAML text); throws LlamaSwapImportError naming what is wrong. */
export function importLlamaSwap(text: string, opts: ImportOptions): LlamaSwapImport {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new LlamaSwapImportError(`not a YAML document: ${(err as Error).message}`);
  }
  if (!isRecord(doc)) throw new LlamaSwapImportError('a llama-swap configuration is a map with a "models" key');
  if (!isRecord(doc.models) || Object.keys(doc.models).length === 0) throw new LlamaSwapImportError('it has no models (the "models" map is missing or empty)');
  const raw = expandEnv(doc, opts.env, '') as Record<string, unknown>;
  const notes: ImportNote[] = [];
  const note = (where: string, message: string) => notes.push({ where, message });

  const globalMacros = readMacros(raw.macros, new Map(), 'macros');
  const models: Record<string, Record<string, unknown>> = {};
  const modelNotes = new Map<string, ImportNote[]>();
  for (const [id, value] of Object.entries(raw.models as Record<string, unknown>)) {
    if (!isRecord(value)) throw new LlamaSwapImportError(`models.${id}: must be a map with at least "cmd"`);
    const macros = readMacros(value.macros, new Map([['MODEL_ID', id], ...globalMacros]), `models.${id}.macros`);
    // Comment lines of a command go before its macros are expanded (a comment may name any macro).
    const settings = Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => k !== 'macros')
        .map(([k, v]) => [k, (k === 'cmd' || k === 'cmdStop') && typeof v === 'string' ? withoutComments(v) : v]),
    );
    const expanded = expandMacros(settings, macros, `models.${id}`) as Record<string, unknown>;
    const result = convertModel(id, expanded, opts);
    if (result.entry) models[id] = result.entry;
    modelNotes.set(id, result.notes);
    notes.push(...result.notes);
  }
  if (Object.keys(models).length === 0) note('models', 'no model runs llama-server: the written configuration serves none of them');

  const config: Record<string, unknown> = {};
  const pool: Record<string, unknown> = {};
  const routing = isRecord(raw.routing) ? raw.routing : undefined;
  const router = routing && isRecord(routing.router) ? routing.router : undefined;
  const settings = router && isRecord(router.settings) ? router.settings : undefined;
  const size = concurrency(raw.groups ?? settings?.groups, raw.matrix ?? settings?.matrix);
  if (size !== undefined && size > 1) pool.size = Math.min(size, Math.max(1, Object.keys(models).length));
  if (typeof raw.globalTTL === 'number' && raw.globalTTL > 0) pool.ttl = raw.globalTTL;
  if (Object.keys(pool).length > 0) config.pool = pool;
  if (typeof raw.healthCheckTimeout === 'number') config.llamaServer = { startTimeout: Math.max(15, raw.healthCheckTimeout) };
  if (Array.isArray(raw.apiKeys)) {
    const keys = raw.apiKeys.filter((k): k is string => typeof k === 'string' && k.trim() !== '');
    if (keys.length > 0) config.server = { apiKeys: keys };
  }
  if (typeof raw.logLevel === 'string') {
    if (['debug', 'info', 'warn', 'error'].includes(raw.logLevel)) config.log = { level: raw.logLevel };
    else note('logLevel', `"${raw.logLevel}" is not a level (debug, info, warn, error); not imported`);
  }
  config.models = models;

  const handled = new Set(['models', 'macros', 'globalTTL', 'healthCheckTimeout', 'apiKeys', 'logLevel']);
  for (const key of Object.keys(raw)) {
    if (handled.has(key)) continue;
    const why = GLOBAL_UNSUPPORTED[key];
    note(key, why ? `not imported: ${why}` : 'unknown key, not imported');
  }

  return { config, notes, yaml: render(config, notes, modelNotes, opts.source) };
}

function render(config: Record<string, unknown>, notes: readonly ImportNote[], modelNotes: ReadonlyMap<string, ImportNote[]>, source: string | undefined): string {
  const doc = new Document(config);
  // Notes of an imported model go beside it; the others (global keys, models not imported) at the top.
  const imported = new Set(Object.keys(config.models as object));
  const general = notes.filter((n) => n.model === undefined || !imported.has(n.model));
  const header = [
    `Imported from ${source ?? 'a llama-swap configuration'} by \`llama-smart-proxy import llama-swap\`.`,
    'The proxy places each model on the GPUs it fits and picks ports itself; see docs/configuration.md.',
    ...(general.length > 0 ? ['', 'Not carried over (no equivalent here, or not a llama-server model):', ...general.map((n) => `- ${n.where}: ${n.message}`)] : []),
  ];
  doc.commentBefore = header.map((l) => (l ? ` ${l}` : '')).join('\n');
  const models = doc.get('models', true);
  if (isMap(models)) {
    for (const item of models.items) {
      if (!isScalar(item.key)) continue;
      const key = item.key;
      const id = String(key.value);
      const own = modelNotes.get(id) ?? [];
      if (own.length > 0) key.commentBefore = own.map((n) => ` ${n.where.slice(`models.${id}.`.length) || 'model'}: ${n.message}`).join('\n');
    }
  }
  return doc.toString({ lineWidth: 0 });
}
