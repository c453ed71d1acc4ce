/**
 * A full disk must not lose what ingest answered 200 for: the events that cannot be stored are
 * kept and retried, the journal keeps their batches, /readyz and ingest say 503 while it lasts,
 * and everything is stored once the disk has room again. The data folder is a small tmpfs the
 * test mounts (root only; skipped with a message otherwise).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { buildLeakwatch, type Leakwatch } from '../../src/server.js';
import { shippedRulesWith } from '../helpers/rules-dir.js';
import { eventually } from '../helpers/serve-process.js';

const MOUNT = mkdtempSync(join(tmpdir(), 'leakwatch-full-disk-'));

function mountTmpfs(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', MOUNT], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `mount -t tmpfs failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
  }
}

const skipReason = mountTmpfs();
if (skipReason !== undefined) console.warn(`disk-full test skipped: ${skipReason}`);

/** Fills the file system with one file until writes fail; returns its path. */
function fillDisk(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch {
    // ENOSPC: full. Smaller writes take the last pages too.
    const small = Buffer.alloc(512, 1);
    try {
      for (;;) writeSync(fd, small);
    } catch {
      // full to the last block
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

/** The OODM trace of linkerd/linkerd#2247 (https://github.com/linkerd/linkerd/issues/2247), on 40 processes so that it makes 40 events. */
function traces(count: number): string {
  const lines: string[] = [];
  for (let pid = 1; pid <= count; pid++) {
    const prefix = `Mar 08 17:16:14 edge-${pid} linkerd[${1000 + pid}]: `;
    lines.push(
      `${prefix}W 0308 17:16:14.981 PST THREAD461: Unhandled exception in connection with /127.0.0.1:51174, shutting down connection`,
      `${prefix}io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1024 byte(s) of direct memory (used: 134216789, max: 134217728)`,
      `${prefix}\tat io.netty.util.internal.PlatformDependent.incrementMemoryCounter(PlatformDependent.java:640)`,
      `${prefix}\tat io.netty.util.internal.PlatformDependent.allocateDirectNoCleaner(PlatformDependent.java:594)`,
      `${prefix}\tat io.netty.buffer.UnpooledUnsafeNoCleanerDirectByteBuf.allocateDirect(UnpooledUnsafeNoCleanerDirectByteBuf.java:30)`,
    );
  }
  return lines.join('\n') + '\n';
}

describe.skipIf(skipReason !== undefined)('a full disk (tmpfs)', () => {
  let service: Leakwatch;
  let base: string;
  let rules: ReturnType<typeof shippedRulesWith>;

  beforeAll(async () => {
    rules = shippedRulesWith({ reorder_window: '0s', expire_after: '10m' });
    service = await buildLeakwatch(resolveConfig({ dataDir: join(MOUNT, 'data'), rulesDir: rules.dir }, {}), pino({ level: 'silent' }));
    await service.ready;
    await service.app.listen({ port: 0, host: '127.0.0.1' });
    const address = service.app.server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  afterAll(async () => {
    await service?.close();
    execFileSync('umount', [MOUNT]);
    rmSync(MOUNT, { recursive: true, force: true });
    rules.remove();
  });

  it('keeps every acknowledged event, answers 503 while full, and stores everything once there is room', async () => {
    const count = 40;
    const accepted = await request(`${base}/ingest`, { method: 'POST', body: traces(count), headers: { 'content-type': 'text/plain' } });
    expect(accepted.statusCode).toBe(200);
    await accepted.body.dump();
    await service.pipeline.whenIdle();

    const filler = fillDisk(MOUNT);
    try {
      // The traces close now; storing their events hits the full disk.
      service.pipeline.closeOpenGroups();
      service.pipeline.checkpoint();
      const ready = await request(`${base}/readyz`);
      expect(ready.statusCode).toBe(503);
      expect(((await ready.body.json()) as { store_problem?: string }).store_problem).toMatch(/SQLITE_FULL|full|disk/i);
      const refused = await request(`${base}/ingest`, { method: 'POST', body: traces(1), headers: { 'content-type': 'text/plain' } });
      expect(refused.statusCode).toBe(503);
      expect(refused.headers['retry-after']).toBeDefined();
      await refused.body.dump();
      expect(service.store.journalAfter(0, 10)).toHaveLength(1);
    } finally {
      unlinkSync(filler);
    }

    await eventually(async () => ((await request(`${base}/readyz`)).statusCode === 200 ? true : undefined));
    const { incidents } = (await (await request(`${base}/incidents?status=all&limit=500`)).body.json()) as { incidents: Array<{ count: number }> };
    expect(incidents).toHaveLength(count);
    expect(incidents.every((incident) => incident.count === 1)).toBe(true);
    expect(service.store.journalAfter(0, 10)).toHaveLength(0);
    const metrics = await (await request(`${base}/metrics`)).body.text();
    expect(Number(/^leakwatch_store_write_failures_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(metrics).toMatch(/^leakwatch_store_writable 1$/m);
  });
});
