import { BatchBuilder, type DecodedBatch } from './batch.js';
import { lineEnds, linePieces } from './body-text.js';
import { CH_OPEN_BRACE } from '../../text/char-codes.js';

/**
 * Newline-delimited JSON: Vector `newline_delimited` (last LF removed), Fluent Bit `json_lines`
 * and Fluentd's default (LF after every record). A line that is not JSON, or is over
 * --max-line-bytes, is kept as a raw text record and counted; it never rejects the batch. A line
 * holding an array contributes its elements.
 */
export async function decodeNdjson(body: Buffer, batch: BatchBuilder): Promise<DecodedBatch> {
  // A line that starts with `{` (after spaces) makes one record, good or malformed; others may make none or many.
  batch.refuseIfCertainlyOver(lineEnds(body, (byte) => byte === CH_OPEN_BRACE, true), body.length);
  for (const piece of linePieces(body)) await addLines(piece, batch);
  return batch.result();
}

async function addLines(text: string, batch: BatchBuilder): Promise<void> {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    start = end + 1;
    await batch.yieldIfDue();
    if (line === '') continue;
    if (batch.mayBeTooLong(line.length) && Buffer.byteLength(line) > batch.limits.maxLineBytes) {
      batch.addMalformed(line);
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      batch.addMalformed(line);
      continue;
    }
    if (Array.isArray(parsed)) {
      for (const element of parsed) {
        batch.addValue(element);
        await batch.yieldIfDue();
      }
    } else {
      batch.addValue(parsed, undefined, line);
    }
  }
}
