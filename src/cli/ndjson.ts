import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { XrefError } from '../domain/errors.ts';

export type NdjsonLine =
  | { line: number; value: unknown; bytes: number }
  | { line: number; error: XrefError; text: string };

/** Opens a file, or standard input for `-`. */
export function openInput(file: string): Readable {
  return file === '-' ? process.stdin : createReadStream(file);
}

/** Reads NDJSON: one value per non-empty line, or the parse error of that line. */
export async function* readNdjson(input: Readable): AsyncGenerator<NdjsonLine> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() === '') continue;
    try {
      yield { line, value: JSON.parse(text), bytes: Buffer.byteLength(text) };
    } catch (cause) {
      yield { line, error: new XrefError('XREF_INVALID_JSON', `invalid JSON (${(cause as Error).message})`, { cause }), text };
    }
  }
}
