/** Reads a streamed (SSE) response chunk by chunk, with the time each chunk arrived. */
export interface StreamRecord {
  status: number;
  chunks: { at: number; text: string }[];
  text: string;
  done: boolean;
  error?: string;
  endedAt: number;
}

export async function readStream(
  res: Response,
  onChunk?: (text: string, index: number) => void | Promise<void>,
): Promise<StreamRecord> {
  const record: StreamRecord = { status: res.status, chunks: [], text: '', done: false, endedAt: 0 };
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      record.chunks.push({ at: Date.now(), text });
      record.text += text;
      await onChunk?.(text, record.chunks.length - 1);
    }
    record.done = record.text.includes('data: [DONE]');
  } catch (err) {
    record.error = (err as Error).message;
  }
  record.endedAt = Date.now();
  return record;
}

/** The generated text of an OpenAI chat stream. */
export function streamedContent(record: StreamRecord): string {
  let out = '';
  for (const line of record.text.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    try {
      const event = JSON.parse(line.slice(6)) as { choices?: { delta?: { content?: string }; text?: string }[] };
      out += event.choices?.[0]?.delta?.content ?? event.choices?.[0]?.text ?? '';
    } catch {
      // a partial line split across chunks; ignore
    }
  }
  return out;
}
