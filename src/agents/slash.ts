/**
 * Slash commands (pure). The prompt is the last user message of a chat request (its string content, or the first
 * text part of an array content) or the string `prompt` of a completions request. Commands are read from its
 * start, left to right:
 *
 *   [whitespace] /name [arg ...] [whitespace] /name [arg ...] ... rest of the prompt
 *
 * - a command is `/` + a known, enabled agent name, followed by whitespace or the end of the text; the match is
 *   exact and case-sensitive (`/json,` or `/JSON` are not `/json`);
 * - arguments: only for agents whose manifest declares `args` ({ max, pattern }): up to `max` following
 *   whitespace-separated tokens that fully match `pattern` (`/parallel 5 Hello` -> args ["5"]; a token that does
 *   not match is the start of the prompt);
 * - reading stops at the first token that is not a known command (an unknown `/word`, e.g. a path, or plain
 *   text): it and everything after it stay in the prompt exactly as written;
 * - recognized commands (and the whitespace after the last one) are removed; an agent named twice runs once, at
 *   its first position.
 */
import type { AgentEndpoint, JsonObject } from './types.js';

export interface ArgSpec {
  /** How many argument tokens may follow the command. */
  max: number;
  /** What each argument token must match in full. */
  pattern: RegExp;
}

export interface Command {
  name: string;
  args: string[];
}

export interface ParsedCommands {
  commands: Command[];
  /** The prompt without the commands (the original text when there were none). */
  rest: string;
}

const NO_ARGS: ArgSpec = { max: 0, pattern: /^$/ };

function isSpace(code: number): boolean {
  // space, \t, \n, \v, \f, \r, and the Unicode spaces JavaScript's \s knows
  return code === 32 || (code >= 9 && code <= 13) || (code > 127 && /\s/.test(String.fromCharCode(code)));
}

function skipSpace(text: string, from: number): number {
  let i = from;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

function tokenEnd(text: string, from: number): number {
  let i = from;
  while (i < text.length && !isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** Cheap test used on every request: could this prompt start with a command at all? */
export function startsWithSlash(text: string): boolean {
  const i = skipSpace(text, 0);
  return text.charCodeAt(i) === 47; // '/'
}

/** Reads the commands at the start of `text`. `known` maps enabled agent names to their argument syntax. */
export function parseSlashCommands(text: string, known: ReadonlyMap<string, ArgSpec | undefined>): ParsedCommands {
  const commands: Command[] = [];
  const seen = new Set<string>();
  let consumed = 0;
  for (;;) {
    const start = skipSpace(text, consumed);
    if (text.charCodeAt(start) !== 47) break;
    const end = tokenEnd(text, start);
    const name = text.slice(start + 1, end);
    if (!known.has(name)) break;
    const spec = known.get(name) ?? NO_ARGS;
    const args: string[] = [];
    let after = end;
    while (args.length < spec.max) {
      const argStart = skipSpace(text, after);
      const argEnd = tokenEnd(text, argStart);
      if (argEnd === argStart) break;
      const token = text.slice(argStart, argEnd);
      if (!fullMatch(spec.pattern, token)) break;
      args.push(token);
      after = argEnd;
    }
    if (!seen.has(name)) {
      seen.add(name);
      commands.push({ name, args });
    }
    consumed = after;
  }
  if (commands.length === 0) return { commands, rest: text };
  return { commands, rest: text.slice(skipSpace(text, consumed)) };
}

function fullMatch(pattern: RegExp, token: string): boolean {
  const m = pattern.exec(token);
  return m !== null && m.index === 0 && m[0].length === token.length;
}

/** The prompt text of a request and a way to put a changed text back (into a copy; the input is not mutated). */
export interface PromptSlot {
  text: string;
  replace(text: string): JsonObject;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Where the slash commands are read from, or undefined when the request has no such prompt. */
export function promptSlot(endpoint: AgentEndpoint, body: JsonObject): PromptSlot | undefined {
  if (endpoint === 'completions') {
    const prompt = body.prompt;
    if (typeof prompt !== 'string') return undefined;
    return { text: prompt, replace: (text) => ({ ...body, prompt: text }) };
  }
  const messages = body.messages;
  if (!Array.isArray(messages)) return undefined;
  let index = messages.length - 1;
  while (index >= 0 && !(isObject(messages[index]) && (messages[index] as JsonObject).role === 'user')) index--;
  if (index < 0) return undefined;
  const message = messages[index] as JsonObject;
  const withContent = (content: unknown): JsonObject => {
    const copy = messages.slice();
    copy[index] = { ...message, content };
    return { ...body, messages: copy };
  };
  const content = message.content;
  if (typeof content === 'string') return { text: content, replace: (text) => withContent(text) };
  if (!Array.isArray(content)) return undefined;
  const part = content.findIndex((p) => isObject(p) && p.type === 'text' && typeof p.text === 'string');
  if (part < 0) return undefined;
  const textPart = content[part] as JsonObject;
  return {
    text: textPart.text as string,
    replace: (text) => {
      const parts = content.slice();
      parts[part] = { ...textPart, text };
      return withContent(parts);
    },
  };
}
