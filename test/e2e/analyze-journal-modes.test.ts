/**
 * Every journalctl output mode that carries a time, as journalctl itself prints it: the fixtures in
 * test/fixtures/journald are systemd 252's journalctl output of the two-host Netty export
 * (test/fixtures/journald/make-fixtures.sh; formats: man journalctl --output, systemd
 * src/shared/logs-show.c, https://systemd.io/JOURNAL_EXPORT_FORMATS/). Each must give the events of
 * `journalctl -o short`, with their hosts and pids.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import { JOURNAL_TEXT, expectEventsMatchManifest, loadManifest } from '../helpers/netty-fixtures.js';

const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));
const JOURNALD = new URL('../fixtures/journald/', import.meta.url);

function analyze(file: string): { events: LeakEvent[]; stderr: string; status: number | null } {
  const run = spawnSync(process.execPath, [BIN, 'analyze', '--format', 'ndjson', file], { encoding: 'utf8' });
  const events = run.stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as LeakEvent);
  return { events, stderr: run.stderr, status: run.status };
}

/** What an SRE reads of an event, in a stable order. */
function view(events: readonly LeakEvent[]): unknown[] {
  return events.map((e) => [e.host, e.service, e.pid, e.category, e.message, e.line_count, e.tags, e.fields]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

const MODES: ReadonlyArray<[mode: string, file: string]> = [
  ['short-full', 'two-hosts.short-full.txt'],
  ['short-unix', 'two-hosts.short-unix.txt'],
  ['short-monotonic', 'two-hosts.short-monotonic.txt'],
  ['short-delta', 'two-hosts.short-delta.txt'],
  ['with-unit', 'two-hosts.with-unit.txt'],
  ['verbose (gzip)', 'two-hosts.verbose.txt.gz'],
  ['json-sse (gzip)', 'two-hosts.json-sse.txt.gz'],
  ['json-seq (zstd)', 'two-hosts.json-seq.zst'],
  ['json-pretty (zstd)', 'two-hosts.json-pretty.zst'],
  ['export (zstd)', 'two-hosts.export.zst'],
];

describe('leakwatch analyze reads every journalctl output mode that carries a time', () => {
  const short = analyze(fileURLToPath(JOURNAL_TEXT));

  it.each(MODES)('-o %s: the events of -o short, with host and pid', (mode, file) => {
    const { events, stderr, status } = analyze(fileURLToPath(new URL(file, JOURNALD)));
    expect(status, stderr).toBe(0);
    // with-unit names the unit where the others name the identifier.
    const expected = mode === 'with-unit' ? short.events.map((event) => ({ ...event, service: 'linkerd.service' })) : short.events;
    expect(view(events)).toEqual(view(expected));
    if (mode !== 'with-unit') expectEventsMatchManifest(events);
    expect(stderr).toContain(`${events.length} events`);
  });

  it('-o short-full and -o short-unix date events by the journal (zone known or epoch), to the journal\'s precision', () => {
    const byMessage = (events: readonly LeakEvent[]): Map<string, string> => new Map(events.map((event) => [event.message, event.timestamp]));
    const full = byMessage(analyze(fileURLToPath(new URL('two-hosts.short-full.txt', JOURNALD))).events);
    const unix = byMessage(analyze(fileURLToPath(new URL('two-hosts.short-unix.txt', JOURNALD))).events);
    const manifest = loadManifest();
    for (const host of Object.values(manifest.hosts)) {
      for (const record of host.records.filter((r) => r.category !== null)) {
        // journald stamped the record's first line at its time plus a microsecond per line before it (build-fixtures.mjs).
        const logged = new Date(record.time).getTime();
        // short-full prints seconds in CDT (UTC-5): the same second, read back as UTC.
        expect(full.get(record.journal_first_line)).toBe(new Date(Math.floor(logged / 1000) * 1000).toISOString());
        // short-unix prints µs since the epoch.
        expect(Math.abs(new Date(unix.get(record.journal_first_line) as string).getTime() - logged)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('-o short-monotonic says what it lacks: no wall-clock time (events dated by their log headers)', () => {
    const { stderr } = analyze(fileURLToPath(new URL('two-hosts.short-monotonic.txt', JOURNALD)));
    expect(stderr).toMatch(/short-monotonic.*no wall-clock time/);
    const { stderr: full } = analyze(fileURLToPath(new URL('two-hosts.short-full.txt', JOURNALD)));
    expect(full).not.toMatch(/no wall-clock time/);
  });

  it('-o export: a field written in its binary form (a MESSAGE holding a whole trace) is one record', () => {
    const { events, status, stderr } = analyze(fileURLToPath(new URL('one-trace-message.export', JOURNALD)));
    expect(status, stderr).toBe(0);
    expect(events.map((e) => [e.host, e.pid, e.category, e.line_count, e.fields.used_bytes])).toEqual([['web-1', '5699', 'direct-memory-exhausted', 3, 1037041958]]);
    // The header's own time and zone: 11:59:32.962 CDT.
    expect(events[0]?.timestamp).toBe('2017-11-01T16:59:32.962Z');
  });
});
