/**
 * `npm run bench -- --json` as a reader of its last line takes it: one JSON object with every
 * measured figure a finite number. Run small (`--quick`, three sections) as a child process; its
 * speed is not judged here (that is what the bench itself is for), only that it reports and cleans up.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

describe('npm run bench -- --json', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'leakwatch-bench-report-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('prints the engine, analyze and HTTP figures (with what the HTTP rate costs in CPU) as its last line, and leaves no folder behind', async () => {
    // Its own temporary folder (os.tmpdir() reads TMPDIR): the corpora and the server's data go there.
    const child = spawn(process.execPath, [RUN, '--quick', '--only', 'engine,analyze,http', '--json'], { env: { ...process.env, TMPDIR: scratch }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(0);

    const report = JSON.parse(stdout.trimEnd().split('\n').at(-1) as string) as Record<string, unknown>;
    const figures = [
      'engine_lines_per_s',
      'analyze_lines_per_s',
      'analyze_rss_mb',
      'analyze_baseline_lines_per_s',
      'analyze_vs_baseline',
      'http_lines_per_s',
      'http_baseline_lines_per_s',
      'http_vs_baseline',
      'http_server_cpu_us_per_line',
      'http_main_cpu_us_per_line',
      'http_baseline_cpu_us_per_line',
      'http_server_cpu_share',
      'http_rss_mb',
      'event_loop_p99_ms',
    ];
    for (const name of figures) expect({ name, value: report[name] }).toEqual({ name, value: expect.any(Number) });
    for (const name of figures) expect(Number.isFinite(report[name]) && (report[name] as number) > 0, name).toBe(true);
    // The main thread is one of the server's threads, and no process takes more than all the cores.
    expect(report['http_main_cpu_us_per_line'] as number).toBeLessThanOrEqual(report['http_server_cpu_us_per_line'] as number);
    expect(report['http_server_cpu_share'] as number).toBeLessThanOrEqual(1.05);
    // analyze does more with each line than a reader that only cuts lines.
    expect(report['analyze_vs_baseline'] as number).toBeLessThan(1);
    // The sections it did not run are not reported as if they had been.
    expect(report).not.toHaveProperty('rss_mb_100k_streams');
    expect(report).not.toHaveProperty('soak_rss_drift_pct');
    expect(readdirSync(scratch)).toEqual([]);
  }, 180_000);
});
