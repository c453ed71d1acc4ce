/**
 * Grafana Loki's push API in its JSON form (POST /loki/api/v1/push, `Content-Type:
 * application/json`; https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs):
 * `{"streams": [{"stream": {labels}, "values": [["<ns since epoch, a string>", "<line>"]]}]}`.
 *
 * Labels stay few and low-cardinality — job="leakwatch", host, service, category, severity; never
 * the pid or the id, each of which would make a stream per process or per event. The line is the
 * event's JSON, so its id is found with `|= "<id>"` or `| json | id="<id>"`. Loki drops an entry
 * whose stream, time and line equal one it already has, so a retried batch does not duplicate.
 */
import { isLeakEvent } from '../../engine/grouped-record.js';
import { judgeByStatus, recordOf, unixNanos, type TargetFormat } from './format.js';

export const LOKI_JOB = 'leakwatch';

interface LokiStream {
  stream: Record<string, string>;
  values: Array<[string, string]>;
}

export const lokiFormat: TargetFormat = {
  encode(entries) {
    const streams = new Map<string, LokiStream>();
    for (const entry of entries) {
      const record = recordOf(entry);
      const labels: Record<string, string> = { job: LOKI_JOB };
      // Loki refuses empty label values; an unknown host or service is simply not a label.
      if (record.host !== '') labels['host'] = record.host;
      if (record.service !== '') labels['service'] = record.service;
      if (isLeakEvent(record)) {
        labels['category'] = record.category;
        labels['severity'] = record.severity;
      }
      const key = JSON.stringify(labels);
      let stream = streams.get(key);
      if (!stream) streams.set(key, (stream = { stream: labels, values: [] }));
      stream.values.push([unixNanos(Date.parse(record.timestamp)), entry.body]);
    }
    return { body: JSON.stringify({ streams: [...streams.values()] }), contentType: 'application/json' };
  },
  judge: (answer, entries) => judgeByStatus(answer, entries),
};
