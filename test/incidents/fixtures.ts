import { createHash } from 'node:crypto';
import type { LeakEvent, Severity } from '../../src/engine/event.js';

/*
 * Event texts are real log excerpts:
 * - OODM: the linkerd forum thread "Non-heap Memory Leak on 1.3.1" (discourse.linkerd.io, November 2017),
 *   the same trace as https://github.com/linkerd/linkerd/issues/1690 (frames there lost their parentheses).
 * - exceptionCaught at the tail + Connection reset by peer: the same seed thread (Nov 03 17:36:55).
 * - LEAK: https://github.com/linkerd/linkerd/issues/1678.
 * The events are built in the LeakEvent shape the engine emits (src/engine/event.ts).
 */

export const OODM_TEXT = [
  'WARN 1101 11:59:32.962 CDT finagle/netty4-103: Failed to initialize a channel. Closing: [id: 0xda8ab2a4, L:/ - R:/]',
  'io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)',
  'at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(',
  'at io.netty.util.internal.PlatformDependent.allocateDirectNoCleaner(',
  'at io.netty.buffer.PoolArena$DirectArena.allocateDirect(',
  'at io.netty.buffer.PoolArena$DirectArena.newChunk(',
  'at io.netty.buffer.PoolArena.allocateNormal(',
  'at io.netty.buffer.PoolArena.allocate(',
  'at io.netty.buffer.PoolArena.allocate(',
  'at io.netty.buffer.PooledByteBufAllocator.newDirectBuffer(',
  'at io.netty.buffer.AbstractByteBufAllocator.directBuffer(',
  'at io.netty.buffer.AbstractByteBufAllocator.directBuffer(',
  'at io.netty.handler.ssl.PemX509Certificate.newBuffer(',
  'at io.netty.handler.ssl.PemX509Certificate.append(',
].join('\n');

export const TAIL_TEXT = [
  'WARN 1103 17:36:55.421 CDT finagle/netty4-6: An exceptionCaught() event was fired, and it reached at the tail of the pipeline. It usually means the last handler in the pipeline did not handle the exception.',
  'Connection reset by peer',
  'at Method)',
  'at io.netty.buffer.PooledUnsafeDirectByteBuf.setBytes(',
  'at io.netty.buffer.AbstractByteBuf.writeBytes(',
  'at io.netty.util.concurrent.SingleThreadEventExecutor$',
  'at java.util.concurrent.ThreadPoolExecutor.runWorker(',
  'at java.util.concurrent.ThreadPoolExecutor$',
  'at com.twitter.finagle.util.BlockingTimeTrackingThreadFactory$$anon$',
].join('\n');

export const LEAK_TEXT =
  "ERROR 1019 21:54:39.902 UTC finagle/netty4-7: LEAK: ByteBuf.release() was not called before it's garbage-collected. Enable advanced leak reporting to find out where the leak occurred. To enable advanced leak reporting, specify the JVM option '-Dio.netty.leakDetection.level=advanced' or call ResourceLeakDetector.setLevel() See http://netty.io/wiki/reference-counted-objects.html for more information.";

export type Kind = 'oodm' | 'tail' | 'leak';

export interface EventOptions {
  time: string | number;
  host?: string;
  service?: string;
  pid?: string;
  severity?: Severity;
  used_bytes?: number;
  max_bytes?: number;
  /** Distinguishes otherwise identical events (ids are hashes of content and origin). */
  seq?: number;
}

const RULES: Record<Kind, { rule: string; category: string; severity: Severity; text: string }> = {
  oodm: { rule: 'netty-direct-memory-exhausted', category: 'direct-memory-exhausted', severity: 'error', text: OODM_TEXT },
  tail: { rule: 'netty-exception-caught-at-tail', category: 'exception-caught-at-tail', severity: 'warning', text: TAIL_TEXT },
  leak: { rule: 'netty-buffer-leak', category: 'buffer-leak', severity: 'warning', text: LEAK_TEXT },
};

export function makeEvent(kind: Kind, options: EventOptions): LeakEvent {
  const { rule, category, severity, text } = RULES[kind];
  const host = options.host ?? 'lb-1';
  const service = options.service ?? 'linkerd';
  const pid = options.pid ?? '5699';
  const timestamp = new Date(options.time).toISOString();
  const used = options.used_bytes ?? 1037041958;
  const max = options.max_bytes ?? 1037959168;
  const fields: LeakEvent['fields'] =
    kind === 'oodm' ? { requested_bytes: 1048576, used_bytes: used, max_bytes: max, ratio: used / max } : {};
  const id = createHash('sha256')
    .update([host, service, pid, timestamp, text, String(options.seq ?? 0), String(used)].join('\u001f'))
    .digest('hex')
    .slice(0, 32);
  const lines = text.split('\n');
  return {
    id,
    timestamp,
    host,
    service,
    pid,
    rule,
    rule_version: 1,
    category,
    severity: options.severity ?? severity,
    tags: kind === 'tail' ? ['connection-reset'] : kind === 'oodm' ? ['channel-init-failed'] : [],
    message: lines[0]!,
    text,
    line_count: lines.length,
    truncated: false,
    exception:
      kind === 'oodm'
        ? { class: 'io.netty.util.internal.OutOfDirectMemoryError', message: 'failed to allocate 1048576 byte(s) of direct memory (used: 1037041958, max: 1037959168)' }
        : null,
    causes: [],
    fields,
    incident_key: `${rule}|${host}|${service}`,
    incident_id: null,
    annotations: { summary: `${host} ${service}: ${category} (${kind === 'oodm' ? `${((used / max) * 100).toFixed(1)}% used` : 'seen'})` },
  };
}
