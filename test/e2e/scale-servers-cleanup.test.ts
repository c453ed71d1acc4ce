import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServe } from '../../bench/lib.js';
import { startNats } from '../../bench/scale-servers.js';

/**
 * The scale-out tests and the bench start real servers in temporary folders: one that fails to
 * start must not leave its folder (or a process) behind on the machine that runs them.
 */
describe('a server of the tests or the bench that cannot start', () => {
  const saved = { PATH: process.env['PATH'], TMPDIR: process.env['TMPDIR'] };
  const made: string[] = [];
  afterEach(() => {
    process.env['PATH'] = saved.PATH;
    if (saved.TMPDIR === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved.TMPDIR;
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('nats-server exiting at once: the start fails with its output, and its folder is removed', async () => {
    const folder = (name: string): string => {
      const dir = mkdtempSync(join(tmpdir(), `leakwatch-${name}-`));
      made.push(dir);
      return dir;
    };
    // A nats-server first on PATH that refuses to start, as one given a port already taken does.
    const bin = folder('fake-bin');
    writeFileSync(join(bin, 'nats-server'), '#!/bin/sh\necho "[FTL] Error listening on port: address already in use" >&2\nexit 1\n');
    chmodSync(join(bin, 'nats-server'), 0o755);
    // Its own temporary folder (os.tmpdir() reads TMPDIR), so that other test files' servers do not count.
    const scratch = folder('scratch-tmp');
    process.env['PATH'] = `${bin}:${saved.PATH ?? ''}`;
    process.env['TMPDIR'] = scratch;
    await expect(startNats()).rejects.toThrow(/nats-server exited with 1:\n.*address already in use/);
    expect(readdirSync(scratch)).toEqual([]);
  });

  it('leakwatch serve exiting at start (rules that do not load): the start fails with its output, and its data folder is removed', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'leakwatch-scratch-tmp-'));
    made.push(scratch);
    process.env['TMPDIR'] = scratch;
    await expect(startServe(['--rules', join(scratch, 'no-such-rules')])).rejects.toThrow(/leakwatch serve exited with 1:\n[^]*no-such-rules/);
    expect(readdirSync(scratch)).toEqual([]);
  });
});
