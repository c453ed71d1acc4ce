import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawRuleFile } from '../../src/rules/model.js';

// Issue 11: rules/README.md's worked example — a Finagle ChannelClosedException rule in a file of
// its own — is written, checked and tested from the CLI, and takes precedence over jvm.yaml's
// catch-all without any edit to jvm.yaml.
const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));
const SHIPPED = fileURLToPath(new URL('../../rules/', import.meta.url));
const RULES_README = fileURLToPath(new URL('../../rules/README.md', import.meta.url));

function leakwatch(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** The YAML between the worked-example markers of rules/README.md. */
function workedExample(): string {
  const text = readFileSync(RULES_README, 'utf8');
  const match = /<!-- worked-example: finagle\.yaml[^>]*-->\n```yaml\n([\s\S]*?)```\n<!-- worked-example end -->/.exec(text);
  if (!match) throw new Error('rules/README.md has no worked example between its markers');
  return match[1]!;
}

describe('the worked example of rules/README.md', () => {
  let dir: string;
  let logDir: string;
  let exampleInput: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-worked-example-'));
    logDir = mkdtempSync(join(tmpdir(), 'leakwatch-worked-example-log-'));
    cpSync(SHIPPED, dir, { recursive: true });
    const example = workedExample();
    writeFileSync(join(dir, 'finagle.yaml'), example);
    exampleInput = (parse(example) as RawRuleFile).rules![0]!.tests![0]!.input;
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(logDir, { recursive: true, force: true });
  });

  it('rules check: the new file is clean, regex safety included', () => {
    const run = leakwatch('rules', 'check', dir);
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^SUCCESS: 13 rules, 1 groupers, 0 warning\(s\)/m);
  });

  it("rules test: the new rule's test and every shipped test pass, jvm-exception's test of the same trace too", () => {
    const run = leakwatch('rules', 'test', dir);
    expect(run.status, run.stdout).toBe(0);
    expect(run.stdout).toMatch(/^ok +finagle-channel-closed: a write failure whose cause is a closed channel \(linkerd#2266\)/m);
    expect(run.stdout).toMatch(/^ok +jvm-exception: finagle ChannelWriteException caused by ChannelClosedException \(linkerd#2266\)/m);
    expect(run.stdout).toMatch(/^\d+ passed, 0 failed$/m);
  });

  it('analyze: the trace becomes a channel-closed event, not tagged jvm-exception; without the file it is a jvm-exception', () => {
    const prefixed = exampleInput
      .replace(/\n$/, '')
      .split('\n')
      .map((line) => `Feb 19 22:49:03 l5d-1 linkerd[1234]: ${line}`)
      .join('\n');
    const log = join(logDir, 'channel-closed.log');
    writeFileSync(log, `${prefixed}\n`);
    const withRule = leakwatch('analyze', '--format', 'ndjson', '--rules', dir, log);
    expect(withRule.status, withRule.stderr).toBe(0);
    const events = withRule.stdout.trim().split('\n').map((line) => JSON.parse(line) as { rule: string; category: string; tags: string[]; fields: Record<string, unknown> });
    expect(events).toMatchObject([{ rule: 'finagle-channel-closed', category: 'channel-closed', tags: [], fields: { remote_address: '172.19.9.113/172.19.9.113:8080' } }]);

    const shipped = leakwatch('analyze', '--format', 'ndjson', '--rules', SHIPPED, log);
    expect(JSON.parse(shipped.stdout.trim())).toMatchObject({ rule: 'jvm-exception', tags: [] });
  });
});
