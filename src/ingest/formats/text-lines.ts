import { BatchBuilder, type DecodedBatch } from './batch.js';

/**
 * Plain text lines: Vector `text`/`raw_message` (trailing LF kept), Fluentd `single_value`,
 * journalctl `short*` output, bare linkerd log files posted with curl.
 */
export function decodeTextLines(text: string, receivedAtMs: number): DecodedBatch {
  const batch = new BatchBuilder(receivedAtMs);
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (end > start) batch.addTextLine(text.slice(start, end));
    start = end + 1;
  }
  return batch.result();
}
