import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { Ollama } from 'ollama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyProjectorImageTokens, writeTinyProjector } from '../../src/gguf/index.js';
import { llamaTools } from '../helpers/llama.js';
import { startLlamaServer } from '../helpers/llama-process.js';
import { modelsFolder, postJson, startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tools = llamaTools();
const server = tools.server;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const out = Buffer.alloc(8 + data.length + 4);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

/** A `width` x `height` 8-bit RGB PNG coloured by `pixel`, base64-encoded. */
function png(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): string {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  const stride = 1 + 3 * width; // filter byte (0 = none) + pixels
  const raw = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * stride + 1 + 3 * x);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]).toString('base64');
}

const RED = png(8, 8, () => [255, 0, 0]);
const BLUE = png(8, 8, () => [0, 0, 255]);
const GRADIENT = png(20, 12, (x, y) => [x * 12, y * 20, 128]); // not square: resized by llama.cpp
const IMAGE_TOKENS = tinyProjectorImageTokens();

describe.skipIf(!server)(`image requests with a tiny projector${server ? '' : ` (skipped: ${tools.reason})`}`, () => {
  let root: string;
  let textModel: string;
  let projector: string;

  beforeAll(async () => {
    const folder = await modelsFolder([1]);
    root = folder.root;
    textModel = folder.files[1]!;
    // Beside models/, not in it, so it is not listed as a model of its own.
    projector = join(root, 'tiny-mmproj.gguf');
    await writeTinyProjector(projector, { seed: 1, textEmbd: 64 });
  });
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  describe('llama-server directly', () => {
    it('loads the tiny text model with the projector and reports the vision modality', async () => {
      const s = await startLlamaServer(server!, textModel, ['--mmproj', projector, '-c', '512', '-np', '1', '-t', '2']);
      try {
        const props = (await (await fetch(`${s.url}/props`)).json()) as { modalities?: { vision?: boolean } };
        expect(props.modalities?.vision, s.output()).toBe(true);
      } finally {
        await s.stop();
      }
    });

    it('refuses a projector whose output width is not the text model\'s n_embd', async () => {
      const wide = join(root, 'tiny-mmproj-96.gguf');
      await writeTinyProjector(wide, { seed: 1, textEmbd: 96 });
      await expect(startLlamaServer(server!, textModel, ['--mmproj', wide, '-c', '512', '-np', '1', '-t', '2']))
        .rejects.toThrow(/n_embd = 64\D+n_embd = 96/);
    });
  });

  describe('through the proxy', () => {
    let t: TestProxy;
    let ollama: Ollama;
    const question = 'What is in this picture?';

    beforeAll(async () => {
      t = await startTestProxy(server!, root, {
        models: {
          vision: { path: textModel, ctx: 1024, args: ['--mmproj', projector] },
          text: { path: textModel, ctx: 1024 },
        },
      });
      ollama = new Ollama({ host: t.url });
    });
    afterAll(async () => {
      await t?.proxy.close();
    });

    async function openaiChat(content: unknown[]): Promise<{ text: string; promptTokens: number }> {
      const r = await postJson(`${t.url}/v1/chat/completions`, {
        model: 'vision', messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0,
      });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      const text = r.json.choices?.[0]?.message?.content;
      expect(typeof text).toBe('string');
      expect(typeof r.json.usage?.prompt_tokens).toBe('number');
      return { text, promptTokens: r.json.usage.prompt_tokens };
    }

    const image = (b64: string) => ({ type: 'image_url', image_url: { url: `data:image/png;base64,${b64}` } });

    it('/v1/chat/completions: an image_url part is encoded into image tokens that the model reads', async () => {
      const plain = await openaiChat([{ type: 'text', text: question }]);
      const red = await openaiChat([{ type: 'text', text: question }, image(RED)]);
      const blue = await openaiChat([{ type: 'text', text: question }, image(BLUE)]);
      const gradient = await openaiChat([{ type: 'text', text: question }, image(GRADIENT)]);
      console.log(`prompt_tokens without image ${plain.promptTokens}, with image ${red.promptTokens}; answers ${JSON.stringify([plain.text, red.text, blue.text, gradient.text])}`);
      expect(red.text.length).toBeGreaterThan(0);
      expect(red.promptTokens - plain.promptTokens).toBeGreaterThanOrEqual(IMAGE_TOKENS);
      // Every image is resized to the encoder's fixed size: the same number of tokens whatever its size.
      expect(blue.promptTokens).toBe(red.promptTokens);
      expect(gradient.promptTokens).toBe(red.promptTokens);
      // The pixels reach the text model: other images, other (greedy) answers.
      expect(new Set([plain.text, red.text, blue.text]).size).toBe(3);
    });

    it('/api/chat and /api/generate with images (official ollama client)', async () => {
      const options = { num_predict: 6, temperature: 0, seed: 1 };
      const plain = await ollama.chat({ model: 'vision', messages: [{ role: 'user', content: question }], options });
      const withImage = await ollama.chat({ model: 'vision', messages: [{ role: 'user', content: question, images: [RED] }], options });
      expect(withImage.done).toBe(true);
      expect(withImage.message.role).toBe('assistant');
      expect(withImage.message.content.length).toBeGreaterThan(0);
      expect(withImage.eval_count).toBe(6);
      expect(withImage.prompt_eval_count - plain.prompt_eval_count).toBeGreaterThanOrEqual(IMAGE_TOKENS);

      const generated = await ollama.generate({ model: 'vision', prompt: question, images: [BLUE], options });
      expect(generated.done).toBe(true);
      expect(generated.response!.length).toBeGreaterThan(0);
      const generatedPlain = await ollama.generate({ model: 'vision', prompt: question, options });
      expect(generated.prompt_eval_count - generatedPlain.prompt_eval_count).toBeGreaterThanOrEqual(IMAGE_TOKENS);
    });

    it('/api/chat over plain fetch: images as base64 strings, one JSON answer', async () => {
      const r = await postJson(`${t.url}/api/chat`, {
        model: 'vision', stream: false, options: { num_predict: 4, temperature: 0 },
        messages: [{ role: 'user', content: question, images: [GRADIENT] }],
      });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.json).toMatchObject({ model: 'vision', done: true, message: { role: 'assistant' } });
      expect(r.json.message.content.length).toBeGreaterThan(0);
    });

    it('the --mmproj arg makes the vision capability; without it images are refused', async () => {
      expect((await ollama.show({ model: 'vision' })).capabilities).toContain('vision');
      expect((await ollama.show({ model: 'text' })).capabilities).not.toContain('vision');
      const r = await postJson(`${t.url}/api/chat`, {
        model: 'text', stream: false, messages: [{ role: 'user', content: question, images: [RED] }],
      });
      expect(r.status).toBe(400);
      expect(r.json.error).toMatch(/projector/);
    });
  });
});
