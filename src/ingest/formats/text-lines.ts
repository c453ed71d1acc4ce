import { BatchBuilder, type DecodedBatch } from './batch.js';
import { CH_CARRIAGE_RETURN, CH_DASH, CH_NEWLINE } from '../../text/char-codes.js';
import { lineEnds, linePieces } from './body-text.js';

/**
 * Plain text lines: Vector `text`/`raw_message` (trailing LF kept), Fluentd `single_value`,
 * journalctl `short*` output, bare linkerd log files posted with curl. A line over
 * --max-line-bytes is kept cut, counted malformed.
 */
export async function decodeTextLines(body: Buffer, batch: BatchBuilder): Promise<DecodedBatch> {
  batch.refuseIfCertainlyOver(lineEnds(body, startsLogText), body.length);
  for (const piece of linePieces(body)) await addLines(piece, batch);
  return batch.result();
}

async function addLines(text: string, batch: BatchBuilder): Promise<void> {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (end > start) batch.addTextLine(text.slice(start, end));
    start = end + 1;
    await batch.yieldIfDue();
  }
}

/** Whether a line starting with this byte is sure to make a record: not empty, not only a CR, not a journalctl marker (`-- Boot ...`). */
function startsLogText(byte: number | undefined): boolean {
  return byte !== undefined && byte !== CH_NEWLINE && byte !== CH_CARRIAGE_RETURN && byte !== CH_DASH;
}
