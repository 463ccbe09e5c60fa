import { inject } from 'vitest';

/** The llama.cpp tools found by the global setup; `reason` says why they are missing. */
export function llamaTools(): { server?: string; fitParams?: string; quantize?: string; reason: string } {
  const server = inject('llamaServer') || undefined;
  const fitParams = inject('llamaFitParams') ?? undefined;
  const quantize = inject('llamaQuantize') ?? undefined;
  const error = inject('llamaToolsError');
  const reason = error ? `llama.cpp tools unavailable: ${error}` : '';
  return { ...(server ? { server } : {}), ...(fitParams ? { fitParams } : {}), ...(quantize ? { quantize } : {}), reason };
}
