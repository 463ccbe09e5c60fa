/**
 * The configuration file's schema. Every key has a default so that an empty file (or none) is valid;
 * docs/configuration.md documents each key with the same defaults.
 */
import { z } from 'zod';

const seconds = z.number().nonnegative();
const port = z.number().int().min(0).max(65535);

const SimulatedGpuSchema = z
  .object({
    name: z.string().min(1),
    memoryMiB: z.number().positive(),
    /** Memory used by others, MiB. */
    usedMiB: z.number().nonnegative().optional(),
    utilization: z.number().min(0).max(100).optional(),
    computeCapability: z.string().optional(),
  })
  .strict();

const GpuSchema = z
  .object({
    /** Where device readings come from; auto: NVML, else nvidia-smi, else none (CPU). simulated only when named. */
    source: z.enum(['auto', 'nvml', 'nvidia-smi', 'none', 'simulated']).default('auto'),
    /** The NVML library koffi loads (a stand-in may take the driver's place). */
    nvmlLibrary: z.string().min(1).default('libnvidia-ml.so.1'),
    /** Seconds between background readings (placement always reads fresh). */
    monitorInterval: z.number().nonnegative().default(2),
    /** GPUs for `source: simulated` (tests and demos on machines without GPUs). */
    simulated: z.array(SimulatedGpuSchema).default([]),
    /** Use simulated GPUs even where real ones are present. */
    forceSimulated: z.boolean().default(false),
    strategy: z.enum(['single-gpu-preferred', 'distribute']).default('single-gpu-preferred'),
    /** Among single GPUs that fit: the tightest (best) or the one with most room. */
    fit: z.enum(['best', 'most-free']).default('best'),
    /** Kept free on every GPU, MiB. */
    reserveMiB: z.number().nonnegative().default(512),
    /** GPUs busier than this percent are skipped. */
    maxUtilization: z.number().min(0).max(100).default(100),
    /** GPUs with more than this fraction of their memory used by others are skipped. */
    maxMemoryUsed: z.number().min(0).max(1).default(0.95),
    /** Offload part of the layers when the whole model fits on no GPU. */
    partialOffload: z.boolean().default(true),
    /** Run on the CPU when no GPU has room. */
    cpuFallback: z.boolean().default(true),
    /** Seconds to wait for a stopped instance's memory to show up free again. */
    vramRecoveryTimeout: z.number().nonnegative().default(15),
    /** Per-GPU runtime overhead (CUDA context, pools), MiB; default: the estimator's measured figure. */
    overheadMiB: z.number().nonnegative().optional(),
  })
  .strict()
  .prefault({});

/** Per-model GPU pins; they win over the planner. */
const ModelGpuSchema = z
  .object({
    /** GPU indices or UUIDs the model must use. */
    devices: z.array(z.union([z.number().int().nonnegative(), z.string().min(1)])).min(1).optional(),
    tensorSplit: z.array(z.number().nonnegative()).min(1).optional(),
    /** -ngl; 0 = CPU only. */
    ngl: z.number().int().nonnegative().optional(),
    maxGpus: z.number().int().positive().optional(),
  })
  .strict();

const agentName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'agent names use letters, digits and . _ -');

/** Slash-command agents (src/agents/README.md). */
const AgentsSchema = z
  .object({
    /** Folder of plugin folders (`<dir>/<name>/config.json` + module); relative to the config file's folder. */
    dir: z.string().min(1).default('./plugins'),
    /** Also load the agents shipped with the package (json, gpu, parallel); `dir` wins on a name clash. */
    bundled: z.boolean().default(true),
    /** Seconds one hook call may take before the agent is skipped for that request. */
    timeout: z.number().positive().default(60),
    /** When given, only these agents are enabled. */
    enabled: z.array(agentName).optional(),
    /** Agents to leave off even if their config.json enables them. */
    disabled: z.array(agentName).default([]),
    /** Per-agent settings, merged over the `settings` of the agent's config.json. */
    settings: z.record(agentName, z.record(z.string(), z.unknown())).default({}),
  })
  .strict()
  .prefault({});

/** Models from the Hugging Face Hub (src/models/hub.ts). Unset keys fall back to the Hugging Face environment variables. */
const HubSchema = z
  .object({
    /** The Hub's address; default $HF_ENDPOINT, else https://huggingface.co. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    /** Token for private and gated repos; default $HF_TOKEN, else the token file of `hf auth login`. */
    token: z.string().min(1).optional(),
    /** Use only the cache, never the network; default $HF_HUB_OFFLINE. */
    offline: z.boolean().optional(),
    /** Largest size of the download cache (<cacheDir>/hub), GiB; least recently used models not running are deleted beyond it. 0 = no limit. */
    cacheLimitGiB: z.number().nonnegative().default(0),
    /** Seconds to connect to the Hub or its CDN. */
    connectTimeout: z.number().positive().default(30),
    /** Seconds without a byte before a request is abandoned (a download is then resumed). */
    readTimeout: z.number().positive().default(60),
    /** Times a broken download is resumed automatically before the request fails (the partial file stays). */
    retries: z.number().int().nonnegative().default(5),
    /** First range read of a remote GGUF header (for the estimate before the download), MiB; grows 4x until the header is read. */
    headerProbeMiB: z.number().positive().max(64).default(8),
    /**
     * The variant of a repo named without one (`owner/repo`), then the closest quantization when the repo lacks it
     * (e.g. Q4_K_M). Unset or `auto`: the best quantization that fits this machine now (`owner/repo:auto`).
     */
    defaultVariant: z.string().regex(/^[\w.-]+$/, 'a variant such as Q4_K_M, or auto').optional(),
  })
  .strict()
  .prefault({});

/** Ollama's model store as a source of models, and Ollama's registry to pull from (src/sources/). */
const OllamaSourceSchema = z
  .object({
    /**
     * Ollama's store (`manifests/`, `blobs/`): read for models, and where pulls of Ollama names write. Unset: read
     * $OLLAMA_MODELS, else ~/.ollama/models and /usr/share/ollama/.ollama/models; pulls go to <cacheDir>/ollama.
     */
    models: z.string().min(1).optional(),
    /** The registry Ollama names are pulled from (`registry.ollama.ai` names; a mirror here). */
    registry: z.url({ protocol: /^https?$/ }).default('https://registry.ollama.ai'),
  })
  .strict()
  .prefault({});

/** LM Studio's model folder (`<publisher>/<repo>/*.gguf`) as a source of `publisher/repo[:variant]` models. */
const LmStudioSourceSchema = z
  .object({
    /** Unset: ~/.lmstudio/models, then the older ~/.cache/lm-studio/models. */
    models: z.string().min(1).optional(),
  })
  .strict()
  .prefault({});

/** A model's request rules (see api/request-rules.ts). */
export const RequestRulesSchema = z
  .object({
    defaults: z.record(z.string().min(1), z.unknown()).default({}),
    force: z.record(z.string().min(1), z.unknown()).default({}),
    strip: z.array(z.string().min(1)).default([]),
  })
  .strict();
export type RequestRules = z.infer<typeof RequestRulesSchema>;

/** A model's name in `models` (and its aliases). */
const MODEL_NAME = /^[A-Za-z0-9][\w.:@/-]*$/;

export const ModelEntrySchema = z
  .object({
    /** A GGUF file; relative paths are taken from the config file's folder. */
    path: z.string().min(1).optional(),
    /** A Hugging Face identifier `owner/repo[:variant]`. */
    hf: z.string().min(1).optional(),
    /** Context size (`-c`) for the whole instance. */
    ctx: z.number().int().positive().optional(),
    /** Parallel slots (`-np`). */
    parallel: z.number().int().positive().optional(),
    /** Extra llama-server arguments, appended after the ones the proxy computes. */
    args: z.array(z.string()).default([]),
    /** Seconds without requests after which the instance is stopped; 0 = never. */
    ttl: seconds.optional(),
    /** Loaded at start and never evicted. */
    pinned: z.boolean().default(false),
    /** Human description shown in /v1/models. */
    description: z.string().optional(),
    /** Other names a request may give this model (the same instance); unique across the config. */
    aliases: z.array(z.string().regex(MODEL_NAME, 'aliases use letters, digits and . _ - : @ /')).default([]),
    /** Environment variables of its llama-server (over the proxy's own; the placement's CUDA_VISIBLE_DEVICES wins). */
    env: z
      .record(z.string(), z.string())
      .superRefine((env, ctx) => {
        for (const name of Object.keys(env)) {
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: `"${name}": environment variable names use letters, digits and _` });
        }
      })
      .default({}),
    gpu: ModelGpuSchema.optional(),
    /** Agents run on every chat/completions request to this model, before the prompt's slash commands ("parallel 3" gives arguments). */
    agents: z.array(z.string().min(1)).optional(),
    /** Served by another server instead of a llama-server instance of ours: `ollama` (see `backends.ollama`). */
    backend: z.literal('ollama').optional(),
    /** The model's name on the backend (default: the alias). */
    name: z.string().min(1).optional(),
    /**
     * Rules on the body llama-server receives (after any translation; field names are those of that body):
     * `defaults` set when absent, `force` always set, `strip` removed.
     */
    rules: RequestRulesSchema.optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.gpu?.tensorSplit && m.gpu.devices && m.gpu.tensorSplit.length !== m.gpu.devices.length) {
      ctx.addIssue({ code: 'custom', path: ['gpu', 'tensorSplit'], message: `has ${m.gpu.tensorSplit.length} entries for ${m.gpu.devices.length} devices` });
    }
    if (m.backend) {
      // The backend runs the model: nothing of ours to point at a file, place or pin.
      const local: string[] = (['path', 'hf', 'ctx', 'parallel', 'ttl', 'gpu', 'rules'] as const).filter((k) => m[k] !== undefined);
      if (m.args.length > 0) local.push('args');
      if (Object.keys(m.env).length > 0) local.push('env');
      if (m.pinned) local.push('pinned');
      if (local.length > 0) ctx.addIssue({ code: 'custom', message: `is served by the ${m.backend} backend; ${local.join(', ')} only apply to models the proxy runs itself` });
      return;
    }
    if (m.name !== undefined) ctx.addIssue({ code: 'custom', path: ['name'], message: 'is the model\'s name on a backend; set "backend" too' });
    const sources = [m.path, m.hf].filter((s) => s !== undefined).length;
    if (sources !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: sources === 0 ? 'needs one of "path" or "hf"' : 'has both "path" and "hf"; give exactly one',
      });
    }
  });

/**
 * Ollama's default allowed origins (envconfig.AllowedOrigins): pages on this machine on any port and scheme,
 * and desktop-app schemes.
 */
export const DEFAULT_CORS_ORIGINS: string[] = [
  ...['localhost', '127.0.0.1', '[::1]', '0.0.0.0'].flatMap((host) => [`http://${host}`, `https://${host}`, `http://${host}:*`, `https://${host}:*`]),
  'app://*',
  'file://*',
  'tauri://*',
];

/** An Ollama server the proxy forwards some models to (src/backends/ollama.ts). */
const OllamaBackendSchema = z
  .object({
    /** Its address, e.g. http://127.0.0.1:11434. */
    url: z.url({ protocol: /^https?$/ }),
    /** Model identifiers starting with this go to Ollama, without it ("ollama/llama3.2:1b" -> "llama3.2:1b"). */
    prefix: z.string().min(1).default('ollama/'),
    /** Seconds to connect before the request fails with 502. */
    connectTimeout: z.number().positive().default(5),
    /** Seconds without a byte from Ollama (its model load included) before the request fails with 504. */
    readTimeout: z.number().positive().default(300),
    /** List Ollama's own models (prefixed) in /v1/models and /api/tags. */
    listModels: z.boolean().default(true),
  })
  .strict();

const BackendsSchema = z
  .object({
    ollama: OllamaBackendSchema.optional(),
  })
  .strict()
  .prefault({});

/**
 * Several proxies as one cluster (src/cluster/): each serves its state to the others and any of them can take a
 * request; the model goes where the planner's rules pick, one level up. See docs/cluster.md.
 */
const ClusterSchema = z
  .object({
    /** This node's name in views and in x-llama-smart-proxy-node (default: the hostname). */
    node: z.string().regex(/^[A-Za-z0-9][\w.-]*$/, 'a node name uses letters, digits and . _ -').optional(),
    /**
     * The other nodes' proxy URLs. A URL whose host name resolves to several addresses (a Kubernetes headless
     * Service) stands for every one of them; this node's own address among them is skipped.
     */
    peers: z.array(z.url({ protocol: /^https?$/ })).default([]),
    /** Shared secret of node-to-node calls (state, forwarded requests, rpc-server); $LLAMA_SMART_PROXY_CLUSTER_TOKEN. */
    token: z.string().min(16, 'a cluster token has at least 16 characters').optional(),
    /** The URL peers reach this node at (shown in views; default: http://<server.host>:<server.port>). */
    advertiseUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Seconds between two polls of each peer's state (a node also pushes its state when it changes). */
    pollInterval: z.number().positive().default(2),
    /** Seconds a poll may take. */
    pollTimeout: z.number().positive().default(2),
    /** Seconds without an answer after which a peer is taken for down (its models are placed elsewhere). */
    downAfter: z.number().positive().default(4),
    /**
     * Address rpc-server processes started for other nodes listen on (llama.cpp's RPC has no authentication:
     * a private network only). No default: without it this node lends no devices over RPC.
     */
    rpcHost: z.string().min(1).optional(),
    /** Ports rpc-server processes are given, inclusive. */
    rpcPortRange: z.tuple([port, port]).default([50052, 50151]),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.rpcHost === '0.0.0.0' || c.rpcHost === '::') {
      ctx.addIssue({ code: 'custom', path: ['rpcHost'], message: 'rpc-server has no authentication: bind it to one private address, not every interface' });
    }
  })
  .prefault({});

/** One API key with its policy (issue 15): who it is (name), what it may use, how much. */
export const ApiKeySchema = z
  .object({
    /** Shown in errors, logs, /metrics and /usage (never the key). */
    name: z.string().min(1, 'a key needs a name').max(64).regex(/^[A-Za-z0-9_.@-]+$/, 'a key name is letters, digits, "_", ".", "@" or "-"'),
    key: z.string().min(1, 'an API key cannot be empty').optional(),
    /** The key's SHA-256 in hex, so the config holds no secret. */
    keySha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'keySha256 is 64 hex digits (the SHA-256 of the key)').optional(),
    /** Globs over model ids (`*` any run of characters); absent: every model. */
    models: z.array(z.string().min(1)).optional(),
    /** Requests of this key in flight at once. */
    maxConcurrent: z.number().int().positive().optional(),
    requestsPerMinute: z.number().int().positive().optional(),
    /** Prompt + completion tokens per UTC day; new requests are refused once over. */
    tokensPerDay: z.number().int().positive().optional(),
    priority: z.enum(['low', 'normal', 'high']).default('normal'),
    /** Requests of this key that may wait at once (besides the global pool.maxQueue). */
    maxQueue: z.number().int().nonnegative().optional(),
    role: z.enum(['user', 'admin']).default('user'),
  })
  .strict()
  .superRefine((k, ctx) => {
    if ((k.key === undefined) === (k.keySha256 === undefined)) ctx.addIssue({ code: 'custom', path: ['key'], message: `key "${k.name}": give exactly one of "key" and "keySha256"` });
  });

export const ConfigSchema = z
  .object({
    server: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: port.default(8080),
        /** Largest request body accepted, in MiB (413 above it). */
        bodyLimitMiB: z.number().positive().default(32),
        /** When any: every request but GET /health and GET / must carry one (Authorization: Bearer, or x-api-key). */
        apiKeys: z.array(z.string().min(1, 'an API key cannot be empty')).default([]),
        /** Keys with a name, a role and limits; `apiKeys` are admin keys without limits. */
        keys: z
          .array(ApiKeySchema)
          .default([])
          .superRefine((keys, ctx) => {
            const seen = new Set<string>();
            keys.forEach((k, i) => {
              if (seen.has(k.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `key name "${k.name}" is used twice` });
              seen.add(k.name);
            });
          }),
        /** Seconds to receive a request's headers (from its first byte, or from the connection); 0 = no limit. */
        headersTimeout: seconds.default(30),
        /** Seconds to receive a whole request, body included (not its answer, which may stream for minutes); 0 = no limit. */
        requestTimeout: seconds.default(120),
        /** Seconds an idle connection is kept open between two requests. */
        keepAliveTimeout: z.number().positive().default(65),
        /** Open connections per client address; more are answered 503 and closed. 0 = no limit. */
        maxConnectionsPerClient: z.number().int().nonnegative().default(128),
        cors: z
          .object({
            /** Origins a browser page may call from (`*` inside one: anything there; a lone "*": every origin). */
            origins: z.array(z.string().min(1, 'an origin cannot be empty')).default(DEFAULT_CORS_ORIGINS),
          })
          .strict()
          .prefault({}),
        /**
         * Deepest nesting of arrays and objects a request body may have (400 above it). llama-server crashes on
         * bodies nested ~100,000 deep, and the proxy's own JSON handling is recursive: capped at 1024.
         */
        maxJsonDepth: z.number().int().min(8).max(1024).default(64),
        /** Proxied requests kept in memory for GET /requests and the dashboard (the oldest dropped first); 0 = none. */
        requestLog: z.number().int().nonnegative().max(1_000_000).default(1000),
        /** Keep each recorded request's body and answer (for inspection; API keys and auth headers never). */
        captureBodies: z.boolean().default(false),
        /** With captureBodies: KiB kept of each body and of each answer (the rest is cut). */
        captureBodyKiB: z.number().positive().max(1024).default(32),
        /**
         * What a streamed chat request that waits for its model to load or download is told: `off` (only a
         * download's SSE comments, which chat UIs do not show) or `reasoning` (progress as `reasoning_content`
         * deltas, which Open WebUI and others show as a thinking block).
         */
        loadingProgress: z.enum(['off', 'reasoning']).default('off'),
      })
      .strict()
      .superRefine((s, ctx) => {
        // Node refuses this combination; say it in the config's terms.
        if (s.headersTimeout > 0 && s.requestTimeout > 0 && s.headersTimeout > s.requestTimeout) {
          ctx.addIssue({ code: 'custom', path: ['headersTimeout'], message: `must not exceed requestTimeout (${s.requestTimeout}): the headers are part of the request` });
        }
      })
      .prefault({}),
    llamaServer: z
      .object({
        /** Path to a llama-server binary; wins over LLAMA_SERVER, PATH and the managed build. */
        binary: z.string().min(1).optional(),
        /** Arguments added to every instance. */
        extraArgs: z.array(z.string()).default([]),
        /** Seconds an instance may take to become ready. */
        startTimeout: seconds.default(120),
        /** Seconds between SIGTERM and SIGKILL when stopping an instance. */
        stopTimeout: seconds.default(10),
        /** Seconds between two liveness probes (GET /health) of a ready instance. */
        healthInterval: z.number().positive().default(5),
        /** Seconds a liveness probe may take. */
        healthTimeout: z.number().positive().default(5),
        /** Probes failed in a row after which an instance is taken for hung, killed and restarted; 0 = no probes. */
        healthFailures: z.number().int().nonnegative().default(3),
        /**
         * Seconds to wait for an instance's answer to begin (its prompt processed: long prompts on a CPU take
         * minutes) and, once it streams, between two pieces of it; 0 = no limit. A hung instance is caught sooner
         * by the liveness probes.
         */
        readTimeout: seconds.default(600),
        /** llama-server's -lv; at 4 it logs its memory buffers, which the proxy reads as the instance's footprint. */
        logVerbosity: z.number().int().min(0).max(5).default(4),
        /** Backend of the managed build: auto picks cuda when nvcc is found. */
        backend: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
        /** Build the managed llama-server when none is found (otherwise fail with a message). */
        autoBuild: z.boolean().default(true),
        /** Parallel compile jobs for the managed build (default: number of CPUs). */
        buildJobs: z.number().int().positive().optional(),
        /**
         * Host RAM each instance may fill with its prompt cache (llama-server's --cache-ram, whose own default is
         * 8192 MiB per instance); auto: a quarter of the machine's RAM shared by pool.size instances, at most 8192;
         * -1 no limit, 0 no cache.
         */
        cacheRamMiB: z.union([z.literal('auto'), z.number().int().min(-1)]).default('auto'),
      })
      .strict()
      .prefault({}),
    pool: z
      .object({
        /** How many instances may run at once. */
        size: z.number().int().positive().default(1),
        /** Ports given to instances, inclusive; a port in use by someone else is skipped. */
        portRange: z.tuple([port, port]).default([41000, 41999]),
        /** Requests that may wait for an instance; more get 503. */
        maxQueue: z.number().int().nonnegative().default(64),
        /** Requests one key (API key name, else client address) may have waiting at once; more get 429 with
         *  Retry-After while other keys still queue. A key's own `maxQueue` wins. Unset: only pool.maxQueue. */
        maxQueuePerKey: z.number().int().positive().optional(),
        /** Fair queueing: an instance takes at most its slots (`parallel`) in flight; the rest wait in the proxy and
         *  are served round-robin across keys, weighted by priority (low 1, normal 2, high 4). false: a ready
         *  instance takes every request and llama-server queues the excess, in arrival order. */
        fairness: z.boolean().default(true),
        /** Seconds a request may wait in the queue before it gets 503. */
        queueTimeout: seconds.default(300),
        /** Seconds an unload or an eviction waits for the instance's requests in flight to finish before it stops it. */
        drainTimeout: seconds.default(60),
        /** Default idle TTL in seconds for models that set none; 0 = never. */
        ttl: seconds.default(0),
      })
      .strict()
      .prefault({}),
    models: z.record(z.string().regex(MODEL_NAME, 'aliases use letters, digits and . _ - : @ /'), ModelEntrySchema).default({}),
    /** Settings for models that a request names without an alias (file paths, Hugging Face ids). */
    modelDefaults: z
      .object({
        ctx: z.number().int().positive().default(4096),
        parallel: z.number().int().positive().default(1),
        args: z.array(z.string()).default([]),
      })
      .strict()
      .prefault({}),
    /** Folder that path identifiers in requests may name files from (nothing outside it). */
    modelsDir: z.string().min(1).default('./models'),
    /** Where the managed llama-server build, the demo model and downloads live. */
    cacheDir: z.string().min(1).optional(),
    gpu: GpuSchema,
    hub: HubSchema,
    ollama: OllamaSourceSchema,
    lmstudio: LmStudioSourceSchema,
    agents: AgentsSchema,
    backends: BackendsSchema,
    cluster: ClusterSchema,
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** auto: human-readable lines when stdout is a terminal, JSON lines otherwise. */
        format: z.enum(['auto', 'json', 'pretty']).default('auto'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const named = new Map<string, string>();
    for (const [alias, m] of Object.entries(c.models)) {
      if (m.backend === 'ollama' && !c.backends.ollama) {
        ctx.addIssue({ code: 'custom', path: ['models', alias, 'backend'], message: 'is "ollama" but backends.ollama.url is not set' });
      }
      m.aliases.forEach((other, i) => {
        const clash = other in c.models ? `is the name of model "${other}"` : named.has(other) ? `is already an alias of model "${named.get(other)}"` : undefined;
        if (clash) ctx.addIssue({ code: 'custom', path: ['models', alias, 'aliases', i], message: `"${other}" ${clash}` });
        named.set(other, alias);
      });
    }
  });

export type ConfigInput = z.input<typeof ConfigSchema>;
export type ParsedConfig = z.output<typeof ConfigSchema>;
export type ModelEntry = z.output<typeof ModelEntrySchema>;
export type ApiKeyConfig = z.output<typeof ApiKeySchema>;
export type GpuConfig = z.output<typeof GpuSchema>;
export type AgentsConfig = z.output<typeof AgentsSchema>;
export type HubConfig = z.output<typeof HubSchema>;
export type ClusterConfig = z.output<typeof ClusterSchema>;
export type OllamaBackendConfig = z.output<typeof OllamaBackendSchema>;
