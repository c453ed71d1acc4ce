/**
 * The `direct-memory-trend` event: a process's direct memory will run out within the horizon, or
 * its use has passed the ratio threshold, said before the OutOfDirectMemoryError. It goes to the
 * incident service like a rule's event, keyed by rule, host and service like the
 * `netty-direct-memory-exhausted` rule, so the warning and the crash it foretells sit side by side.
 */
import { createHash } from 'node:crypto';
import type { LeakEvent, Severity } from '../engine/event.js';
import { formatBytes } from '../units.js';

export const TREND_RULE = 'direct-memory-trend';
export const TREND_CATEGORY = 'direct-memory-trend';

export interface TrendWarningFacts {
  host: string;
  service: string;
  pid: string;
  /** Event time of the sample the warning was computed at. */
  t: number;
  source: string;
  used_bytes: number;
  max_bytes: number;
  max_source: string;
  ratio: number;
  slope_bytes_per_hour: number;
  slope_low_bytes_per_hour: number;
  slope_high_bytes_per_hour: number;
  confidence: number;
  windows: number;
  span_seconds: number;
  /** Null when only the ratio warns (no rising floor). */
  exhaustion_at: number | null;
  earliest_exhaustion_at: number | null;
  latest_exhaustion_at: number | null;
  /** Why: the predicted exhaustion is within the horizon, the ratio passed the threshold, or both. */
  reasons: Array<'horizon' | 'ratio'>;
}

export function trendIncidentKey(host: string, service: string): string {
  return `${TREND_RULE}|${host}|${service}`;
}

/** Passing the ratio is critical (the next allocations may fail); a prediction within the horizon is a warning. */
export function severityOfWarning(facts: Pick<TrendWarningFacts, 'reasons'>): Severity {
  return facts.reasons.includes('ratio') ? 'critical' : 'warning';
}

function hours(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 10 ? `${h.toFixed(0)} h` : h >= 1 ? `${h.toFixed(1)} h` : `${Math.max(1, Math.round(ms / 60_000))} min`;
}

const iso = (ms: number | null): string => (ms === null ? '' : new Date(ms).toISOString());

export function trendWarningEvent(facts: TrendWarningFacts): LeakEvent {
  const where = `${facts.host || '?'}/${facts.service || '?'}${facts.pid === '' ? '' : ` pid ${facts.pid}`}`;
  const percent = `${(facts.ratio * 100).toFixed(1)}%`;
  const rate = `${formatBytes(facts.slope_bytes_per_hour)}/h`;
  const interval = `${formatBytes(facts.slope_low_bytes_per_hour)}–${formatBytes(facts.slope_high_bytes_per_hour)}/h`;
  const eta =
    facts.exhaustion_at === null
      ? 'no rising floor'
      : `exhausted in ~${hours(facts.exhaustion_at - facts.t)} (${iso(facts.exhaustion_at)}; between ${iso(facts.earliest_exhaustion_at)} and ${facts.latest_exhaustion_at === null ? 'never' : iso(facts.latest_exhaustion_at)})`;
  const message = `${where}: direct memory ${percent} used (${formatBytes(facts.used_bytes)} of ${formatBytes(facts.max_bytes)}), floor rising ${rate}, ${eta}`;
  const text = [
    message,
    `source: ${facts.source}; limit: ${formatBytes(facts.max_bytes)} (${facts.max_source})`,
    `trend: Theil–Sen over ${facts.windows} window minimums in ${hours(facts.span_seconds * 1000)}: ${rate} (95% ${interval}), confidence ${(facts.confidence * 100).toFixed(1)}%`,
    `why: ${facts.reasons.join(' and ')}`,
  ].join('\n');
  const fields: LeakEvent['fields'] = {
    source: facts.source,
    used_bytes: facts.used_bytes,
    max_bytes: facts.max_bytes,
    max_source: facts.max_source,
    ratio: facts.ratio,
    trend_bytes_per_hour: Math.round(facts.slope_bytes_per_hour),
    trend_low_bytes_per_hour: Math.round(facts.slope_low_bytes_per_hour),
    trend_high_bytes_per_hour: Math.round(facts.slope_high_bytes_per_hour),
    confidence: facts.confidence,
    windows: facts.windows,
    span_seconds: facts.span_seconds,
    reasons: facts.reasons.join(','),
  };
  if (facts.exhaustion_at !== null) {
    fields['exhaustion_at'] = iso(facts.exhaustion_at);
    fields['seconds_to_exhaustion'] = Math.round((facts.exhaustion_at - facts.t) / 1000);
    fields['earliest_exhaustion_at'] = iso(facts.earliest_exhaustion_at);
    if (facts.latest_exhaustion_at !== null) fields['latest_exhaustion_at'] = iso(facts.latest_exhaustion_at);
  }
  const timestamp = iso(facts.t);
  return {
    // The same sample gives the same id: a replayed or re-posted batch adds nothing.
    id: createHash('sha256').update([TREND_RULE, facts.host, facts.service, facts.pid, facts.source, timestamp].join('\u001f')).digest('hex').slice(0, 32),
    timestamp,
    host: facts.host,
    service: facts.service,
    pid: facts.pid,
    rule: TREND_RULE,
    rule_version: 1,
    category: TREND_CATEGORY,
    severity: severityOfWarning(facts),
    tags: [],
    message,
    text,
    line_count: 1,
    truncated: false,
    exception: null,
    causes: [],
    fields,
    incident_key: trendIncidentKey(facts.host, facts.service),
    incident_id: null,
    annotations: {
      summary: message,
      hint:
        'A rising floor of direct memory is retained buffers, not traffic: look at the buffer-leak (LEAK:) and exception-caught-at-tail evidence of this host, and restart one instance with -Dio.netty.leakDetection.level=advanced to see where the buffers were last touched. A restart only resets the clock.',
    },
  };
}
