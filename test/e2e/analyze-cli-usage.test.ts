/**
 * `leakwatch analyze` as a command line tool, run as a child process: compressed files, folders,
 * a reader that goes away, a terminal on stdin or stderr, the table, mistyped commands, --help.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCorpus, journaldLine } from '../../bench/corpus.js';
import type { LeakEvent } from '../../src/engine/event.js';
import { JOURNAL_TEXT, NETTY_DIR, loadManifest } from '../helpers/netty-fixtures.js';

const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));
const JOURNALD = new URL('../fixtures/journald/', import.meta.url);

function run(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): { stdout: string; stderr: string; status: number | null } {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', input: options.input, env: options.env ?? process.env, timeout: 60_000, maxBuffer: 256 * 1024 * 1024 });
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}

function events(stdout: string): LeakEvent[] {
  return stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as LeakEvent);
}

/** `script` (util-linux) runs a command on a pseudo-terminal: what a person at a terminal gives it. */
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

function onTerminal(command: string): { output: string; status: number | null } {
  const result = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { output: result.stdout, status: result.status };
}

let dir: string;
let corpus: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'leakwatch-analyze-cli-'));
  // bench/corpus.js: 8 linkerd processes on 4 hosts, interleaved line by line, a third of the lines in traces.
  corpus = join(dir, 'corpus.log');
  const lines: string[] = [];
  for (const entry of generateCorpus({ lines: 200_000, seed: 1193 })) lines.push(journaldLine(entry));
  writeFileSync(corpus, lines.join('\n') + '\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('compressed input, told by its first bytes', () => {
  it('gzip and zstd files give the events of the plain file, whatever their names', () => {
    const plain = run(['analyze', '--format', 'ndjson', fileURLToPath(JOURNAL_TEXT)]);
    const gzipped = join(dir, 'two-hosts.log');
    writeFileSync(gzipped, gzipSync(readFileSync(JOURNAL_TEXT)));
    // The zstd fixture is `journalctl -o json-seq`: the same entries (test/fixtures/journald/make-fixtures.sh).
    const zstd = join(dir, 'two-hosts.txt');
    copyFileSync(new URL('two-hosts.json-seq.zst', JOURNALD), zstd);
    const view = (list: LeakEvent[]): unknown[] => list.map((e) => [e.host, e.pid, e.category, e.message, e.line_count]).sort();
    expect(plain.status, plain.stderr).toBe(0);
    const fromGzip = run(['analyze', '--format', 'ndjson', gzipped]);
    expect(fromGzip.status, fromGzip.stderr).toBe(0);
    expect(fromGzip.stdout).toBe(plain.stdout);
    const fromZstd = run(['analyze', '--format', 'ndjson', zstd]);
    expect(fromZstd.status, fromZstd.stderr).toBe(0);
    expect(view(events(fromZstd.stdout))).toEqual(view(events(plain.stdout)));
    // Several gzip members one after another (`cat a.gz b.gz`) are one file.
    const twice = join(dir, 'twice.log.gz');
    writeFileSync(twice, Buffer.concat([gzipSync(readFileSync(JOURNAL_TEXT)), gzipSync(readFileSync(JOURNAL_TEXT))]));
    expect(run(['analyze', twice]).stderr).toContain(`${loadManifest().journal_line_count * 2} lines`);
  });

  it('a damaged file is one clear line, not a stack', () => {
    const truncated = join(dir, 'truncated.gz');
    const whole = gzipSync(readFileSync(JOURNAL_TEXT));
    writeFileSync(truncated, whole.subarray(0, whole.length - 100));
    const result = run(['analyze', truncated]);
    expect(result.status).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([`leakwatch: ${truncated}: invalid gzip data: unexpected end of file`]);
  });

  it('a zstd frame asking for more window than allowed is refused before it is decoded', () => {
    const zstd = join(dir, 'two-hosts.zst');
    copyFileSync(new URL('two-hosts.export.zst', JOURNALD), zstd);
    const result = run(['analyze', '--max-zstd-window', '1k', zstd]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/zstd frame asks for a window larger than 1024 bytes \(allow a larger one with --max-zstd-window\)/);
  });
});

describe('folders', () => {
  it('a folder is refused in one line; --recursive reads every file below it, each its own stream', () => {
    const logs = join(dir, 'logs');
    mkdirSync(join(logs, 'older'), { recursive: true });
    copyFileSync(new URL('edge-a.linkerd.log', NETTY_DIR), join(logs, 'edge-a.linkerd.log'));
    writeFileSync(join(logs, 'older', 'edge-b.linkerd.log.gz'), gzipSync(readFileSync(new URL('edge-b.linkerd.log', NETTY_DIR))));
    const refused = run(['analyze', logs]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toBe(`leakwatch: ${logs} is a directory; give its files, or --recursive to read every file below it\n`);
    const walked = run(['analyze', '--recursive', '--format', 'ndjson', logs]);
    expect(walked.status, walked.stderr).toBe(0);
    const byService = new Map<string, string[]>();
    for (const event of events(walked.stdout)) byService.set(event.service, [...(byService.get(event.service) ?? []), event.category]);
    const manifest = loadManifest();
    expect(byService.get('edge-a.linkerd.log')).toEqual(manifest.hosts['edge-a']!.records.filter((r) => r.category !== null).map((r) => r.category));
    expect(byService.get('edge-b.linkerd.log.gz')).toEqual(manifest.hosts['edge-b']!.records.filter((r) => r.category !== null).map((r) => r.category));
  });
});

describe('the reader of the output', () => {
  it('`analyze big.log | head -3` ends quietly: exit 0, nothing on stderr, soon after the reader left', async () => {
    const child = spawn(process.execPath, [BIN, 'analyze', '--format', 'ndjson', corpus], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let seen = '';
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        seen += chunk;
        if (seen.split('\n').length > 3) {
          child.stdout.destroy();
          resolve();
        }
      });
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    expect(code).toBe(0);
    expect(stderr).toBe('');
  });
});

describe('a terminal', () => {
  it.skipIf(!hasScript)('analyze without files and a terminal on stdin prints its usage instead of waiting', () => {
    const { output, status } = onTerminal(`${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} analyze`);
    expect(status).toBe(2);
    expect(output).toContain('Usage: leakwatch analyze [options] [files...]');
    expect(output).toContain('give files to analyze, or pipe them in');
  });

  it.skipIf(!hasScript)('a progress line (lines/s, ETA) on stderr when stderr is a terminal, cleared at the end', () => {
    const { output, status } = onTerminal(`${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} analyze --format ndjson ${JSON.stringify(corpus)} > /dev/null`);
    expect(status).toBe(0);
    expect(output).toMatch(/\ranalyze: [\d,]+ lines, [\d,]+ lines\/s, [\d.]+ \w+ of [\d.]+ MiB \(\d+%\)(, ETA \d+s)?\u001b\[K/);
    expect(output).toContain('\r\u001b[K');
  });

  it('no progress line when stderr is not a terminal', () => {
    const result = run(['analyze', '--format', 'ndjson', corpus]);
    expect(result.status).toBe(0);
    expect(result.stderr).not.toContain('\r');
    expect(result.stderr).not.toContain('ETA');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('the table', () => {
  it('sorted by time, with columns as wide as their widest cell (long file names, tags)', () => {
    // Two raw files: each trace of edge-b's file closes after edge-a's has been read, so close order is not time order.
    const files = ['edge-b.linkerd.log', 'edge-a.linkerd.log'].map((name) => fileURLToPath(new URL(name, NETTY_DIR)));
    const { stdout, status, stderr } = run(['analyze', ...files]);
    expect(status, stderr).toBe(0);
    const lines = stdout.split('\n');
    const header = lines[0] as string;
    const rows = lines.slice(1, lines.indexOf(''));
    expect(rows).toHaveLength(6);
    const times = rows.map((row) => row.slice(0, 24));
    expect(times).toEqual([...times].sort());
    // Every column starts where its title does.
    for (const title of ['HOST', 'SERVICE', 'PID', 'CATEGORY', 'SEVERITY', 'LINES', 'SUMMARY']) {
      const at = header.indexOf(title);
      for (const row of rows) expect(row.charAt(at - 1), `${title} in ${row}`).toBe(' ');
      for (const row of rows) expect(row.charAt(at), `${title} in ${row}`).not.toBe(' ');
    }
    expect(rows.some((row) => row.includes('direct-memory-exhausted [channel-init-failed]'))).toBe(true);
  });

  it('a missing host is shown as such, not as "?/service"', () => {
    const { stdout } = run(['analyze', fileURLToPath(new URL('edge-a.linkerd.log', NETTY_DIR))]);
    const rows = stdout.split('\n').filter((line) => line.startsWith('20'));
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row).toMatch(/^\S+\s+-\s+edge-a\.linkerd\.log\s/);
      expect(row).toContain(' edge-a.linkerd.log: ');
      expect(row).not.toContain('?/');
    }
  });

  it('ends with a summary: events and incidents by category and by host', () => {
    const { stdout } = run(['analyze', fileURLToPath(JOURNAL_TEXT)]);
    expect(stdout).toContain(
      [
        '6 events in 6 incidents',
        '',
        'CATEGORY                  EVENTS  INCIDENTS',
        'buffer-leak                    2          2',
        'direct-memory-exhausted        2          2',
        'exception-caught-at-tail       2          2',
        '',
        'HOST    EVENTS  INCIDENTS',
        'edge-a       3          3',
        'edge-b       3          3',
      ].join('\n'),
    );
  });
});

describe('commands and flags', () => {
  it('a mistyped command gets "did you mean", not serve\'s argument error', () => {
    const result = run(['analyse', 'f.log']);
    expect(result.status).toBe(2);
    expect(result.stderr).toBe("leakwatch: unknown command 'analyse' (did you mean 'analyze'?); the commands are serve, analyze, rules (leakwatch --help)\n");
    const rules = run(['rules', 'chek']);
    expect(rules.status).not.toBe(0);
    expect(rules.stderr).toMatch(/unknown command 'chek'[\s\S]*Did you mean check\?/);
  });

  it('a refused flag after `analyze` ends the process at once: the threads the launcher started for the run do not hold it', () => {
    // The launcher starts analyze's threads before the command line is parsed (a mistyped flag, or
    // a bad value of another one, leaves --threads as asked); they must not keep the process alive.
    for (const args of [['--thrads', '2'], ['--threads', '2', '--format', 'yaml'], ['--threads', '0']]) {
      const result = run(['analyze', ...args, fileURLToPath(JOURNAL_TEXT)]);
      expect(result.status, args.join(' ')).not.toBe(0);
      expect(result.status, `${args.join(' ')}: still running when killed`).not.toBeNull();
      expect(result.stderr, args.join(' ')).toMatch(/^error: /m);
      expect(result.stdout).toBe('');
    }
  });

  it('--help shows every flag\'s default', () => {
    for (const command of [['serve'], ['analyze'], ['rules', 'check'], ['rules', 'test']]) {
      const { stdout, status } = run([...command, '--help']);
      expect(status).toBe(0);
      const options = stdout.slice(stdout.indexOf('Options:'));
      // An option's entry runs from its flag to the next flag (descriptions wrap over lines).
      const entries = options.split(/\n(?= {2}-)/).slice(1);
      expect(entries.length, command.join(' ')).toBeGreaterThan(0);
      for (const entry of entries) {
        if (/^\s+-h, --help/.test(entry)) continue;
        expect(entry.replace(/\s+/g, ' '), `${command.join(' ')}: ${entry}`).toMatch(/\(default: [^)]|default: "/);
      }
    }
  });
});
