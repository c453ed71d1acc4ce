/**
 * OTLP/HTTP logs, JSON encoding (POST /v1/logs; the OTLP specification,
 * https://github.com/open-telemetry/opentelemetry-proto/blob/main/docs/specification.md, and
 * opentelemetry/proto/logs/v1/logs.proto). One ResourceLogs per process (`host.name`,
 * `service.name`, `process.pid`), one LogRecord per event: its time, severity mapped to
 * SeverityNumber, the whole trace as the body, and the rest as attributes — `log.record.uid` (the
 * event id, OpenTelemetry's semantic convention for a log record's unique id), `exception.type`
 * and `exception.message`, and `leakwatch.*` for category, rule, tags, incident and fields.
 *
 * 64-bit integers are decimal strings, as the JSON mapping asks. The specification's own retry
 * rule applies: 429, 502, 503 and 504 are retried, every other 4xx and 5xx is not; a 200 with a
 * `partialSuccess` that rejected records must not be sent again either, so its batch goes to the
 * dead letters with the server's reason.
 */
import type { FieldValue, Severity } from '../../engine/event.js';
import { isLeakEvent } from '../../engine/grouped-record.js';
import type { OutboxEntry } from '../../store/store.js';
import { PACKAGE_VERSION } from '../../version.js';
import { DELIVERED, failureOf, judgeByStatus, recordOf, unixNanos, type TargetAnswer, type TargetFormat, type Verdict } from './format.js';

/** logs.proto SeverityNumber: INFO 9, WARN 13, ERROR 17, FATAL 21. */
export const SEVERITY_NUMBER: Readonly<Record<Severity, number>> = { info: 9, warning: 13, error: 17, critical: 21 };

const RETRYABLE = new Set([429, 502, 503, 504]);

export type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number }
  | { arrayValue: { values: AnyValue[] } };

export interface KeyValue {
  key: string;
  value: AnyValue;
}

function text(value: string): AnyValue {
  return { stringValue: value };
}

function valueOf(field: FieldValue): AnyValue {
  if (typeof field === 'string') return text(field);
  if (typeof field === 'boolean') return { boolValue: field };
  return Number.isSafeInteger(field) ? { intValue: String(field) } : { doubleValue: field };
}

function attribute(key: string, value: AnyValue): KeyValue {
  return { key, value };
}

interface LogRecordJson {
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber?: number;
  severityText?: string;
  body: AnyValue;
  attributes: KeyValue[];
}

function logRecordOf(entry: OutboxEntry): { resource: KeyValue[]; resourceKey: string; logRecord: LogRecordJson } {
  const record = recordOf(entry);
  const resource: KeyValue[] = [];
  if (record.host !== '') resource.push(attribute('host.name', text(record.host)));
  if (record.service !== '') resource.push(attribute('service.name', text(record.service)));
  // process.pid is an int in the semantic conventions; a pid that is not a number is left out.
  if (/^\d{1,18}$/.test(record.pid)) resource.push(attribute('process.pid', { intValue: record.pid }));

  const attributes: KeyValue[] = [attribute('log.record.uid', text(record.id))];
  if (record.exception !== null) {
    attributes.push(attribute('exception.type', text(record.exception.class)));
    if (record.exception.message !== '') attributes.push(attribute('exception.message', text(record.exception.message)));
  }
  if (isLeakEvent(record)) {
    attributes.push(attribute('leakwatch.category', text(record.category)), attribute('leakwatch.rule', text(record.rule)), attribute('leakwatch.rule_version', { intValue: String(record.rule_version) }));
  }
  if (record.tags.length > 0) attributes.push(attribute('leakwatch.tags', { arrayValue: { values: record.tags.map(text) } }));
  if (record.incident_id !== null) attributes.push(attribute('leakwatch.incident_id', text(record.incident_id)));
  attributes.push(attribute('leakwatch.line_count', { intValue: String(record.line_count) }), attribute('leakwatch.truncated', { boolValue: record.truncated }));
  if (record.causes.length > 0) attributes.push(attribute('leakwatch.causes', { arrayValue: { values: record.causes.map((cause) => text(cause.message === '' ? cause.class : `${cause.class}: ${cause.message}`)) } }));
  for (const [name, value] of Object.entries(record.fields)) attributes.push(attribute(`leakwatch.fields.${name}`, valueOf(value)));
  for (const [name, value] of Object.entries(record.annotations)) {
    if (typeof value === 'string') attributes.push(attribute(`leakwatch.${name}`, text(value)));
  }

  const logRecord: LogRecordJson = {
    timeUnixNano: unixNanos(Date.parse(record.timestamp)),
    observedTimeUnixNano: unixNanos(entry.createdAt),
    body: text(record.text),
    attributes,
  };
  if (isLeakEvent(record)) {
    logRecord.severityNumber = SEVERITY_NUMBER[record.severity];
    logRecord.severityText = record.severity;
  }
  return { resource, resourceKey: `${record.host}\u001f${record.service}\u001f${record.pid}`, logRecord };
}

interface PartialSuccess {
  rejectedLogRecords?: unknown;
  errorMessage?: unknown;
}

export const otlpFormat: TargetFormat = {
  encode(entries) {
    const byResource = new Map<string, { resource: { attributes: KeyValue[] }; scopeLogs: [{ scope: { name: string; version: string }; logRecords: LogRecordJson[] }] }>();
    for (const entry of entries) {
      const { resource, resourceKey, logRecord } = logRecordOf(entry);
      let resourceLogs = byResource.get(resourceKey);
      if (!resourceLogs) {
        resourceLogs = { resource: { attributes: resource }, scopeLogs: [{ scope: { name: 'leakwatch', version: PACKAGE_VERSION }, logRecords: [] }] };
        byResource.set(resourceKey, resourceLogs);
      }
      resourceLogs.scopeLogs[0].logRecords.push(logRecord);
    }
    return { body: JSON.stringify({ resourceLogs: [...byResource.values()] }), contentType: 'application/json' };
  },

  judge(answer: TargetAnswer, entries: readonly OutboxEntry[]): Verdict[] {
    if (answer.status < 200 || answer.status >= 300) return judgeByStatus(answer, entries, (status) => RETRYABLE.has(status));
    let partial: PartialSuccess | undefined;
    try {
      partial = (JSON.parse(answer.body === '' ? '{}' : answer.body) as { partialSuccess?: PartialSuccess }).partialSuccess;
    } catch {
      // A 200 is a success; a body we cannot read does not change that.
      partial = undefined;
    }
    const rejected = Number(partial?.rejectedLogRecords ?? 0);
    if (!(rejected > 0)) return entries.map(() => DELIVERED);
    // Which records were refused is not said, and the batch must not be sent again: all of it is kept as dead letters.
    const reason = `partial success: ${rejected} of ${entries.length} log records rejected${typeof partial?.errorMessage === 'string' && partial.errorMessage !== '' ? `: ${partial.errorMessage}` : ''}`;
    const verdict: Verdict = { kind: 'dead', failure: failureOf(answer, reason) };
    return entries.map(() => verdict);
  },
};
