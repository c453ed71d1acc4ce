import { SEVERITIES, type LeakEvent, type Severity } from '../engine/event.js';
import type { EvidenceEntry, IncidentQuery, IncidentRecord, Store } from '../store/store.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { incidentIdOf } from './incident-id.js';

export interface IncidentServiceOptions {
  /** An open incident resolves once the newest event time seen is this far past its last_seen. Default 30 min. */
  quietPeriodMs?: number;
  /** Evidence covers event time [first_seen - window, first_seen]. Default 15 min. */
  evidenceWindowMs?: number;
  /**
   * A longer (or shorter) evidence window for incidents of some categories: a trend warning looks
   * back over the hours its trend covers, where the leak reports that explain it are.
   */
  evidenceWindowMsByCategory?: Readonly<Record<string, number>>;
  /** Newest events kept per incident. Default 1000. */
  eventsPerIncident?: number;
  /** Resolved incidents whose last_seen is this far behind the newest event time are deleted. Default 30 d. */
  resolvedRetentionMs?: number;
  /** Distinct pids remembered per incident (a restart loop must not grow a row without bound). Default 100. */
  maxPids?: number;
  /** Wall clock for ack and manual resolve (tests replace it). */
  now?: () => number;
}

export interface IngestResult {
  inserted: number;
  /** Events whose id was already stored: they change nothing. */
  duplicates: number;
  /** Events that could not be stored (no id, no incident key, unparseable timestamp, unknown severity). */
  invalid: number;
  /** The stored events with `incident_id` filled, in input order. */
  events: LeakEvent[];
}

export interface EvidenceView {
  category: string;
  count: number;
  first_seen: string;
  last_seen: string;
}

/** An incident as the HTTP API shows it: times as ISO-8601. */
export interface IncidentView {
  id: string;
  key: string;
  rule: string;
  category: string;
  severity: Severity;
  status: 'open' | 'resolved';
  host: string;
  service: string;
  pids: string[];
  first_seen: string;
  last_seen: string;
  count: number;
  summary: string;
  fields: LeakEvent['fields'];
  evidence: EvidenceView[];
  /** The newest event; null only if it is no longer stored (a store edited by hand). */
  last_event: LeakEvent | null;
  acked_at: string | null;
  resolved_at: string | null;
  reopened_count: number;
}

export interface IncidentListQuery extends Omit<IncidentQuery, 'after'> {
  cursor?: string;
}

export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

const WATERMARK_KEY = 'incidents.event_time_watermark';

/** What lockScopes() locks: the host + service whose incidents, counts and evidence an event changes. */
const scopeOf = (host: string, service: string): string => `${host}\u001f${service}`;

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

export function toIncidentView(incident: IncidentRecord, lastEvent: LeakEvent | undefined): IncidentView {
  const { last_event_id: _named, ...shown } = incident;
  return {
    ...shown,
    first_seen: iso(incident.first_seen),
    last_seen: iso(incident.last_seen),
    evidence: incident.evidence.map((entry) => ({ ...entry, first_seen: iso(entry.first_seen), last_seen: iso(entry.last_seen) })),
    last_event: lastEvent ?? null,
    acked_at: isoOrNull(incident.acked_at),
    resolved_at: isoOrNull(incident.resolved_at),
  };
}

/** Why an event cannot be stored, or undefined when it can. */
function invalidReason(event: LeakEvent): string | undefined {
  if (typeof event.id !== 'string' || event.id === '') return 'no id';
  if (typeof event.incident_key !== 'string' || event.incident_key === '') return 'no incident_key';
  if (!SEVERITIES.includes(event.severity)) return `unknown severity ${String(event.severity)}`;
  // Date.parse accepts 'Nov 01 11:59:32' as year 2001; events carry ISO-8601 only.
  if (typeof event.timestamp !== 'string' || !ISO_TIME.test(event.timestamp) || !Number.isFinite(Date.parse(event.timestamp))) {
    return `timestamp is not ISO-8601: ${String(event.timestamp)}`;
  }
  return undefined;
}

/**
 * The incidents one ingest batch changes, read once and written once at the end: a batch of 100
 * events on a handful of incidents costs a handful of reads and writes, not 100 of each.
 */
class BatchIncidents {
  private readonly incidents = new Map<string, IncidentRecord>();
  private readonly idOfKey = new Map<string, string>();
  private readonly dirty = new Set<string>();
  /** Each touched incident's event count before this batch. */
  private readonly countBefore = new Map<string, number>();

  constructor(private readonly store: Store) {}

  byId(id: string): IncidentRecord | undefined {
    return this.incidents.get(id);
  }

  /** The incident events with this key go to: the newest one for the key. */
  byKey(key: string): IncidentRecord | undefined {
    const id = this.idOfKey.get(key);
    if (id !== undefined) return this.incidents.get(id);
    const stored = this.store.incidentByKey(key);
    if (!stored) return undefined;
    this.idOfKey.set(key, stored.id);
    if (!this.countBefore.has(stored.id)) this.countBefore.set(stored.id, stored.count);
    return this.incidents.get(stored.id) ?? stored;
  }

  put(incident: IncidentRecord, writeNow: boolean): void {
    if (!this.countBefore.has(incident.id)) this.countBefore.set(incident.id, incident.count);
    this.incidents.set(incident.id, incident);
    if (writeNow) this.store.saveIncident(incident);
    this.dirty.add(incident.id);
  }

  /** A new incident: from now on the one its key routes to. */
  opened(incident: IncidentRecord): void {
    this.idOfKey.set(incident.key, incident.id);
    this.put(incident, true);
  }

  /** Incidents whose event count crossed a multiple of `step` above `cap` in this batch. */
  *crossed(cap: number, step: number): Iterable<IncidentRecord> {
    for (const incident of this.incidents.values()) {
      if (incident.count <= cap) continue;
      const before = this.countBefore.get(incident.id) ?? 0;
      if (before <= cap || Math.floor((incident.count - cap) / step) !== Math.floor((before - cap) / step)) yield incident;
    }
  }

  flush(): void {
    for (const id of this.dirty) this.store.saveIncident(this.incidents.get(id)!);
    this.dirty.clear();
  }
}

/** Events an incident over its cap gathers before they are pruned back to the cap. */
const PRUNE_EVERY_EVENTS = 64;

/**
 * Incident lifecycle over a Store: events are grouped by their incident key into incidents that
 * open, escalate, resolve after a quiet period of EVENT time (so replaying an old export behaves
 * like the live run did), and reopen. Each ingest batch is one transaction.
 */
export class IncidentService {
  private readonly quietPeriodMs: number;
  private readonly evidenceWindowMs: number;
  private readonly evidenceWindowsByCategory: Readonly<Record<string, number>>;
  /** The longest evidence window of any category: how far ahead of an event an incident may have opened and still count it. */
  private readonly longestEvidenceWindowMs: number;
  private readonly eventsPerIncident: number;
  private readonly resolvedRetentionMs: number;
  private readonly maxPids: number;
  private readonly now: () => number;
  /** Newest event time seen on any stream; persisted so a restart resolves the same way. */
  private watermark: number;

  constructor(
    private readonly store: Store,
    options: IncidentServiceOptions = {},
  ) {
    this.quietPeriodMs = options.quietPeriodMs ?? 30 * 60_000;
    this.evidenceWindowMs = options.evidenceWindowMs ?? 15 * 60_000;
    this.evidenceWindowsByCategory = options.evidenceWindowMsByCategory ?? {};
    this.longestEvidenceWindowMs = Math.max(this.evidenceWindowMs, ...Object.values(this.evidenceWindowsByCategory));
    this.eventsPerIncident = options.eventsPerIncident ?? 1000;
    this.resolvedRetentionMs = options.resolvedRetentionMs ?? 30 * 86_400_000;
    this.maxPids = options.maxPids ?? 100;
    this.now = options.now ?? Date.now;
    for (const [name, value] of Object.entries({ quietPeriodMs: this.quietPeriodMs, evidenceWindowMs: this.evidenceWindowMs, eventsPerIncident: this.eventsPerIncident, resolvedRetentionMs: this.resolvedRetentionMs, maxPids: this.maxPids })) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`incidents: ${name} must be a positive whole number, got ${value}`);
    }
    const stored = Number(store.getMeta(WATERMARK_KEY));
    this.watermark = Number.isSafeInteger(stored) ? stored : Number.MIN_SAFE_INTEGER;
  }

  /** Newest event time seen, or null before the first event. */
  get eventTimeWatermark(): number | null {
    return this.watermark === Number.MIN_SAFE_INTEGER ? null : this.watermark;
  }

  /**
   * Stores the events that are new (by id) and updates their incidents, in one transaction.
   * `alsoStore` runs inside that transaction with the newly stored events, none or some (the
   * forwarding outbox): if it fails, nothing of the batch is stored.
   */
  ingest(events: readonly LeakEvent[], alsoStore?: (stored: LeakEvent[]) => void): IngestResult {
    const result: IngestResult = { inserted: 0, duplicates: 0, invalid: 0, events: [] };
    this.transaction(() => {
      let watermark = this.watermark;
      if (this.store.lockScopes !== undefined) {
        this.store.lockScopes(events.filter((event) => event !== null && typeof event === 'object').map((event) => scopeOf(event.host, event.service)));
        // Other processes move the newest event time too: start from the newest any of them stored.
        const shared = Number(this.store.getMeta(WATERMARK_KEY));
        if (Number.isSafeInteger(shared)) watermark = Math.max(watermark, shared);
      }
      const batch = new BatchIncidents(this.store);
      // Where a lookup is a round trip (PostgreSQL), the batch's ids are looked up in one.
      const known = this.store.storedEventIds?.(events.filter((event) => event !== null && typeof event === 'object').map((event) => event.id));
      for (const event of events) {
        if (event === null || typeof event !== 'object' || invalidReason(event) !== undefined) {
          result.invalid++;
          continue;
        }
        const time = Date.parse(event.timestamp);
        if (known !== undefined ? known.has(event.id) : this.store.hasEvent(event.id, time)) {
          result.duplicates++;
          continue;
        }
        watermark = Math.max(watermark, time);
        const existing = batch.byKey(event.incident_key);
        const incident = existing ? this.apply(existing, event, time, watermark) : this.open(event, time);
        // New incidents and moved openings are written at once, so the evidence query below sees them.
        if (existing) batch.put(incident, existing.first_seen !== incident.first_seen);
        else batch.opened(incident);
        const stored: LeakEvent = { ...event, incident_id: incident.id };
        this.store.insertEvent(stored, time);
        known?.add(stored.id);
        this.addAsEvidence(stored, time, batch);
        result.events.push(stored);
        result.inserted++;
      }
      if (result.inserted > 0) {
        batch.flush();
        this.store.setMeta(WATERMARK_KEY, String(watermark));
        this.store.resolveQuiet(watermark - this.quietPeriodMs, this.quietPeriodMs);
        // Events past the cap are deleted PRUNE_EVERY_EVENTS at a time: a delete per event would scan the cap's worth each time.
        for (const incident of batch.crossed(this.eventsPerIncident, PRUNE_EVERY_EVENTS)) {
          this.store.pruneEventsOfIncident(incident.id, this.eventsPerIncident);
        }
        this.store.pruneResolvedIncidents(watermark - this.resolvedRetentionMs);
      }
      alsoStore?.(result.events);
      // Moved inside, so that a later ingest in an enclosing transaction starts from it; put back if that rolls back.
      this.watermark = watermark;
    });
    return result;
  }

  /**
   * Runs `work` in one store transaction, which the ingests it makes join: a batch's events and
   * what they lead to are committed once. If it rolls back, the watermark goes back where it was.
   */
  transaction<T>(work: () => T): T {
    const before = this.watermark;
    try {
      return this.store.transaction(work);
    } catch (error) {
      this.watermark = before;
      throw error;
    }
  }

  private open(event: LeakEvent, time: number): IncidentRecord {
    return {
      id: incidentIdOf(event.incident_key, time),
      key: event.incident_key,
      rule: event.rule,
      category: event.category,
      severity: event.severity,
      status: 'open',
      host: event.host,
      service: event.service,
      pids: event.pid === '' ? [] : [event.pid],
      first_seen: time,
      last_seen: time,
      count: 1,
      summary: event.annotations?.summary ?? event.message,
      fields: event.fields ?? {},
      evidence: this.evidenceFor(event.host, event.service, time, event.category),
      last_event_id: event.id,
      acked_at: null,
      resolved_at: null,
      reopened_count: 0,
    };
  }

  private apply(incident: IncidentRecord, event: LeakEvent, time: number, watermark: number): IncidentRecord {
    const next: IncidentRecord = { ...incident };
    const newer = time > incident.last_seen;
    // The event-time sweep runs per batch; an incident quiet long enough before this event was
    // already resolved in event time even if no batch has swept it yet.
    if (next.status === 'open' && newer && incident.last_seen < watermark - this.quietPeriodMs) {
      next.status = 'resolved';
      next.resolved_at = incident.last_seen + this.quietPeriodMs;
    }
    if (next.status === 'resolved' && newer) {
      next.status = 'open';
      next.reopened_count++;
      next.resolved_at = null;
      next.acked_at = null;
      next.severity = event.severity;
    } else if (severityRank(event.severity) > severityRank(next.severity)) {
      next.severity = event.severity;
    }
    next.count++;
    if (event.pid !== '' && !next.pids.includes(event.pid) && next.pids.length < this.maxPids) {
      next.pids = [...next.pids, event.pid];
    }
    if (time >= incident.last_seen) {
      next.last_seen = time;
      next.last_event_id = event.id;
      next.summary = event.annotations?.summary ?? event.message;
      next.fields = event.fields ?? {};
    }
    if (time < incident.first_seen) {
      // A late, older event moves the opening, and with it the evidence window.
      next.first_seen = time;
      next.evidence = this.evidenceFor(next.host, next.service, time, next.category);
    }
    return next;
  }

  private evidenceWindowOf(category: string): number {
    return this.evidenceWindowsByCategory[category] ?? this.evidenceWindowMs;
  }

  private evidenceFor(host: string, service: string, openedAt: number, category: string): EvidenceEntry[] {
    return this.store.categoryCounts(host, service, openedAt - this.evidenceWindowOf(category), openedAt, category);
  }

  /**
   * Counts a new event into the evidence of incidents on the same host+service whose window it
   * falls in. Incremental, so evidence survives the per-incident event cap pruning old events.
   */
  private addAsEvidence(event: LeakEvent, time: number, batch: BatchIncidents): void {
    const candidates = this.store.incidentsOpenedBetween(event.host, event.service, time, time + this.longestEvidenceWindowMs);
    for (const found of candidates) {
      if (found.id === event.incident_id || found.category === event.category) continue;
      // Candidates come from the longest window; each incident counts what falls in its own.
      if (found.first_seen - time > this.evidenceWindowOf(found.category)) continue;
      const incident = batch.byId(found.id) ?? this.store.incident(found.id);
      if (incident === undefined) continue;
      const evidence = incident.evidence.map((entry) => ({ ...entry }));
      const entry = evidence.find((e) => e.category === event.category);
      if (entry) {
        entry.count++;
        entry.first_seen = Math.min(entry.first_seen, time);
        entry.last_seen = Math.max(entry.last_seen, time);
      } else {
        evidence.push({ category: event.category, count: 1, first_seen: time, last_seen: time });
        evidence.sort((a, b) => a.category.localeCompare(b.category));
      }
      batch.put({ ...incident, evidence }, false);
    }
  }

  /** Page of incidents ordered by last_seen desc, id asc. Throws InvalidCursorError for a bad cursor. */
  list(query: IncidentListQuery): { incidents: IncidentView[]; next_cursor: string | null } {
    const { cursor, ...filters } = query;
    let after: IncidentQuery['after'];
    if (cursor !== undefined) {
      after = decodeCursor(cursor);
      if (!after) throw new InvalidCursorError('cursor is not one this server returned');
    }
    const rows = this.store.listIncidents({ ...filters, after, limit: query.limit + 1 });
    const page = rows.slice(0, query.limit);
    const last = page[page.length - 1];
    const next_cursor = rows.length > query.limit && last ? encodeCursor({ last_seen: last.last_seen, id: last.id }) : null;
    return { incidents: this.viewsOf(page), next_cursor };
  }

  get(id: string, eventLimit = 50): (IncidentView & { events: LeakEvent[] }) | undefined {
    const incident = this.store.incident(id);
    if (!incident) return undefined;
    // Up to PRUNE_EVERY_EVENTS extra rows may wait for their prune: the cap still holds for readers.
    const limit = Math.min(eventLimit, this.eventsPerIncident);
    return { ...this.viewOf(incident), events: this.store.eventsOfIncident(id, limit) };
  }

  /** Marks the incident as seen by a human; it stays open. */
  ack(id: string): IncidentView | undefined {
    return this.update(id, (incident) => ({ ...incident, acked_at: this.now() }));
  }

  /** Resolves by hand (resolved_at is wall-clock time); the next newer event reopens it. */
  resolve(id: string): IncidentView | undefined {
    return this.update(id, (incident) =>
      incident.status === 'resolved' ? incident : { ...incident, status: 'resolved', resolved_at: this.now() },
    );
  }

  private update(id: string, change: (incident: IncidentRecord) => IncidentRecord): IncidentView | undefined {
    return this.store.transaction(() => {
      const incident = this.store.incident(id);
      if (!incident) return undefined;
      const updated = change(incident);
      this.store.saveIncident(updated);
      return this.viewOf(updated);
    });
  }

  private viewsOf(incidents: readonly IncidentRecord[]): IncidentView[] {
    const lastEvents = this.store.lastEventsOf(incidents);
    return incidents.map((incident) => toIncidentView(incident, lastEvents.get(incident.id)));
  }

  private viewOf(incident: IncidentRecord): IncidentView {
    return this.viewsOf([incident])[0]!;
  }
}
