/**
 * Ollama's model names, parsed as Ollama parses them (its `model/name.go`), without touching the disk:
 *
 *   llama3.2                              -> registry.ollama.ai / library / llama3.2 : latest
 *   llama3.2:1b                           -> registry.ollama.ai / library / llama3.2 : 1b
 *   library/llama3.2:1b, user/model:tag   -> registry.ollama.ai / <namespace> / <model> : <tag>
 *   registry.ollama.ai/library/llama3.2   -> the same, written out; `ollama.com/...` is the same registry
 *   my.registry:5000/team/model:tag       -> another registry
 *
 * A name maps to its manifest at `manifests/<host>/<namespace>/<model>/<tag>` in a store. Pure.
 */

export const OLLAMA_REGISTRY_HOST = 'registry.ollama.ai';
export const OLLAMA_DEFAULT_NAMESPACE = 'library';
export const OLLAMA_DEFAULT_TAG = 'latest';

export interface OllamaName {
  host: string;
  namespace: string;
  model: string;
  tag: string;
}

const PART = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST = /^[A-Za-z0-9][A-Za-z0-9.-]*(?::\d{1,5})?$/;
const HOST_ALIASES: Readonly<Record<string, string>> = { 'ollama.com': OLLAMA_REGISTRY_HOST, 'www.ollama.com': OLLAMA_REGISTRY_HOST };

/** How explicitly a name says it is Ollama's: a host, a bare model, or `namespace/model` (also a Hugging Face id's shape). */
export type OllamaNameForm = 'host' | 'bare' | 'namespaced';

/** `name` parsed, or undefined when it is not an Ollama name (Hugging Face hosts, paths, odd characters). */
export type ParsedOllamaName = OllamaName & { form: OllamaNameForm };

export function parseOllamaName(name: string): ParsedOllamaName | undefined {
  let n = name.trim().replace(/^https?:\/\//i, '');
  if (n === '' || n.length > 350 || /^(hf\.co|huggingface\.co)\//i.test(n) || n.toLowerCase().endsWith('.gguf')) return undefined;
  let tag = OLLAMA_DEFAULT_TAG;
  const slash = n.lastIndexOf('/');
  const colon = n.lastIndexOf(':');
  if (colon > slash) {
    tag = n.slice(colon + 1);
    n = n.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  const parts = n.split('/');
  if (parts.length > 3) return undefined;
  const model = parts[parts.length - 1]!;
  const namespace = parts.length >= 2 ? parts[parts.length - 2]! : OLLAMA_DEFAULT_NAMESPACE;
  const rawHost = parts.length === 3 ? parts[0]!.toLowerCase() : OLLAMA_REGISTRY_HOST;
  const host = HOST_ALIASES[rawHost] ?? rawHost;
  if (!PART.test(model) || !PART.test(namespace) || !HOST.test(host) || model.endsWith('.') || namespace.endsWith('.')) return undefined;
  // A first part that does not look like a host (`a/b/c`) is no registry.
  if (parts.length === 3 && !/[.:]/.test(host) && host !== 'localhost') return undefined;
  const form: OllamaNameForm = parts.length === 3 ? 'host' : parts.length === 1 ? 'bare' : 'namespaced';
  return { host, namespace, model, tag, form };
}

/** The name as Ollama lists it: `llama3.2:1b`, `user/model:tag`, `host/namespace/model:tag` (the shortest that says it). */
export function ollamaDisplayName(n: OllamaName): string {
  if (n.host === OLLAMA_REGISTRY_HOST && n.namespace === OLLAMA_DEFAULT_NAMESPACE) return `${n.model}:${n.tag}`;
  if (n.host === OLLAMA_REGISTRY_HOST) return `${n.namespace}/${n.model}:${n.tag}`;
  return `${n.host}/${n.namespace}/${n.model}:${n.tag}`;
}

/** The manifest's path in a store, relative to it, as path segments. */
export function manifestSegments(n: OllamaName): string[] {
  return ['manifests', n.host, n.namespace, n.model, n.tag];
}

/** Two names for the same model (Ollama compares names case-insensitively). */
export function sameOllamaName(a: OllamaName, b: OllamaName): boolean {
  return ollamaDisplayName(a).toLowerCase() === ollamaDisplayName(b).toLowerCase();
}
