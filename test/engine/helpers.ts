import type { Classifier } from '../../src/engine/classifier.js';
import type { LeakEvent } from '../../src/engine/event.js';
import type { Group } from '../../src/engine/group.js';
import { streamKeyOf, type LogRecord } from '../../src/ingest/record.js';

/** A classifier that turns every closed group into an event, keeping the group for assertions. */
export function everyGroupClassifier(seen: Group[]): Classifier {
  return {
    classify(group: Group): LeakEvent {
      seen.push(group);
      return {
        id: `${group.stream}:${seen.length}`,
        timestamp: new Date(group.time).toISOString(),
        host: group.host,
        service: group.service,
        pid: group.pid,
        rule: 'every-group',
        rule_version: 1,
        category: 'test',
        severity: 'info',
        tags: [group.closeReason],
        message: group.lines[0] ?? '',
        text: group.lines.join('\n'),
        line_count: group.lines.length,
        truncated: group.truncated,
        exception: null,
        causes: [],
        fields: {},
        incident_key: group.stream,
        incident_id: null,
        annotations: {},
      };
    },
  };
}

export function recordOf(host: string, service: string, pid: string, message: string, time = 1_509_537_572_000): LogRecord {
  return { time, host, service, pid, stream: streamKeyOf(host, service, pid), message };
}

/** Records of one stream, one per line. */
export function linesOf(host: string, service: string, pid: string, lines: readonly string[]): LogRecord[] {
  return lines.map((line) => recordOf(host, service, pid, line));
}

/** Interleaves several record lists one record at a time, as journald does with concurrent processes. */
export function interleave(...lists: LogRecord[][]): LogRecord[] {
  const out: LogRecord[] = [];
  const longest = Math.max(...lists.map((list) => list.length));
  for (let index = 0; index < longest; index++) {
    for (const list of lists) {
      const record = list[index];
      if (record) out.push(record);
    }
  }
  return out;
}
