import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { createEngine } from '../engine/create-engine.js';
import type { EngineStats } from '../engine/engine.js';
import { unclassifiedRecord, type GroupedRecord } from '../engine/grouped-record.js';
import { UnclassifiedTally } from '../engine/unclassified-tally.js';
import { recordFromJournalObject, recordFromTextLine } from '../ingest/journald-short.js';
import { streamKeyOf, type LogRecord } from '../ingest/record.js';
import type { RuleSet } from '../rules/index.js';
import { readLineBatches } from './read-lines.js';

export interface AnalyzeResult {
  lines: number;
  malformedJsonLines: number;
  stats: EngineStats;
  /** Multi-line groups no rule classified: where the next rule is to be found. */
  unclassifiedTraces: UnclassifiedTally;
}

export interface AnalyzeOptions {
  stdin?: Readable;
  /** Also hand on every group no rule classified (`analyze --all`), in close order with the events. */
  all?: boolean;
}

/**
 * Runs the server's engine over log files offline: journald `short*` text, raw linkerd files and
 * `journalctl -o json` (one object per line) may be mixed, even within one file. Lines of a raw
 * file carry no host or process, so the file's name stands in for the service: two raw files are
 * two streams, never joined.
 */
export async function analyzeFiles(
  paths: readonly string[],
  ruleSet: RuleSet,
  onRecords: (records: GroupedRecord[]) => void | Promise<void>,
  options: AnalyzeOptions = {},
): Promise<AnalyzeResult> {
  let pending: GroupedRecord[] = [];
  const unclassifiedTraces = new UnclassifiedTally();
  const engine = createEngine({
    groupers: () => ruleSet.groupers,
    classifier: () => ruleSet.classifier,
    // Files are read in order: nothing to put back in order, and no wall clock to wait for.
    ordered: true,
    sink: (events) => {
      for (const event of events) pending.push(event);
    },
    unclassified: (group) => {
      unclassifiedTraces.add(group);
      if (options.all === true) pending.push(unclassifiedRecord(group));
    },
  });
  let lines = 0;
  let malformedJsonLines = 0;
  const receivedAt = Date.now();
  for (const path of paths.length > 0 ? paths : ['-']) {
    const fallbackService = path === '-' ? 'stdin' : basename(path);
    for await (const batch of readLineBatches(path, { stdin: options.stdin })) {
      const records: LogRecord[] = [];
      for (const line of batch) {
        lines++;
        let record: LogRecord | null;
        if (line.charCodeAt(0) === 123 /* { */) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            parsed = undefined;
          }
          if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
            record = recordFromJournalObject(parsed as Record<string, unknown>, receivedAt);
          } else {
            malformedJsonLines++;
            record = recordFromTextLine(line, receivedAt);
          }
        } else {
          record = recordFromTextLine(line, receivedAt);
        }
        if (record === null) continue;
        if (record.host === '' && record.service === '' && record.pid === '') {
          record.service = fallbackService;
          record.stream = streamKeyOf('', fallbackService, '');
        }
        records.push(record);
      }
      engine.push(records);
      if (pending.length > 0) {
        const out = pending;
        pending = [];
        await onRecords(out);
      }
    }
  }
  engine.flush();
  if (pending.length > 0) await onRecords(pending);
  return { lines, malformedJsonLines, stats: engine.stats(), unclassifiedTraces };
}
