import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { LeakEvent } from '../../src/engine/event.js';
import { JOURNAL_JSON, JOURNAL_TEXT, NETTY_DIR, expectEventsMatchManifest, loadManifest } from '../helpers/netty-fixtures.js';

const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));

function analyze(args: string[], input?: string): { events: LeakEvent[]; stderr: string; status: number | null } {
  const run = spawnSync(process.execPath, [BIN, 'analyze', '--format', 'ndjson', ...args], { encoding: 'utf8', input });
  const events = run.stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as LeakEvent);
  return { events, stderr: run.stderr, status: run.status };
}

describe('leakwatch analyze on the real two-host Netty export', () => {
  it('journald short text: one event per logged record, right lines, category, tags and numbers', () => {
    const { events, stderr, status } = analyze([fileURLToPath(JOURNAL_TEXT)]);
    expect(status, stderr).toBe(0);
    expectEventsMatchManifest(events);
    expect(stderr).toContain(`${loadManifest().journal_line_count} lines`);
  });

  it('journalctl -o json: the same events, with the same ids', () => {
    const text = analyze([fileURLToPath(JOURNAL_TEXT)]);
    const json = analyze([fileURLToPath(JOURNAL_JSON)]);
    expect(json.status, json.stderr).toBe(0);
    expectEventsMatchManifest(json.events);
    // journald JSON carries µs timestamps where the text carries seconds, so ids differ by origin
    // time; what must agree is everything an SRE reads.
    const view = (e: LeakEvent): unknown => [e.host, e.pid, e.category, e.line_count, e.tags, e.fields];
    expect(json.events.map(view).sort()).toEqual(text.events.map(view).sort());
  });

  it('reads stdin with "-"', () => {
    const { events, status } = analyze(['-'], readFileSync(JOURNAL_TEXT, 'utf8'));
    expect(status).toBe(0);
    expectEventsMatchManifest(events);
  });

  it('raw linkerd files: each file is its own stream, blank lines after traces are not part of them', () => {
    const files = ['edge-a.linkerd.log', 'edge-b.linkerd.log'].map((name) => fileURLToPath(new URL(name, NETTY_DIR)));
    const { events, status, stderr } = analyze(files);
    expect(status, stderr).toBe(0);
    const manifest = loadManifest();
    for (const [i, name] of ['edge-a', 'edge-b'].entries()) {
      const expected = manifest.hosts[name]!.records.filter((r) => r.category !== null);
      const got = events.filter((e) => e.service === `${name}.linkerd.log`);
      expect(got.map((e) => e.category)).toEqual(expected.map((r) => r.category));
      expect(got.map((e) => e.fields.used_bytes ?? null)).toEqual(expected.map((r) => r.used_bytes ?? null));
      expect(files[i]).toContain(name);
    }
  });

  it('a missing file is a clear error, not a crash', () => {
    const run = spawnSync(process.execPath, [BIN, 'analyze', '/nonexistent/x.log'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('no such file: /nonexistent/x.log');
  });

  it('the table ends with the unclassified traces and their commonest first lines; --all lists every record', () => {
    // Tomcat's java.util.logging records (https://github.com/Verigreen/verigreen/issues/127): two-line
    // records no shipped rule claims (no stack trace), after the export's lines.
    const tomcat = [
      'Sep 19 12:10:59 web-9 tomcat[808]: Sep 19, 2017 12:10:59 PM org.apache.catalina.core.ApplicationContext log',
      'Sep 19 12:10:59 web-9 tomcat[808]: INFO: Log4jServletContextListener ensuring that Log4j shuts down properly.',
      'Sep 19 12:10:59 web-9 tomcat[808]: Sep 19, 2017 12:10:59 PM org.apache.catalina.core.ApplicationContext log',
      'Sep 19 12:10:59 web-9 tomcat[808]: INFO: Removing LoggerContext for [collector].',
    ];
    const input = [...readFileSync(JOURNAL_TEXT, 'utf8').trim().split('\n'), ...tomcat].join('\n') + '\n';
    const table = spawnSync(process.execPath, [BIN, 'analyze', '-'], { encoding: 'utf8', input });
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/\n2 unclassified traces \(multi-line records no rule matched; `--all` lists them\)\. Commonest first lines:\n {6}2 {2}Sep N, N N:N:N PM org\.apache\.catalina\.core\.ApplicationContext log\n$/);

    const all = analyze(['--all', '-'], input);
    const unclassified = all.events.filter((event) => event.category === null);
    expect(all.events.filter((event) => event.category !== null)).toHaveLength(6);
    expect(unclassified.filter((event) => event.service === 'tomcat').map((event) => [event.line_count, event.text.split('\n')[1]])).toEqual([
      [2, 'INFO: Log4jServletContextListener ensuring that Log4j shuts down properly.'],
      [2, 'INFO: Removing LoggerContext for [collector].'],
    ]);
    // Every INFO line of the export is there too, as a record of one line without a rule.
    expect(unclassified.filter((event) => event.service === 'linkerd' && event.line_count === 1).length).toBeGreaterThan(10);
    expect(unclassified.every((event) => event.rule === null && event.severity === null)).toBe(true);
  });
});
