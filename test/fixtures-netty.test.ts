// Sanity checks for test/fixtures/netty: the manifest must describe exactly what the exports hold.
// The fixtures are real output of Netty 4.1.48 on OpenJDK 17 (Debian libnetty-java), produced by
// examples/netty-repro/run.sh; see test/fixtures/netty/README.md.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixtureDir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'netty');

interface ManifestRecord {
  seq: number;
  time: string;
  level: string;
  first_line: string;
  journal_first_line: string;
  message_first_line: string;
  exception_class: string | null;
  exception_message: string | null;
  category: string | null;
  expected_tags: string[];
  line_count: number;
  raw_line_count: number;
  requested_bytes?: number;
  used_bytes?: number;
  max_bytes?: number;
}

interface HostManifest {
  host: string;
  service: string;
  pid: string;
  layout: 'jul' | 'log4j';
  journald_strips_leading_whitespace: boolean;
  raw_line_count: number;
  journal_line_count: number;
  expected_event_count: number;
  expected_incidents: Record<string, number>;
  records: ManifestRecord[];
}

interface Manifest {
  journal_line_count: number;
  hosts: Record<string, HostManifest>;
}

interface JournalJsonEntry {
  __REALTIME_TIMESTAMP: string;
  _HOSTNAME: string;
  SYSLOG_IDENTIFIER: string;
  _PID: string;
  _SYSTEMD_UNIT: string;
  _TRANSPORT: string;
  PRIORITY: string;
  MESSAGE: string;
}

interface ShortLine {
  stamp: string;
  host: string;
  service: string;
  pid: string;
  message: string;
}

const readFixture = (name: string): string => readFileSync(join(fixtureDir, name), 'utf8');
const linesOf = (text: string): string[] => text.replace(/\n$/, '').split('\n');

const manifest = JSON.parse(readFixture('manifest.json')) as Manifest;
const textLines = linesOf(readFixture('two-hosts.journal.txt'));
const jsonEntries = linesOf(readFixture('two-hosts.journal.json')).map((line) => JSON.parse(line) as JournalJsonEntry);
const hosts = Object.values(manifest.hosts);

const SHORT_PREFIX = /^([A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d) (\S+) ([^\s[]+)\[(\d+)\]: (.*)$/;

function parseShort(line: string): ShortLine {
  const match = SHORT_PREFIX.exec(line);
  if (!match) throw new Error(`not a journalctl short line: ${line}`);
  const [, stamp = '', host = '', service = '', pid = '', message = ''] = match;
  return { stamp, host, service, pid, message };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function shortStampUtc(realtimeMicros: string): string {
  const date = new Date(Number(BigInt(realtimeMicros) / 1000n));
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[date.getUTCMonth()]} ${two(date.getUTCDate())} ${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}`;
}

const parsedText = textLines.map(parseShort);
const messagesOf = (host: string): string[] => parsedText.filter((l) => l.host === host).map((l) => l.message);

describe('netty fixtures: manifest vs journald exports', () => {
  it('describes two hosts with distinct pids, one per linkerd layout', () => {
    expect(hosts.map((h) => h.host).sort()).toEqual(['edge-a', 'edge-b']);
    expect(new Set(hosts.map((h) => h.pid)).size).toBe(2);
    expect(hosts.map((h) => h.layout).sort()).toEqual(['jul', 'log4j']);
  });

  it('counts the same lines per host as the text export holds', () => {
    expect(textLines.length).toBe(manifest.journal_line_count);
    for (const host of hosts) {
      const fromRecords = host.records.reduce((sum, r) => sum + r.line_count, 0);
      expect(messagesOf(host.host).length).toBe(host.journal_line_count);
      expect(fromRecords).toBe(host.journal_line_count);
      expect(parsedText.filter((l) => l.host === host.host).every((l) => l.pid === host.pid && l.service === host.service)).toBe(true);
    }
  });

  it('interleaves the two hosts line by line', () => {
    const shorter = Math.min(...hosts.map((h) => h.journal_line_count));
    for (let i = 0; i + 1 < 2 * shorter; i += 2) {
      expect(parsedText[i]?.host).not.toBe(parsedText[i + 1]?.host);
    }
  });

  it('finds every record, in order, starting with its first line and spanning line_count lines', () => {
    for (const host of hosts) {
      const messages = messagesOf(host.host);
      let position = 0;
      for (const record of host.records) {
        expect(messages[position], `${host.host} #${record.seq}`).toBe(record.journal_first_line);
        expect(record.journal_first_line).toBe(record.first_line.trim());
        position += record.line_count;
      }
      expect(position).toBe(messages.length);
    }
  });

  it('holds the raw linkerd files, minus what journald drops, in the export', () => {
    for (const host of hosts) {
      const raw = linesOf(readFixture(`${host.host}.linkerd.log`));
      expect(raw.length).toBe(host.raw_line_count);
      const kept = raw
        .map((l) => l.replace(/[ \t\r]+$/, ''))
        .map((l) => (host.journald_strips_leading_whitespace ? l.replace(/^[ \t\r]+/, '') : l))
        .filter((l) => l !== '');
      expect(messagesOf(host.host)).toEqual(kept);
    }
    // jul layout prints a blank line after each trace; edge-b keeps frame indentation.
    expect(readFixture('edge-a.linkerd.log')).toMatch(/\n\n/);
    expect(messagesOf('edge-a').some((m) => m.startsWith('at io.netty.'))).toBe(true);
    expect(messagesOf('edge-b').some((m) => m.startsWith('\tat io.netty.'))).toBe(true);
  });

  it('has exactly one of each failure per host, plus plain INFO lines', () => {
    for (const host of hosts) {
      const categories = host.records.map((r) => r.category).filter((c): c is string => c !== null).sort();
      expect(categories).toEqual(['buffer-leak', 'direct-memory-exhausted', 'exception-caught-at-tail']);
      expect(host.expected_event_count).toBe(3);
      expect(host.expected_incidents).toEqual({ 'buffer-leak': 1, 'direct-memory-exhausted': 1, 'exception-caught-at-tail': 1 });
      const info = host.records.filter((r) => r.category === null);
      expect(info.length).toBeGreaterThan(0);
      expect(info.every((r) => r.level === 'INFO' && r.line_count === 1)).toBe(true);
    }
  });

  it('carries OutOfDirectMemoryError numbers that match the logged text', () => {
    for (const host of hosts) {
      const record = host.records.find((r) => r.category === 'direct-memory-exhausted');
      if (!record) throw new Error(`${host.host}: no direct-memory record`);
      const messages = messagesOf(host.host);
      const start = messages.indexOf(record.journal_first_line);
      const text = messages.slice(start, start + record.line_count).join('\n');
      const numbers = /failed to allocate (\d+) byte\(s\) of direct memory \(used: (\d+), max: (\d+)\)/.exec(text);
      expect(numbers, host.host).not.toBeNull();
      expect(Number(numbers?.[1])).toBe(record.requested_bytes);
      expect(Number(numbers?.[2])).toBe(record.used_bytes);
      expect(Number(numbers?.[3])).toBe(record.max_bytes);
      expect((record.used_bytes ?? 0) + (record.requested_bytes ?? 0)).toBeGreaterThan(record.max_bytes ?? 0);
      expect(record.exception_class).toBe('io.netty.util.internal.OutOfDirectMemoryError');
      expect(record.expected_tags).toEqual(['channel-init-failed']);
    }
  });

  it('holds the same entries in the JSON export as in the text export', () => {
    expect(jsonEntries.length).toBe(textLines.length);
    jsonEntries.forEach((entry, index) => {
      const line = parsedText[index];
      expect(line).toBeDefined();
      expect({
        stamp: shortStampUtc(entry.__REALTIME_TIMESTAMP),
        host: entry._HOSTNAME,
        service: entry.SYSLOG_IDENTIFIER,
        pid: entry._PID,
        message: entry.MESSAGE,
      }).toEqual(line);
      expect(entry._SYSTEMD_UNIT).toBe('linkerd.service');
      expect(entry._TRANSPORT).toBe('stdout');
      expect(entry.__REALTIME_TIMESTAMP).toMatch(/^\d{16}$/);
    });
  });

  it('stamps each record in the journal within a millisecond of its linkerd header time', () => {
    const header = /^(?:[DIWEU]|TRACE|DEBUG|INFO|WARN|ERROR|FATAL) (\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3}) UTC /;
    let checked = 0;
    for (const entry of jsonEntries) {
      const match = header.exec(entry.MESSAGE);
      if (!match) continue;
      const [, month, day, hours, minutes, seconds, millis] = match.map(Number);
      const journalMillis = Number(BigInt(entry.__REALTIME_TIMESTAMP) / 1000n);
      const year = new Date(journalMillis).getUTCFullYear();
      const headerMillis = Date.UTC(year, (month ?? 1) - 1, day, hours, minutes, seconds, millis);
      expect(journalMillis - headerMillis).toBeGreaterThanOrEqual(0);
      expect(journalMillis - headerMillis).toBeLessThanOrEqual(1);
      checked++;
    }
    expect(checked).toBe(hosts.reduce((sum, h) => sum + h.records.length, 0));
  });
});
