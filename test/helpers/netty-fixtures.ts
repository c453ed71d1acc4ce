import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';

/**
 * The real two-host Netty export (test/fixtures/netty, produced by examples/netty-repro from genuine
 * Netty 4.1.48 / OpenJDK 17 output) and its manifest: what each process actually logged.
 */
export const NETTY_DIR = new URL('../fixtures/netty/', import.meta.url);
export const JOURNAL_TEXT = new URL('two-hosts.journal.txt', NETTY_DIR);
export const JOURNAL_JSON = new URL('two-hosts.journal.json', NETTY_DIR);

export interface ManifestRecord {
  time: string;
  journal_first_line: string;
  category: string | null;
  expected_tags: string[];
  line_count: number;
  requested_bytes?: number;
  used_bytes?: number;
  max_bytes?: number;
}

export interface ManifestHost {
  host: string;
  service: string;
  pid: string;
  expected_incidents: Record<string, number>;
  records: ManifestRecord[];
}

export function loadManifest(): { journal_line_count: number; hosts: Record<string, ManifestHost> } {
  return JSON.parse(readFileSync(new URL('manifest.json', NETTY_DIR), 'utf8')) as {
    journal_line_count: number;
    hosts: Record<string, ManifestHost>;
  };
}

/**
 * Exactly one event per logged failure record, none for the INFO lines: same stream, first line,
 * line count, category, tags and direct-memory numbers as the program logged them.
 */
export function expectEventsMatchManifest(events: readonly LeakEvent[]): void {
  const manifest = loadManifest();
  for (const host of Object.values(manifest.hosts)) {
    const got = events
      .filter((event) => event.host === host.host)
      .sort((a, b) => a.timestamp.localeCompare(b.timestamp));
    const expected = host.records.filter((record) => record.category !== null);
    expect(got.map((event) => event.category), `categories on ${host.host}`).toEqual(expected.map((r) => r.category));
    for (const [i, record] of expected.entries()) {
      const event = got[i]!;
      expect(event.service).toBe(host.service);
      expect(event.pid).toBe(host.pid);
      expect(event.message).toBe(record.journal_first_line);
      expect(event.line_count, `${host.host} ${record.category} line count`).toBe(record.line_count);
      expect([...event.tags].sort()).toEqual([...record.expected_tags].sort());
      expect(event.truncated).toBe(false);
      if (record.used_bytes !== undefined) {
        expect(event.fields).toMatchObject({
          used_bytes: record.used_bytes,
          max_bytes: record.max_bytes,
          requested_bytes: record.requested_bytes,
        });
        expect(event.fields.ratio).toBeCloseTo(record.used_bytes / record.max_bytes!, 6);
      }
    }
  }
  expect(events.length).toBe(
    Object.values(manifest.hosts).reduce((n, host) => n + host.records.filter((r) => r.category !== null).length, 0),
  );
}
