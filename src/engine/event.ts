/** The public event: one per grouped multi-line record that a rule classified (the public interface: forwarded, and printed by `leakwatch analyze --format ndjson`). */
export type Severity = 'info' | 'warning' | 'error' | 'critical';

export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'error', 'critical'];

export interface ExceptionInfo {
  class: string;
  message: string;
}

export type FieldValue = string | number | boolean;

export interface Annotations {
  summary?: string;
  hint?: string;
  runbook_url?: string;
}

export interface LeakEvent {
  /** Stable hash of content and origin: the same record sent twice has the same id. */
  id: string;
  /** ISO-8601 time of the group's first line. */
  timestamp: string;
  host: string;
  service: string;
  pid: string;
  rule: string;
  rule_version: number;
  category: string;
  severity: Severity;
  /** Categories of the other rules that matched the same group. */
  tags: string[];
  /** The group's first line. */
  message: string;
  /** The whole group, lines joined by \n. */
  text: string;
  line_count: number;
  truncated: boolean;
  exception: ExceptionInfo | null;
  causes: ExceptionInfo[];
  fields: Record<string, FieldValue>;
  /** Fingerprint of the incident this event belongs to (from the rule's incident key). */
  incident_key: string;
  incident_id: string | null;
  annotations: Annotations;
}
