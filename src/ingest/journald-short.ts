import { recordFromObject, recordFromText } from './normalize.js';
import type { LogRecord } from './record.js';

export { parseJournalPrefix, isJournalctlMarker, type JournalPrefix } from './journald-prefix.js';

/**
 * One line of `journalctl -o short|short-precise|short-iso|short-iso-precise` output, or a bare
 * linkerd line, as a LogRecord; null for lines without log data (empty, `-- No entries --`).
 * `short` has no year: it is placed by `receivedAtMs` (yearless-date.ts).
 */
export function recordFromTextLine(line: string, receivedAtMs: number): LogRecord | null {
  return recordFromText(line, receivedAtMs);
}

/** One `journalctl -o json` object (MESSAGE, _HOSTNAME, SYSLOG_IDENTIFIER, _PID, __REALTIME_TIMESTAMP...). */
export function recordFromJournalObject(obj: Record<string, unknown>, receivedAtMs: number): LogRecord {
  return recordFromObject(obj, receivedAtMs);
}
