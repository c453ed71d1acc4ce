/**
 * The shape of a rule file after it passed the JSON Schema (schema/leakwatch-rules.schema.json).
 * Keep in step with the schema: the loader trusts these types only after validation.
 */
import type { Severity } from '../engine/event.js';

export type PredicateField =
  | 'text'
  | 'first_line'
  | 'level'
  | 'exception.class'
  | 'exception.message'
  | 'cause.class'
  | 'cause.message'
  | 'host'
  | 'service';

export type PredicateOp = 'equals' | 'contains' | 'startswith' | 'endswith' | 'regex' | 'in';

/** `{ "field|op": value }`, exactly one key. */
export type RawPredicate = Record<string, string | string[]>;

export type ExtractSource = 'text' | 'first_line' | 'exception.class' | 'exception.message' | 'cause.class' | 'cause.message';

export type FieldType = 'int' | 'float' | 'bytes' | 'string';

export interface RawExtract {
  from?: ExtractSource;
  regex: string;
  types?: Record<string, FieldType>;
  optional?: boolean;
}

export interface RawThresholdCondition {
  field?: string;
  gte?: number;
  gt?: number;
  lte?: number;
  lt?: number;
  count?: number;
  within?: string;
}

export interface RawThreshold {
  if: RawThresholdCondition;
  severity: Severity;
}

export interface RawRuleTest {
  name: string;
  stream?: { host?: string; service?: string; pid?: string | number };
  input: string;
  expect: Array<Record<string, unknown>>;
}

export interface RawRule {
  id: string;
  version: number;
  enabled?: boolean;
  title: string;
  description?: string;
  references?: string[];
  priority?: number;
  /** Only tried when no non-fallback rule matched: a catch-all that never shadows a specific rule. */
  fallback?: boolean;
  match: { literals: string[]; all?: RawPredicate[]; any?: RawPredicate[]; none?: RawPredicate[] };
  extract?: RawExtract[];
  derive?: Record<string, string>;
  classify: { category: string; severity: Severity };
  thresholds?: RawThreshold[];
  incident?: { key?: string[] };
  annotations?: { summary?: string; hint?: string; runbook_url?: string };
  tests?: RawRuleTest[];
}

/** A log layout a grouper knows: the header regex and, for two-line headers, the second line's. */
export interface RawLayout {
  name: string;
  description?: string;
  references?: string[];
  header: string;
  second_line?: string;
}

/** A grouping test: input lines of one stream and the records expected, in order. */
export interface RawGrouperTest {
  name: string;
  stream?: { host?: string; service?: string; pid?: string | number };
  input: string;
  expect: Array<{ first_line: string; line_count: number }>;
}

export interface RawGrouper {
  name: string;
  services?: string[];
  max_lines?: number;
  max_bytes?: number;
  silence?: string;
  expire_after?: string;
  reorder_window?: string;
  layouts?: RawLayout[];
  start?: string[];
  continue?: string[];
  tests?: RawGrouperTest[];
}

export interface RawRuleFile {
  groupers?: RawGrouper[];
  rules?: RawRule[];
}
