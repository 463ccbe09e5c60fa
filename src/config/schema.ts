/**
 * The configuration file's schema. Every key has a default so that an empty file (or none) is valid;
 * docs/configuration.md documents each key with the same defaults.
 */
import { z } from 'zod';

const seconds = z.number().nonnegative();
const port = z.number().int().min(0).max(65535);

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
  })
  .strict()
  .superRefine((m, ctx) => {
    const sources = [m.path, m.hf].filter((s) => s !== undefined).length;
    if (sources !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: sources === 0 ? 'needs one of "path" or "hf"' : 'has both "path" and "hf"; give exactly one',
      });
    }
  });

export const ConfigSchema = z
  .object({
    server: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: port.default(8080),
        /** Largest request body accepted, in MiB (413 above it). */
        bodyLimitMiB: z.number().positive().default(32),
      })
      .strict()
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
        /** Backend of the managed build: auto picks cuda when nvcc is found. */
        backend: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
        /** Build the managed llama-server when none is found (otherwise fail with a message). */
        autoBuild: z.boolean().default(true),
        /** Parallel compile jobs for the managed build (default: number of CPUs). */
        buildJobs: z.number().int().positive().optional(),
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
        /** Seconds a request may wait in the queue before it gets 503. */
        queueTimeout: seconds.default(300),
        /** Default idle TTL in seconds for models that set none; 0 = never. */
        ttl: seconds.default(0),
      })
      .strict()
      .prefault({}),
    models: z.record(z.string().regex(/^[A-Za-z0-9][\w.:@/-]*$/, 'aliases use letters, digits and . _ - : @ /'), ModelEntrySchema).default({}),
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
    /** GPU settings (filled in by the GPU work). */
    gpu: z.record(z.string(), z.unknown()).default({}),
    /** Agent settings (filled in by the agents work). */
    agents: z.record(z.string(), z.unknown()).default({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof ConfigSchema>;
export type ParsedConfig = z.output<typeof ConfigSchema>;
export type ModelEntry = z.output<typeof ModelEntrySchema>;
