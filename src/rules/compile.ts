/**
 * Turns validated rule files into executable rules and grouper configs, with the semantic checks
 * the JSON Schema cannot express (unique ids, regexes, extract/types, derive, templates, keys).
 */
import type { FieldValue, Severity } from '../engine/event.js';
import { DEFAULT_GROUPER, type GrouperConfig, type HeaderPattern } from '../engine/grouper-config.js';
import { parseDerive, DeriveSyntaxError, type DeriveExpression } from './derive.js';
import type { FieldType, PredicateField, PredicateOp, RawPredicate, RawRule, RawRuleFile, ExtractSource } from './model.js';
import { describePath, type RuleProblem } from './problems.js';
import { findUnportableConstruct, namedGroupsOf } from './regex-safety.js';
import { compileTemplate, TemplateError, type CompiledTemplate } from './template.js';
import { parseBytes, parseDuration } from './units.js';
import type { JavaTrace } from './group-facts.js';
import type { YamlPath, YamlSource } from './yaml-source.js';

export interface ParsedRuleFile {
  file: string;
  data: RawRuleFile;
  source: YamlSource;
}

/** What predicates and extractions read from a group; expensive parts are computed on first use. */
export interface GroupView {
  /** Lines joined by \n, each cut at the per-line cap. */
  text: string;
  firstLine: string;
  host: string;
  service: string;
  level(): string;
  trace(): JavaTrace;
}

export type CompiledThreshold =
  | { kind: 'field'; field: string; test: (value: number) => boolean; severity: Severity }
  | { kind: 'count'; count: number; withinMs: number; severity: Severity; index: number };

export interface CompiledRule {
  id: string;
  version: number;
  title: string;
  category: string;
  severity: Severity;
  priority: number;
  /** Tried only when no rule without `fallback` matched the record. */
  fallback: boolean;
  enabled: boolean;
  file: string;
  literals: string[];
  matches(view: GroupView): boolean;
  /** Typed fields, or null when a required extraction did not match (then the rule does not apply). */
  extract(view: GroupView): Record<string, FieldValue> | null;
  derive: Array<{ name: string; expression: DeriveExpression }>;
  thresholds: CompiledThreshold[];
  incidentKey: string[];
  annotations: Array<[keyof NonNullable<RawRule['annotations']>, CompiledTemplate]>;
}

/** A regex that still has to pass the (asynchronous) backtracking check. */
export interface RegexToCheck {
  pattern: string;
  file: string;
  source: YamlSource;
  path: YamlPath;
}

export interface CompileResult {
  rules: CompiledRule[];
  groupers: GrouperConfig[];
  regexes: RegexToCheck[];
  errors: RuleProblem[];
  warnings: RuleProblem[];
}

/** Names every template may use besides the rule's own fields. */
export const BUILTIN_NAMES = ['origin', 'host', 'service', 'pid', 'rule', 'rule_version', 'category', 'severity', 'first_line', 'exception.class', 'exception.message'];
const INCIDENT_KEY_BUILTINS = new Set(['rule', 'host', 'service', 'pid', 'category']);

const DEFAULT_INCIDENT_KEY = ['rule', 'host', 'service'];

function makeReporter(parsed: ParsedRuleFile, sink: RuleProblem[], severity: 'error' | 'warning') {
  return (path: YamlPath, message: string, options?: { key?: boolean; offset?: number }): void => {
    const { line, col } = parsed.source.locate(path, options);
    sink.push({ file: parsed.file, line, col, message: `${describePath(path)}: ${message}`, severity });
  };
}

type Reporter = ReturnType<typeof makeReporter>;

function compileRegex(pattern: string, path: YamlPath, parsed: ParsedRuleFile, report: Reporter, regexes: RegexToCheck[]): RegExp | null {
  const unportable = findUnportableConstruct(pattern);
  if (unportable) {
    report(path, `regex uses ${unportable}; lookbehind and backreferences are not allowed (they cannot run in linear time)`);
    return null;
  }
  try {
    const regex = new RegExp(pattern);
    regexes.push({ pattern, file: parsed.file, source: parsed.source, path });
    return regex;
  } catch (error) {
    report(path, `regex does not compile: ${(error as Error).message.replace(/^Invalid regular expression: /, '')}`);
    return null;
  }
}

type FieldGetter = (view: GroupView) => string | string[];

const FIELD_GETTERS: Record<PredicateField, FieldGetter> = {
  text: (view) => view.text,
  first_line: (view) => view.firstLine,
  level: (view) => view.level(),
  host: (view) => view.host,
  service: (view) => view.service,
  'exception.class': (view) => view.trace().exception?.class ?? '',
  'exception.message': (view) => view.trace().exception?.message ?? '',
  'cause.class': (view) => view.trace().causes.map((cause) => cause.class),
  'cause.message': (view) => view.trace().causes.map((cause) => cause.message),
};

type Predicate = (view: GroupView) => boolean;

function compilePredicate(raw: RawPredicate, path: YamlPath, parsed: ParsedRuleFile, report: Reporter, regexes: RegexToCheck[]): Predicate | null {
  const [key, value] = Object.entries(raw)[0] as [string, string | string[]];
  const [field, op] = key.split('|') as [PredicateField, PredicateOp];
  const getter = FIELD_GETTERS[field];
  let test: ((candidate: string) => boolean) | null;
  if (op === 'in') {
    const allowed = new Set(value as string[]);
    test = (candidate) => allowed.has(candidate);
  } else {
    const expected = value as string;
    switch (op) {
      case 'equals':
        test = (candidate) => candidate === expected;
        break;
      case 'contains':
        test = (candidate) => candidate.includes(expected);
        break;
      case 'startswith':
        test = (candidate) => candidate.startsWith(expected);
        break;
      case 'endswith':
        test = (candidate) => candidate.endsWith(expected);
        break;
      case 'regex': {
        const regex = compileRegex(expected, [...path, key], parsed, report, regexes);
        test = regex ? (candidate) => regex.test(candidate) : null;
        break;
      }
    }
  }
  if (!test) return null;
  const check = test;
  return (view) => {
    const actual = getter(view);
    return typeof actual === 'string' ? check(actual) : actual.some(check);
  };
}

function convert(raw: string, type: FieldType): FieldValue | null {
  switch (type) {
    case 'string':
      return raw;
    case 'int': {
      const value = Number(raw.trim());
      return Number.isSafeInteger(value) ? value : null;
    }
    case 'float': {
      const value = Number(raw.trim());
      return raw.trim() !== '' && Number.isFinite(value) ? value : null;
    }
    case 'bytes':
      return parseBytes(raw);
  }
}

const EXTRACT_SOURCES: Record<ExtractSource, FieldGetter> = {
  text: FIELD_GETTERS.text,
  first_line: FIELD_GETTERS.first_line,
  'exception.class': FIELD_GETTERS['exception.class'],
  'exception.message': FIELD_GETTERS['exception.message'],
  'cause.class': FIELD_GETTERS['cause.class'],
  'cause.message': FIELD_GETTERS['cause.message'],
};

function compileRule(rule: RawRule, path: YamlPath, parsed: ParsedRuleFile, report: Reporter, warn: Reporter, regexes: RegexToCheck[]): CompiledRule | null {
  let ok = true;
  const predicateLists: Array<{ kind: 'all' | 'any' | 'none'; predicates: Predicate[] }> = [];
  for (const kind of ['all', 'any', 'none'] as const) {
    const list = rule.match[kind] ?? [];
    const predicates: Predicate[] = [];
    list.forEach((raw, index) => {
      const predicate = compilePredicate(raw, [...path, 'match', kind, index], parsed, report, regexes);
      if (predicate) predicates.push(predicate);
      else ok = false;
    });
    if (list.length > 0) predicateLists.push({ kind, predicates });
  }

  const knownFields = new Set<string>();
  const extractors: Array<(view: GroupView, into: Record<string, FieldValue>) => boolean> = [];
  (rule.extract ?? []).forEach((raw, index) => {
    const extractPath = [...path, 'extract', index];
    const regex = compileRegex(raw.regex, [...extractPath, 'regex'], parsed, report, regexes);
    if (!regex) {
      ok = false;
      return;
    }
    const groups = namedGroupsOf(raw.regex);
    if (groups.length === 0) {
      report([...extractPath, 'regex'], 'regex has no named group; name what it captures, e.g. (?<used_bytes>\\d+)');
      ok = false;
    }
    const types = raw.types ?? {};
    for (const name of Object.keys(types)) {
      if (!groups.includes(name)) {
        report([...extractPath, 'types', name], `"${name}" is not a named group of the regex (groups: ${groups.join(', ') || 'none'})`, { key: true });
        ok = false;
      }
    }
    for (const name of groups) knownFields.add(name);
    const getter = EXTRACT_SOURCES[raw.from ?? 'text'];
    const optional = raw.optional ?? false;
    extractors.push((view, into) => {
      const input = getter(view);
      let match: RegExpExecArray | null = null;
      if (typeof input === 'string') match = regex.exec(input);
      else for (const candidate of input) if ((match = regex.exec(candidate))) break;
      if (!match?.groups) return optional;
      for (const name of groups) {
        const text = match.groups[name];
        if (text === undefined) continue;
        const value = convert(text, types[name] ?? 'string');
        if (value !== null) into[name] = value;
      }
      return true;
    });
  });

  const derive: CompiledRule['derive'] = [];
  for (const [name, source] of Object.entries(rule.derive ?? {})) {
    const derivePath = [...path, 'derive', name];
    if (knownFields.has(name)) {
      report(derivePath, `"${name}" is already an extracted field; give the derived value its own name`, { key: true });
      ok = false;
      continue;
    }
    try {
      const expression = parseDerive(source);
      const unknown = expression.references.filter((reference) => !knownFields.has(reference));
      if (unknown.length > 0) {
        report(derivePath, `unknown field ${unknown.map((u) => `"${u}"`).join(', ')} (known here: ${[...knownFields].join(', ') || 'none'})`);
        ok = false;
      }
      derive.push({ name, expression });
      knownFields.add(name);
    } catch (error) {
      if (!(error instanceof DeriveSyntaxError)) throw error;
      report(derivePath, `${error.message} in "${source}" at character ${error.offset + 1}`, { offset: error.offset });
      ok = false;
    }
  }

  const thresholds: CompiledThreshold[] = [];
  (rule.thresholds ?? []).forEach((raw, index) => {
    const conditionPath = [...path, 'thresholds', index, 'if'];
    const condition = raw.if;
    const comparators = (['gte', 'gt', 'lte', 'lt'] as const).filter((name) => condition[name] !== undefined);
    const isCount = condition.count !== undefined || condition.within !== undefined;
    const isField = condition.field !== undefined || comparators.length > 0;
    if (isCount === isField) {
      report(conditionPath, 'use either {field, gte|gt|lte|lt} or {count, within}');
      ok = false;
      return;
    }
    if (isField) {
      if (condition.field === undefined || comparators.length === 0) {
        report(conditionPath, 'a field threshold needs "field" and at least one of gte, gt, lte, lt');
        ok = false;
        return;
      }
      if (!knownFields.has(condition.field)) {
        report([...conditionPath, 'field'], `unknown field "${condition.field}" (known here: ${[...knownFields].join(', ') || 'none'})`);
        ok = false;
        return;
      }
      const { gte, gt, lte, lt } = condition;
      thresholds.push({
        kind: 'field',
        field: condition.field,
        severity: raw.severity,
        test: (value) =>
          (gte === undefined || value >= gte) && (gt === undefined || value > gt) && (lte === undefined || value <= lte) && (lt === undefined || value < lt),
      });
      return;
    }
    const withinMs = condition.within === undefined ? null : parseDuration(condition.within);
    if (condition.count === undefined || withinMs === null || withinMs <= 0) {
      report(conditionPath, 'a count threshold needs "count" and "within" (a duration such as 10m)');
      ok = false;
      return;
    }
    thresholds.push({ kind: 'count', count: condition.count, withinMs, severity: raw.severity, index });
  });

  const incidentKey = rule.incident?.key ?? DEFAULT_INCIDENT_KEY;
  incidentKey.forEach((part, index) => {
    if (!INCIDENT_KEY_BUILTINS.has(part) && !knownFields.has(part)) {
      report([...path, 'incident', 'key', index], `unknown key part "${part}" (use rule, host, service, pid, category or a field: ${[...knownFields].join(', ') || 'none'})`);
      ok = false;
    }
  });

  const templateNames = new Set([...BUILTIN_NAMES, ...knownFields]);
  const annotations: CompiledRule['annotations'] = [];
  for (const [name, source] of Object.entries(rule.annotations ?? {}) as Array<[keyof NonNullable<RawRule['annotations']>, string]>) {
    try {
      annotations.push([name, compileTemplate(source, templateNames)]);
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      report([...path, 'annotations', name], error.message, { offset: error.offset });
      ok = false;
    }
  }

  if (!rule.tests || rule.tests.length === 0) warn([...path, 'id'], `rule "${rule.id}" has no tests`);
  if (!ok) return null;

  const literals = [...new Set(rule.match.literals)];
  return {
    id: rule.id,
    version: rule.version,
    title: rule.title,
    category: rule.classify.category,
    severity: rule.classify.severity,
    priority: rule.priority ?? 0,
    fallback: rule.fallback ?? false,
    enabled: rule.enabled ?? true,
    file: parsed.file,
    literals,
    matches(view) {
      for (const { kind, predicates } of predicateLists) {
        if (kind === 'all' && !predicates.every((predicate) => predicate(view))) return false;
        if (kind === 'any' && !predicates.some((predicate) => predicate(view))) return false;
        if (kind === 'none' && predicates.some((predicate) => predicate(view))) return false;
      }
      return true;
    },
    extract(view) {
      const fields: Record<string, FieldValue> = {};
      for (const extractor of extractors) if (!extractor(view, fields)) return null;
      return fields;
    },
    derive,
    thresholds,
    incidentKey,
    annotations,
  };
}

function compileGroupers(parsedFiles: readonly ParsedRuleFile[], errors: RuleProblem[], regexes: RegexToCheck[]): GrouperConfig[] {
  const groupers: GrouperConfig[] = [];
  const seen = new Map<string, string>();
  for (const parsed of parsedFiles) {
    const report = makeReporter(parsed, errors, 'error');
    (parsed.data.groupers ?? []).forEach((raw, index) => {
      const path = ['groupers', index];
      const where = `${parsed.file}:${parsed.source.locate([...path, 'name']).line}`;
      const previous = seen.get(raw.name);
      if (previous) {
        report([...path, 'name'], `grouper name "${raw.name}" is already used at ${previous}`);
        return;
      }
      seen.set(raw.name, where);
      const durationOf = (key: 'silence' | 'expire_after' | 'reorder_window', fallback: number): number | null => {
        const text = raw[key];
        if (text === undefined) return fallback;
        const ms = parseDuration(text);
        if (ms === null) report([...path, key], `"${text}" is not a duration such as 2s`);
        return ms;
      };
      const silenceMs = durationOf('silence', DEFAULT_GROUPER.silenceMs);
      const expireAfterMs = durationOf('expire_after', DEFAULT_GROUPER.expireAfterMs);
      const reorderWindowMs = durationOf('reorder_window', DEFAULT_GROUPER.reorderWindowMs);
      if (silenceMs === null || expireAfterMs === null || reorderWindowMs === null) return;
      if (expireAfterMs < reorderWindowMs) {
        report([...path, 'expire_after'], `expire_after (${raw.expire_after}) must not be shorter than reorder_window (${raw.reorder_window ?? '2s'}): a held record would find its group closed`);
        return;
      }
      const compileList = (key: 'start' | 'continue'): RegExp[] | null => {
        const compiled = (raw[key] ?? []).map((pattern, i) => compileRegex(pattern, [...path, key, i], parsed, report, regexes));
        return compiled.every((regex) => regex !== null) ? (compiled as RegExp[]) : null;
      };
      const start = compileList('start');
      const continuation = compileList('continue');
      if (!start || !continuation) return;
      const headers: HeaderPattern[] = start.map((first, i) => ({ name: `start[${i}]`, first, second: null }));
      let layoutsOk = true;
      (raw.layouts ?? []).forEach((layout, i) => {
        const first = compileRegex(layout.header, [...path, 'layouts', i, 'header'], parsed, report, regexes);
        const second = layout.second_line === undefined ? null : compileRegex(layout.second_line, [...path, 'layouts', i, 'second_line'], parsed, report, regexes);
        if (first === null || (layout.second_line !== undefined && second === null)) {
          layoutsOk = false;
          return;
        }
        headers.push({ name: layout.name, first, second });
      });
      if (!layoutsOk) return;
      groupers.push({
        name: raw.name,
        services: raw.services ?? ['*'],
        maxLines: raw.max_lines ?? DEFAULT_GROUPER.maxLines,
        maxBytes: raw.max_bytes ?? DEFAULT_GROUPER.maxBytes,
        silenceMs,
        expireAfterMs,
        reorderWindowMs,
        headers,
        continue: continuation,
      });
    });
  }
  // Streams no grouper claims still need one: the built-in jvm grouper catches the rest.
  if (!groupers.some((grouper) => grouper.services.includes('*'))) {
    groupers.push({ ...DEFAULT_GROUPER, name: seen.has(DEFAULT_GROUPER.name) ? `${DEFAULT_GROUPER.name}-default` : DEFAULT_GROUPER.name });
  }
  return groupers;
}

export function compileRuleFiles(parsedFiles: readonly ParsedRuleFile[]): CompileResult {
  const errors: RuleProblem[] = [];
  const warnings: RuleProblem[] = [];
  const regexes: RegexToCheck[] = [];
  const groupers = compileGroupers(parsedFiles, errors, regexes);
  const rules: CompiledRule[] = [];
  const seenIds = new Map<string, string>();
  for (const parsed of parsedFiles) {
    const report = makeReporter(parsed, errors, 'error');
    const warn = makeReporter(parsed, warnings, 'warning');
    (parsed.data.rules ?? []).forEach((raw, index) => {
      const path = ['rules', index];
      const previous = seenIds.get(raw.id);
      if (previous) {
        report([...path, 'id'], `rule id "${raw.id}" is already used at ${previous}`);
        return;
      }
      seenIds.set(raw.id, `${parsed.file}:${parsed.source.locate([...path, 'id']).line}`);
      const compiled = compileRule(raw, path, parsed, report, warn, regexes);
      if (compiled) rules.push(compiled);
    });
  }
  return { rules, groupers, regexes, errors, warnings };
}
