/**
 * Helper threads that are not on the event loop's critical path (decoding, WAL checkpoints, regex
 * checks) run at a lower CPU priority. On a machine with fewer cores than busy threads the
 * scheduler otherwise shares the CPU evenly, and every turn of the event loop (grouping, storing,
 * answering /healthz) stretches while a decoding thread works through a 10 MB body. With the helpers
 * at nice 10 the event loop takes a core when it needs one and the helpers use what is left: the
 * HTTP bench's event-loop delay p99 went from 58-65 ms to 49-55 ms at the same throughput. Where a
 * core is free, priority changes nothing.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The nice value of helper threads (0 is the default, 19 the lowest priority). */
export const HELPER_THREAD_NICE = 10;

/**
 * Lowers the calling thread's CPU priority to HELPER_THREAD_NICE. Linux only (a thread's id is read
 * from /proc/thread-self, and Linux keeps a nice value per thread); elsewhere, or when refused, it
 * changes nothing: priority is a refinement, not something to fail a thread for.
 */
export function lowerThisThreadsPriority(): boolean {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isSafeInteger(threadId) || threadId <= 0) return false;
    setPriority(threadId, HELPER_THREAD_NICE);
    return true;
  } catch {
    return false;
  }
}
