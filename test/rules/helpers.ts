import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Group } from '../../src/engine/group.js';

/** A temp rules folder with the given files; returns its path and a cleanup. */
export async function rulesDir(files: Record<string, string>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'leakwatch-rules-'));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A one-rule file for the reload tests: the tail-of-pipeline rule under a category of the test's choosing. */
export function tailResetRule(category: string): string {
  return `rules:
  - id: tail-reset
    version: 1
    title: exception at the pipeline tail
    match:
      literals: [reached at the tail of the pipeline]
    classify: { category: ${category}, severity: warning }
`;
}

export function groupOf(lines: string[], overrides: Partial<Group> = {}): Group {
  return {
    stream: 'web-1\u001flinkerd\u001f5699',
    host: 'web-1',
    service: 'linkerd',
    pid: '5699',
    time: Date.UTC(2017, 10, 1, 16, 59, 32, 962),
    lines,
    truncated: false,
    closeReason: 'next-record',
    ...overrides,
  };
}

/** linkerd#1690 as posted in the linkerd forum thread "Non-heap Memory Leak on 1.3.1" (discourse.linkerd.io, November 2017), journald prefix removed. */
export const DIRECT_MEMORY_TRACE = [
  'WARN 1101 11:59:32.962 CDT finagle/netty4-103: Failed to initialize a channel. Closing: [id: 0xda8ab2a4, L:/ - R:/]',
  'io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)',
  'at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(',
  'at io.netty.util.internal.PlatformDependent.allocateDirectNoCleaner(',
];

/** The exceptionCaught-at-tail record of the same thread (Nov 03 post), journald prefix removed. */
export const TAIL_RESET_TRACE = [
  'WARN 1103 17:36:55.421 CDT finagle/netty4-6: An exceptionCaught() event was fired, and it reached at the tail of the pipeline. It usually means the last handler in the pipeline did not handle the exception.',
  'Connection reset by peer',
  'at io.netty.buffer.PooledUnsafeDirectByteBuf.setBytes(',
  'at io.netty.buffer.AbstractByteBuf.writeBytes(',
];
