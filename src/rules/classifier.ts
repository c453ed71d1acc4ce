/**
 * The compiled rule set as the engine's Classifier. The hot path is the group that no rule can
 * match (most groups are one ordinary log line): it costs one join and one regex scan of the
 * alternation of every enabled rule's literals.
 */
import type { Classifier } from '../engine/classifier.js';
import { SEVERITIES, type FieldValue, type LeakEvent, type Severity } from '../engine/event.js';
import type { Group } from '../engine/group.js';
import { eventIdOf, isoTimeOf } from '../engine/grouped-record.js';
import type { CompiledRule, GroupView } from './compile.js';
import { countWindowKey, CountWindows, type CountWindowState } from './count-windows.js';
import { levelOf, parseJavaTrace, type JavaTrace } from './group-facts.js';

/** Lines are cut to this many characters before any regex sees them (polynomial blow-ups need long input). */
export const MAX_MATCH_LINE_CHARS = 16 * 1024;

function escapeRegex(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function raise(current: Severity, to: Severity): Severity {
  return SEVERITIES.indexOf(to) > SEVERITIES.indexOf(current) ? to : current;
}

function joinForMatching(lines: readonly string[]): string {
  if (lines.length === 1) {
    const only = lines[0] as string;
    return only.length > MAX_MATCH_LINE_CHARS ? only.slice(0, MAX_MATCH_LINE_CHARS) : only;
  }
  for (const line of lines) {
    if (line.length > MAX_MATCH_LINE_CHARS) return lines.map((l) => (l.length > MAX_MATCH_LINE_CHARS ? l.slice(0, MAX_MATCH_LINE_CHARS) : l)).join('\n');
  }
  return lines.join('\n');
}

class LazyGroupView implements GroupView {
  readonly firstLine: string;
  readonly host: string;
  readonly service: string;
  private cachedLevel: string | undefined;
  private cachedTrace: JavaTrace | undefined;

  constructor(
    private readonly group: Group,
    readonly text: string,
  ) {
    this.firstLine = group.lines[0] ?? '';
    this.host = group.host;
    this.service = group.service;
  }

  level(): string {
    return (this.cachedLevel ??= levelOf(this.firstLine));
  }

  trace(): JavaTrace {
    return (this.cachedTrace ??= parseJavaTrace(this.group.lines));
  }
}

interface MatchedRule {
  rule: CompiledRule;
  fields: Record<string, FieldValue>;
}

function matchingRules(rules: readonly CompiledRule[], view: LazyGroupView): MatchedRule[] {
  const matched: MatchedRule[] = [];
  for (const rule of rules) {
    if (!rule.literals.some((literal) => view.text.includes(literal))) continue;
    if (!rule.matches(view)) continue;
    const fields = rule.extract(view);
    if (!fields) continue;
    for (const { name, expression } of rule.derive) {
      const value = expression.evaluate(fields);
      if (value !== null) fields[name] = value;
    }
    matched.push({ rule, fields });
  }
  return matched;
}

export class RuleClassifier implements Classifier {
  /** Enabled rules without `fallback`, highest priority first. */
  private readonly specific: CompiledRule[];
  /** Enabled catch-alls, highest priority first: tried only when no specific rule matched. */
  private readonly fallbacks: CompiledRule[];
  /** Any literal of any enabled rule; null when no rule is enabled. */
  private readonly prefilter: RegExp | null;

  constructor(
    private readonly rules: readonly CompiledRule[],
    private readonly windows: CountWindowState,
  ) {
    // Highest priority first; equal priorities keep load order (file name order, then position).
    const enabled = rules
      .map((rule, order) => ({ rule, order }))
      .filter(({ rule }) => rule.enabled)
      .sort((a, b) => b.rule.priority - a.rule.priority || a.order - b.order)
      .map(({ rule }) => rule);
    this.specific = enabled.filter((rule) => !rule.fallback);
    this.fallbacks = enabled.filter((rule) => rule.fallback);
    const literals = [...new Set(enabled.flatMap((rule) => rule.literals))].sort((a, b) => b.length - a.length);
    this.prefilter = literals.length > 0 ? new RegExp(literals.map(escapeRegex).join('|')) : null;
  }

  /** The same rules with empty count windows (rule tests start each case from a clean state). */
  withFreshState(): RuleClassifier {
    return new RuleClassifier(this.rules, new CountWindows(1000));
  }

  /**
   * Only the catch-alls, with empty count windows: what a fallback rule does when no specific rule
   * claims a record, whatever specific rules a folder gains later (its tests run with this).
   */
  fallbacksOnly(): RuleClassifier {
    return new RuleClassifier(
      this.rules.filter((rule) => rule.fallback),
      new CountWindows(1000),
    );
  }

  classify(group: Group): LeakEvent | null {
    if (!this.prefilter || group.lines.length === 0) return null;
    const text = joinForMatching(group.lines);
    if (!this.prefilter.test(text)) return null;

    const view = new LazyGroupView(group, text);
    let matched = matchingRules(this.specific, view);
    if (matched.length === 0 && this.fallbacks.length > 0) matched = matchingRules(this.fallbacks, view);
    const winner = matched[0];
    if (!winner) return null;
    return this.buildEvent(group, view, winner, matched);
  }

  private buildEvent(group: Group, view: LazyGroupView, winner: MatchedRule, matched: readonly MatchedRule[]): LeakEvent {
    const { rule } = winner;
    const fields: Record<string, FieldValue> = {};
    for (let i = matched.length - 1; i >= 0; i--) Object.assign(fields, (matched[i] as MatchedRule).fields);
    const tags = [...new Set(matched.slice(1).map((m) => m.rule.category))].filter((category) => category !== rule.category).sort();

    const keyValues: Record<string, string> = { rule: rule.id, host: group.host, service: group.service, pid: group.pid, category: rule.category };
    const incidentKey = rule.incidentKey.map((part) => keyValues[part] ?? (fields[part] === undefined ? '' : String(fields[part]))).join('|');

    const fullText = group.lines.every((line) => line.length <= MAX_MATCH_LINE_CHARS) ? view.text : group.lines.join('\n');
    // The id names the occurrence in count windows: classified again (a replay after a crash), the same group has the same id.
    const id = eventIdOf(group, fullText);
    let severity = rule.severity;
    for (const threshold of rule.thresholds) {
      if (threshold.kind === 'field') {
        const value = fields[threshold.field];
        if (typeof value === 'number' && threshold.test(value)) severity = raise(severity, threshold.severity);
      } else {
        if (this.windows.record(countWindowKey(rule, threshold.index, incidentKey), group.time, threshold.withinMs, threshold.count, id) >= threshold.count) {
          severity = raise(severity, threshold.severity);
        }
      }
    }

    const trace = view.trace();
    // Object.assign, not `{ ...fields, host, ... }`: on Node 20's V8 a spread followed by more
    // properties fell off a performance cliff (~15 µs per event, measured), half the cost of an event.
    const templateValues: Record<string, FieldValue | null> = Object.assign({}, fields, {
      origin: originOf(group.host, group.service),
      host: group.host,
      service: group.service,
      pid: group.pid,
      rule: rule.id,
      rule_version: rule.version,
      category: rule.category,
      severity,
      first_line: view.firstLine,
      'exception.class': trace.exception?.class ?? null,
      'exception.message': trace.exception?.message ?? null,
    });
    const annotations: LeakEvent['annotations'] = {};
    for (const [name, template] of rule.annotations) annotations[name] = template.render(templateValues);

    return {
      id,
      timestamp: isoTimeOf(group.time),
      host: group.host,
      service: group.service,
      pid: group.pid,
      rule: rule.id,
      rule_version: rule.version,
      category: rule.category,
      severity,
      tags,
      message: group.lines[0] ?? '',
      text: fullText,
      line_count: group.lines.length,
      truncated: group.truncated,
      exception: trace.exception,
      causes: trace.causes,
      fields,
      incident_key: incidentKey,
      incident_id: null,
      annotations,
    };
  }
}

/** `host/service`, or whichever of them is known (a raw file has no host; its name is the service). */
function originOf(host: string, service: string): string | null {
  if (host !== '' && service !== '') return `${host}/${service}`;
  return host || service || null;
}
