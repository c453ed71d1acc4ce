import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import type { RawSettings } from '../../src/config.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';

/*
 * The recorded run of examples/netty-repro/run-leak.sh (test/fixtures/netty-leak/README.md): on
 * host edge-c, linkerd pid 4301 leaks fast and dies of Netty's OutOfDirectMemoryError, which
 * tells the limit; its successor pid 4302 leaks pooled direct buffers at a steady rate under bursty
 * traffic, scraped every 30 s the way Vector's http_client source sends linkerd's metrics.json, until
 * Netty refuses an allocation. Its logs are journald entries. Everything goes through the sink as a
 * shipper would send it: in event-time order, a minute of event time per request.
 */
const FIXTURE = new URL('../fixtures/netty-leak/', import.meta.url);

interface Run {
  pid: string;
  base_time: string;
  oodm: { time: string; used_bytes: number; max_bytes: number };
}
const manifest = JSON.parse(readFileSync(new URL('manifest.json', FIXTURE), 'utf8')) as { netty_max_direct_memory: number; runs: Run[] };
const [crashed, successor] = manifest.runs as [Run, Run];
const entries = readFileSync(new URL('leak-run.ndjson', FIXTURE), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as Record<string, string>);

function eventTimeOf(entry: Record<string, string>): number {
  return entry['__REALTIME_TIMESTAMP'] !== undefined ? Number(BigInt(entry['__REALTIME_TIMESTAMP']) / 1000n) : Date.parse(entry['timestamp']!);
}

/** Entries from `from` on (event time), as batches of one minute each. */
function batches(from: number): Array<Array<Record<string, string>>> {
  const result: Array<Array<Record<string, string>>> = [];
  let current: Array<Record<string, string>> = [];
  let batchStart = Number.NEGATIVE_INFINITY;
  for (const entry of entries) {
    const t = eventTimeOf(entry);
    if (t < from) continue;
    if (t - batchStart >= 60_000 && current.length > 0) {
      result.push(current);
      current = [];
    }
    if (current.length === 0) batchStart = t;
    current.push(entry);
  }
  if (current.length > 0) result.push(current);
  return result;
}

interface IncidentView {
  id: string;
  category: string;
  host: string;
  service: string;
  first_seen: string;
  last_seen: string;
  reopened_count: number;
  pids: string[];
  severity: string;
  fields: Record<string, unknown>;
  evidence: Array<{ category: string; count: number }>;
}

async function replay(settings: RawSettings, from: number): Promise<{ running: RunningLeakwatch; incidents: IncidentView[] }> {
  const running = await startLeakwatch('leak-run', settings);
  const { service, base } = running;
  const successorStart = Date.parse(successor.base_time);
  let flushedBetweenRuns = false;
  for (const batch of batches(from)) {
    if (!flushedBetweenRuns && eventTimeOf(batch[0]!) >= successorStart) {
      // A quiet half hour passes between the crash and the restart: the crash's record has closed.
      service.pipeline.closeOpenGroups();
      flushedBetweenRuns = true;
    }
    const response = await request(`${base}/ingest`, { method: 'POST', body: JSON.stringify(batch), headers: { 'content-type': 'application/json' } });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    await service.pipeline.whenIdle();
  }
  service.pipeline.closeOpenGroups();
  await service.pipeline.whenIdle();
  const body = (await (await request(`${base}/incidents?status=all&host=edge-c&limit=100`)).body.json()) as { incidents: IncidentView[] };
  return { running, incidents: body.incidents };
}

async function firstWarning(running: RunningLeakwatch, incident: IncidentView): Promise<LeakEvent> {
  const detail = (await (await request(`${running.base}/incidents/${incident.id}`)).body.json()) as { events: LeakEvent[] };
  return detail.events.reduce((earliest, event) => (Date.parse(event.timestamp) < Date.parse(earliest.timestamp) ? event : earliest));
}

/** How far the predicted exhaustion is from the real one, relative to the time that was left when it was said. */
function relativeError(warning: LeakEvent): number {
  const real = Date.parse(successor.oodm.time);
  const said = Date.parse(warning.timestamp);
  return Math.abs(Date.parse(String(warning.fields['exhaustion_at'])) - real) / (real - said);
}

describe('the recorded leaking Netty run through the sink', () => {
  describe('the limit learned from the predecessor’s crash', () => {
    let running: RunningLeakwatch;
    let incidents: IncidentView[];

    beforeAll(async () => {
      ({ running, incidents } = await replay({}, Number.NEGATIVE_INFINITY));
    });
    afterAll(() => running.close());

    it('opens a direct-memory-trend incident before the successor’s direct-memory-exhausted one, with the exhaustion time within 10 %', async () => {
      const exhausted = incidents.find((i) => i.category === 'direct-memory-exhausted')!;
      const trend = incidents.find((i) => i.category === 'direct-memory-trend')!;
      expect(exhausted.pids).toEqual([crashed.pid, successor.pid]);
      // The predecessor's crash opened it; the successor's, hours later, reopened it.
      expect(exhausted).toMatchObject({ first_seen: crashed.oodm.time, last_seen: successor.oodm.time, reopened_count: 1 });
      expect(trend).toMatchObject({ host: 'edge-c', service: 'linkerd', severity: expect.stringMatching(/warning|critical/) });
      const warning = await firstWarning(running, trend);
      expect(Date.parse(warning.timestamp)).toBeGreaterThan(Date.parse(successor.base_time));
      expect(Date.parse(warning.timestamp)).toBeLessThan(Date.parse(successor.oodm.time));
      expect(warning.fields).toMatchObject({ max_bytes: crashed.oodm.max_bytes, max_source: 'learned', source: 'finagle-netty4-pooling' });
      expect(relativeError(warning)).toBeLessThan(0.1);
      // What was on this host and service by then: the leak reports and the resets at the pipeline's tail.
      expect(trend.evidence.map((e) => e.category)).toEqual(expect.arrayContaining(['buffer-leak', 'exception-caught-at-tail', 'direct-memory-exhausted']));
    });
  });

  describe('the limit from --direct-memory-max, nothing learned before', () => {
    let running: RunningLeakwatch;
    let incidents: IncidentView[];

    beforeAll(async () => {
      ({ running, incidents } = await replay({ directMemoryMax: `linkerd=${manifest.netty_max_direct_memory}` }, Date.parse(successor.base_time)));
    });
    afterAll(() => running.close());

    it('warns as early and as well', async () => {
      const trend = incidents.find((i) => i.category === 'direct-memory-trend')!;
      const warning = await firstWarning(running, trend);
      expect(warning.fields).toMatchObject({ max_bytes: manifest.netty_max_direct_memory, max_source: 'setting' });
      expect(Date.parse(warning.timestamp)).toBeLessThan(Date.parse(incidents.find((i) => i.category === 'direct-memory-exhausted')!.first_seen));
      expect(relativeError(warning)).toBeLessThan(0.1);
    });
  });
});
