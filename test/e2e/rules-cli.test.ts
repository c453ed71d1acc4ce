import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Issue 3: `leakwatch rules test` passes for every shipped rule; `rules check` reports a broken file
// with its line and column and exits non-zero (promtool's convention).
const BIN = fileURLToPath(new URL('../../bin/leakwatch.js', import.meta.url));
const SHIPPED = fileURLToPath(new URL('../../rules/', import.meta.url));

function leakwatch(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('leakwatch rules', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'leakwatch-rules-cli-'));
    cpSync(SHIPPED, dir, { recursive: true });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('rules test: every embedded test of the shipped rules passes', () => {
    const run = leakwatch('rules', 'test', SHIPPED);
    expect(run.status, run.stdout).toBe(0);
    expect(run.stdout).toMatch(/^(\d+) passed, 0 failed$/m);
    expect(Number(/^(\d+) passed/m.exec(run.stdout)![1])).toBeGreaterThanOrEqual(30);
  });

  it('rules check: a broken file is reported with file:line:col and exit 1; the shipped set is clean', () => {
    expect(leakwatch('rules', 'check', SHIPPED).status).toBe(0);

    const file = join(dir, 'network.yaml');
    const lines = readFileSync(file, 'utf8').split('\n');
    const at = lines.findIndex((line) => /^\s+priority: \d+/.test(line));
    lines[at] = lines[at]!.replace(/priority: \d+/, 'priority: high');
    writeFileSync(file, lines.join('\n'));
    const run = leakwatch('rules', 'check', dir);
    expect(run.status).toBe(1);
    const col = lines[at]!.indexOf('high') + 1;
    expect(run.stdout).toContain(`${file}:${at + 1}:${col}: `);
    expect(run.stdout).toMatch(/FAILED: 1 error/);
  });

  it('rules test: a failing expectation exits 1 and shows the difference', () => {
    const file = join(dir, 'network.yaml');
    writeFileSync(file, readFileSync(join(SHIPPED, 'network.yaml'), 'utf8').replace(/(\n\s+expect:\n\s+- category: )connection-reset/, '$1heap-exhausted'));
    const run = leakwatch('rules', 'test', dir);
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/FAIL connection-reset: /);
    expect(run.stdout).toContain('heap-exhausted');
  });
});
