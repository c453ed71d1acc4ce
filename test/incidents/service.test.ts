import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IncidentService, type IncidentServiceOptions } from '../../src/incidents/service.js';
import type { Store } from '../../src/store/store.js';
import { storeBackends } from '../helpers/store-backends.js';
import { makeEvent } from './fixtures.js';

const MIN = 60_000;
// The seed thread's OODM: Nov 01 2017 11:59:32.962 CDT.
const T0 = Date.parse('2017-11-01T16:59:32.962Z');

let store: Store;

function service(options: IncidentServiceOptions = {}): IncidentService {
  return new IncidentService(store, { now: () => Date.parse('2024-01-01T00:00:00Z'), ...options });
}

describe.each(storeBackends('incidents'))('IncidentService.ingest on $name', (backend) => {
  beforeEach(() => {
    store = backend.fresh();
  });
  afterEach(() => {
    store.close();
    backend.cleanUp();
  });

  it('is idempotent: the same batch twice changes nothing', () => {
    const incidents = service();
    const batch = [
      makeEvent('leak', { time: T0 - 5 * MIN }),
      makeEvent('oodm', { time: T0, pid: '5699' }),
      makeEvent('oodm', { time: T0 + MIN, pid: '5700' }),
    ];
    const first = incidents.ingest(batch);
    expect(first).toMatchObject({ inserted: 3, duplicates: 0, invalid: 0 });
    const before = incidents.list({ status: 'all', limit: 50 });
    const second = incidents.ingest(batch);
    expect(second).toMatchObject({ inserted: 0, duplicates: 3, invalid: 0, events: [] });
    expect(incidents.list({ status: 'all', limit: 50 })).toEqual(before);
    // A duplicate inside one batch is also recognised.
    const third = incidents.ingest([makeEvent('tail', { time: T0 }), makeEvent('tail', { time: T0 })]);
    expect(third).toMatchObject({ inserted: 1, duplicates: 1 });
  });

  it('fills incident_id on the stored events and keys incidents by incident_key', () => {
    const incidents = service();
    const { events } = incidents.ingest([makeEvent('oodm', { time: T0 }), makeEvent('leak', { time: T0 }), makeEvent('oodm', { time: T0 + 1 })]);
    expect(events).toHaveLength(3);
    expect(events[0]!.incident_id).toMatch(/^[0-9a-f]{24}$/);
    expect(events[2]!.incident_id).toBe(events[0]!.incident_id);
    expect(events[1]!.incident_id).not.toBe(events[0]!.incident_id);
  });

  it('tracks count, first/last seen (event time, order-independent) and pids', () => {
    const incidents = service();
    incidents.ingest([makeEvent('oodm', { time: T0 + 2 * MIN, pid: '5700', used_bytes: 1037900000 })]);
    incidents.ingest([makeEvent('oodm', { time: T0, pid: '5699' }), makeEvent('oodm', { time: T0 + MIN, pid: '5699', seq: 1 })]);
    const [incident] = incidents.list({ status: 'open', limit: 10 }).incidents;
    expect(incident).toBeDefined();
    expect(incident!.count).toBe(3);
    expect(incident!.first_seen).toBe(new Date(T0).toISOString());
    expect(incident!.last_seen).toBe(new Date(T0 + 2 * MIN).toISOString());
    expect([...incident!.pids].sort()).toEqual(['5699', '5700']);
    // fields, summary and last_event come from the newest event, not the last one ingested.
    expect(incident!.fields['used_bytes']).toBe(1037900000);
    expect(incident!.last_event!.pid).toBe('5700');
    expect(incident!.summary).toBe(incident!.last_event!.annotations.summary);
    expect(incident).toMatchObject({ key: 'netty-direct-memory-exhausted|lb-1|linkerd', rule: 'netty-direct-memory-exhausted', category: 'direct-memory-exhausted', host: 'lb-1', service: 'linkerd' });
  });

  it('escalates severity to the maximum seen and never lowers it while open', () => {
    const incidents = service();
    incidents.ingest([makeEvent('oodm', { time: T0, severity: 'error' })]);
    incidents.ingest([makeEvent('oodm', { time: T0 + MIN, severity: 'critical' })]);
    incidents.ingest([makeEvent('oodm', { time: T0 + 2 * MIN, severity: 'warning' })]);
    const [incident] = incidents.list({ status: 'open', limit: 10 }).incidents;
    expect(incident!.severity).toBe('critical');
    expect(incident!.last_event!.severity).toBe('warning');
  });

  it('resolves after the quiet period in event time and reopens with the same id', () => {
    const incidents = service({ quietPeriodMs: 30 * MIN });
    const { events } = incidents.ingest([makeEvent('oodm', { time: T0 })]);
    const id = events[0]!.incident_id!;
    // Another stream's event 30 minutes later: exactly the quiet period, not past it.
    incidents.ingest([makeEvent('leak', { time: T0 + 30 * MIN, host: 'lb-2' })]);
    expect(incidents.get(id)!.status).toBe('open');
    incidents.ingest([makeEvent('leak', { time: T0 + 31 * MIN, host: 'lb-2' })]);
    const resolved = incidents.get(id)!;
    expect(resolved.status).toBe('resolved');
    expect(resolved.resolved_at).toBe(new Date(T0 + 30 * MIN).toISOString());
    expect(incidents.list({ status: 'open', host: 'lb-1', limit: 10 }).incidents).toHaveLength(0);

    incidents.ingest([makeEvent('oodm', { time: T0 + 40 * MIN, severity: 'warning' })]);
    const reopened = incidents.get(id)!;
    expect(reopened).toMatchObject({ id, status: 'open', reopened_count: 1, resolved_at: null, count: 2, severity: 'warning' });
  });

  it('reopens an incident quiet long enough before its own next event even without a sweep in between', () => {
    const incidents = service({ quietPeriodMs: 30 * MIN });
    const { events } = incidents.ingest([makeEvent('oodm', { time: T0 })]);
    incidents.ingest([makeEvent('oodm', { time: T0 + 2 * 60 * MIN })]);
    expect(incidents.get(events[0]!.incident_id!)).toMatchObject({ status: 'open', reopened_count: 1, count: 2 });
  });

  it('applies a whole batch in order: a gap past the quiet period inside one batch reopens', () => {
    const incidents = service({ quietPeriodMs: 30 * MIN });
    const { events } = incidents.ingest([
      makeEvent('oodm', { time: T0, severity: 'critical' }),
      makeEvent('oodm', { time: T0 + MIN, seq: 1 }),
      makeEvent('oodm', { time: T0 + 2 * 60 * MIN, severity: 'warning', seq: 2 }),
      makeEvent('oodm', { time: T0 + 2 * 60 * MIN + MIN, severity: 'error', seq: 3 }),
    ]);
    expect(new Set(events.map((e) => e.incident_id)).size).toBe(1);
    expect(incidents.get(events[0]!.incident_id!)).toMatchObject({ status: 'open', reopened_count: 1, count: 4, severity: 'error' });
  });

  it('acks (stays open) and resolves by hand; a newer event reopens and clears the ack', () => {
    const wall = Date.parse('2024-01-01T00:00:00Z');
    const incidents = service();
    const { events } = incidents.ingest([makeEvent('oodm', { time: T0 })]);
    const id = events[0]!.incident_id!;
    expect(incidents.ack(id)).toMatchObject({ id, status: 'open', acked_at: new Date(wall).toISOString() });
    expect(incidents.resolve(id)).toMatchObject({ id, status: 'resolved', resolved_at: new Date(wall).toISOString() });
    expect(incidents.get(id)!.status).toBe('resolved');
    // An older, late event is counted but does not reopen.
    incidents.ingest([makeEvent('oodm', { time: T0 - MIN })]);
    expect(incidents.get(id)).toMatchObject({ status: 'resolved', count: 2 });
    incidents.ingest([makeEvent('oodm', { time: T0 + MIN })]);
    expect(incidents.get(id)).toMatchObject({ status: 'open', reopened_count: 1, acked_at: null, count: 3 });
    expect(incidents.ack('no-such-id')).toBeUndefined();
    expect(incidents.resolve('no-such-id')).toBeUndefined();
  });

  it('gathers evidence: other categories on the same host+service in the window before the opening', () => {
    const incidents = service({ evidenceWindowMs: 15 * MIN });
    incidents.ingest([
      makeEvent('leak', { time: T0 - 20 * MIN }), // before the window
      makeEvent('leak', { time: T0 - 10 * MIN }),
      makeEvent('tail', { time: T0 - 5 * MIN }),
      makeEvent('leak', { time: T0 - 2 * MIN, host: 'lb-2' }), // other host
      makeEvent('leak', { time: T0 - 2 * MIN, service: 'namerd' }), // other service
      makeEvent('tail', { time: T0 }), // same timestamp counts
      makeEvent('oodm', { time: T0 }),
      makeEvent('tail', { time: T0 + MIN, seq: 1 }), // after the opening
    ]);
    const oodm = incidents.list({ status: 'open', category: 'direct-memory-exhausted', limit: 5 }).incidents[0]!;
    expect(oodm.evidence).toEqual([
      { category: 'buffer-leak', count: 1, first_seen: new Date(T0 - 10 * MIN).toISOString(), last_seen: new Date(T0 - 10 * MIN).toISOString() },
      { category: 'exception-caught-at-tail', count: 2, first_seen: new Date(T0 - 5 * MIN).toISOString(), last_seen: new Date(T0).toISOString() },
    ]);
    // Evidence that arrives late (another pid's stream flushed later) is still counted.
    incidents.ingest([makeEvent('leak', { time: T0 - 14 * MIN, pid: '5700' })]);
    const again = incidents.get(oodm.id)!;
    expect(again.evidence.find((e) => e.category === 'buffer-leak')).toMatchObject({ count: 2, first_seen: new Date(T0 - 14 * MIN).toISOString() });
  });

  it('counts invalid events instead of failing the batch', () => {
    const incidents = service();
    const good = makeEvent('oodm', { time: T0 });
    const result = incidents.ingest([
      { ...makeEvent('oodm', { time: T0, seq: 1 }), timestamp: 'Nov 01 11:59:32' },
      { ...makeEvent('oodm', { time: T0, seq: 2 }), id: '' },
      { ...makeEvent('oodm', { time: T0, seq: 3 }), severity: 'fatal' as never },
      good,
    ]);
    expect(result).toMatchObject({ inserted: 1, duplicates: 0, invalid: 3 });
  });

  it('caps events per incident and keeps the newest', () => {
    const incidents = service({ eventsPerIncident: 5 });
    const batch = Array.from({ length: 8 }, (_, i) => makeEvent('oodm', { time: T0 + i * 1000, seq: i }));
    const { events } = incidents.ingest(batch);
    const incident = incidents.get(events[0]!.incident_id!)!;
    expect(incident.count).toBe(8);
    expect(incident.events.map((e) => e.timestamp)).toEqual(
      [7, 6, 5, 4, 3].map((i) => new Date(T0 + i * 1000).toISOString()),
    );
  });

  it('shows as last event the newest one stored, whatever the order, ties and pruning', () => {
    const incidents = service({ eventsPerIncident: 3 });
    // Times out of order, several at the newest time (the last one ingested of those wins), and
    // enough events for the cap to prune more than once.
    const offsets = [2, 0, 2, 1, 5, 3, 5, 4, 5, 0, ...Array.from({ length: 140 }, (_, i) => (i * 7) % 6)];
    const batches = [offsets.slice(0, 2), offsets.slice(2, 7), offsets.slice(7, 10), offsets.slice(10, 80), offsets.slice(80)];
    let seq = 0;
    let newest: { time: number; event: ReturnType<typeof makeEvent> } | undefined;
    let id = '';
    for (const batch of batches) {
      const events = batch.map((offset) => makeEvent('oodm', { time: T0 + offset * 1000, seq: seq++ }));
      for (const event of events) {
        const time = Date.parse(event.timestamp);
        if (newest === undefined || time >= newest.time) newest = { time, event };
      }
      id = incidents.ingest(events).events[0]!.incident_id!;
      const expected = { ...newest!.event, incident_id: id };
      const shown = incidents.get(id)!;
      expect(shown.last_event).toEqual(expected);
      expect(shown.events[0]).toEqual(expected);
      expect(incidents.list({ status: 'all', limit: 10 }).incidents[0]!.last_event).toEqual(expected);
      expect(incidents.ack(id)!.last_event).toEqual(expected);
    }
    expect(incidents.get(id)!.count).toBe(offsets.length);
    expect(store.eventsOfIncident(id, 1000).length).toBeLessThan(offsets.length);
  });

  it('prunes resolved incidents older than the retention in event time, keeps open ones', () => {
    const incidents = service({ quietPeriodMs: 30 * MIN, resolvedRetentionMs: 24 * 60 * MIN });
    const old = incidents.ingest([makeEvent('oodm', { time: T0 })]).events[0]!.incident_id!;
    const day = 24 * 60 * MIN;
    incidents.ingest([makeEvent('leak', { time: T0 + day - MIN, host: 'lb-2' })]);
    expect(incidents.get(old)!.status).toBe('resolved');
    incidents.ingest([makeEvent('leak', { time: T0 + day + MIN, host: 'lb-2' })]);
    expect(incidents.get(old)).toBeUndefined();
    expect(store.eventsOfIncident(old, 10)).toEqual([]);
    expect(incidents.list({ status: 'all', limit: 10 }).incidents.map((i) => i.host)).toEqual(['lb-2']);
  });

  it('joins an enclosing transaction: when that rolls back, nothing is stored and the watermark goes back', () => {
    const incidents = service();
    incidents.ingest([makeEvent('oodm', { time: T0 })]);
    const later = makeEvent('leak', { time: T0 + 10 * MIN, host: 'lb-2' });
    expect(() =>
      incidents.transaction(() => {
        incidents.ingest([later]);
        // A later ingest in the same transaction starts from the watermark this one moved.
        expect(incidents.eventTimeWatermark).toBe(T0 + 10 * MIN);
        throw new Error('database or disk is full');
      }),
    ).toThrow('database or disk is full');
    expect(incidents.eventTimeWatermark).toBe(T0);
    expect(incidents.list({ status: 'all', limit: 10 }).incidents.map((incident) => incident.host)).toEqual(['lb-1']);
    // Nothing of the rolled-back batch was kept: sent again, it is stored as new.
    expect(incidents.ingest([later])).toMatchObject({ inserted: 1, duplicates: 0 });
    expect(incidents.eventTimeWatermark).toBe(T0 + 10 * MIN);
  });

  it('keeps its event-time watermark across a restart', () => {
    const first = service({ quietPeriodMs: 30 * MIN });
    const id = first.ingest([makeEvent('oodm', { time: T0 }), makeEvent('leak', { time: T0 + 10 * MIN, host: 'lb-2' })]).events[0]!.incident_id!;
    store.close();
    store = backend.reopen();
    const second = service({ quietPeriodMs: 30 * MIN });
    expect(second.eventTimeWatermark).toBe(T0 + 10 * MIN);
    second.ingest([makeEvent('leak', { time: T0 + 31 * MIN, host: 'lb-3' })]);
    expect(second.get(id)!.status).toBe('resolved');
  });
});
