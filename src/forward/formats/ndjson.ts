/**
 * NDJSON over HTTP POST: one event per line, exactly as `leakwatch analyze --format ndjson`
 * prints it. What Vector's `http_server` source (`decoding.codec: json`, newline framing) and
 * Fluent Bit's `http` input read.
 */
import { judgeByStatus, type TargetFormat } from './format.js';

export const ndjsonFormat: TargetFormat = {
  encode(entries) {
    let body = '';
    for (const entry of entries) body += `${entry.body}\n`;
    return { body, contentType: 'application/x-ndjson' };
  },
  judge: (answer, entries) => judgeByStatus(answer, entries),
};
