import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';

/**
 * Yields the lines of a file (or stdin for '-') in batches. Batching keeps the per-line cost to a
 * slice of the chunk: split2 would emit every line as its own stream chunk, which costs more than
 * the engine spends on the line. A line longer than maxLineBytes is cut, so one endless line cannot
 * hold memory hostage.
 */
export async function* readLineBatches(
  path: string,
  options: { batchLines?: number; maxLineBytes?: number; stdin?: Readable } = {},
): AsyncGenerator<string[]> {
  const batchLines = options.batchLines ?? 8192;
  const maxLineChars = options.maxLineBytes ?? 1024 * 1024;
  const input: Readable = path === '-' ? (options.stdin ?? process.stdin) : createReadStream(path, { highWaterMark: 1 << 20 });
  input.setEncoding('utf8');
  let carry = '';
  let batch: string[] = [];
  let skippingRestOfLine = false;
  for await (const chunk of input as AsyncIterable<string>) {
    const text = carry.length > 0 ? carry + chunk : chunk;
    let start = 0;
    let newline = text.indexOf('\n', start);
    if (skippingRestOfLine) {
      if (newline === -1) continue;
      skippingRestOfLine = false;
      start = newline + 1;
      newline = text.indexOf('\n', start);
    }
    while (newline !== -1) {
      const end = newline > start && text.charCodeAt(newline - 1) === 13 ? newline - 1 : newline;
      batch.push(end - start > maxLineChars ? text.slice(start, start + maxLineChars) : text.slice(start, end));
      if (batch.length >= batchLines) {
        yield batch;
        batch = [];
      }
      start = newline + 1;
      newline = text.indexOf('\n', start);
    }
    carry = text.slice(start);
    if (carry.length > maxLineChars) {
      // Keep only the head of an over-long line; the rest up to its newline is dropped.
      batch.push(carry.slice(0, maxLineChars));
      carry = '';
      skippingRestOfLine = true;
    }
  }
  if (carry.length > 0) batch.push(carry.endsWith('\r') ? carry.slice(0, -1) : carry);
  if (batch.length > 0) yield batch;
}
