/**
 * Which requests get a record: the ones the proxy forwards to a model (every API family), named by family and
 * endpoint. Admin routes, listings and the dashboard are not requests to a model and get none.
 */

export type RequestFamily = 'openai' | 'anthropic' | 'responses' | 'ollama' | 'llama-server';

export interface RecordedRoute {
  family: RequestFamily;
  /** The endpoint as the family names it: `chat/completions`, `messages`, `api/chat`, `tokenize`. */
  endpoint: string;
}

const POST_ROUTES = new Map<string, RecordedRoute>();
const GET_ROUTES = new Map<string, RecordedRoute>();

for (const suffix of ['chat/completions', 'completions', 'embeddings', 'rerank', 'audio/transcriptions']) {
  for (const path of [`/v1/${suffix}`, `/${suffix}`]) POST_ROUTES.set(path, { family: 'openai', endpoint: suffix });
}
for (const suffix of ['messages', 'messages/count_tokens']) POST_ROUTES.set(`/v1/${suffix}`, { family: 'anthropic', endpoint: suffix });
for (const suffix of ['responses', 'responses/input_tokens']) {
  for (const path of [`/v1/${suffix}`, `/${suffix}`]) POST_ROUTES.set(path, { family: 'responses', endpoint: suffix });
}
for (const suffix of ['chat', 'generate', 'embed', 'embeddings']) POST_ROUTES.set(`/api/${suffix}`, { family: 'ollama', endpoint: `api/${suffix}` });
for (const suffix of ['tokenize', 'detokenize', 'apply-template', 'infill']) POST_ROUTES.set(`/${suffix}`, { family: 'llama-server', endpoint: suffix });
for (const suffix of ['props', 'slots']) GET_ROUTES.set(`/${suffix}`, { family: 'llama-server', endpoint: suffix });

/** The family and endpoint of a request that gets a record; undefined for every other request. */
export function recordedRoute(method: string, url: string): RecordedRoute | undefined {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (method === 'POST') return POST_ROUTES.get(path);
  if (method === 'GET') return GET_ROUTES.get(path);
  return undefined;
}
