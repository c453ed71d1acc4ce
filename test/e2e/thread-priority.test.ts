/**
 * Helper threads yield the CPU to the event loop (src/thread-priority.ts): a running server's
 * decoding and WAL checkpoint threads have nice 10, its main thread keeps 0. Read from /proc, as
 * `ps -L -o tid,ni` would show them.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HELPER_THREAD_NICE } from '../../src/thread-priority.js';
import { eventually, startServe } from '../helpers/serve-process.js';

/** Each thread's nice value (field 19 of /proc/PID/task/TID/stat), by thread id. */
function threadNices(pid: number): Map<number, number> {
  const nices = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // The fields after the parenthesised name start at field 3 (state).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      nices.set(Number(tid), Number(fields[19 - 3]));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return nices;
}

describe.skipIf(process.platform !== 'linux')('helper thread priority', () => {
  it('a server with two decoding threads runs them and its WAL checkpoint thread at nice 10, its event loop at 0', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'leakwatch-nice-'));
    const server = await startServe(['--data-dir', dataDir, '--decode-threads', '2']);
    try {
      const pid = server.child.pid as number;
      const nices = await eventually(async () => {
        const found = threadNices(pid);
        return [...found.values()].filter((nice) => nice === HELPER_THREAD_NICE).length >= 3 ? found : undefined;
      });
      expect(nices.get(pid)).toBe(0);
      expect([...nices.values()].filter((nice) => nice === HELPER_THREAD_NICE)).toHaveLength(3);
      expect([...nices.values()].every((nice) => nice === 0 || nice === HELPER_THREAD_NICE)).toBe(true);
    } finally {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
